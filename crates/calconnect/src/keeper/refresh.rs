//! One refresh of one connection, as the state machine in the module docs: lease, intent,
//! token call, fenced write, classification.

#[cfg(feature = "fail-points")]
use super::RefreshStep as Step_;
#[cfg(not(feature = "fail-points"))]
use super::config::FailPoint as Step_;
use super::flight::Trigger;
use super::{FreshToken, Inner, KeeperError, telemetry};
use crate::crypto::{SealContext, SealedField};
use crate::errors::{InvalidGrantReason, RefreshError};
use crate::secret::{AccessToken, RefreshToken};
use crate::store::{
    Connection, ConnectionId, ConnectionStatus, StatusChange, StoreError, TokenWrite,
};
use crate::token_response::TokenSet;
use secrecy::ExposeSecret;
use std::sync::Arc;
use std::time::Instant;
use time::OffsetDateTime;
use tracing::Instrument;

/// Rounds of read → lease → refresh before giving up with a transient error.
const MAX_ROUNDS: u32 = 4;
/// Attempts of the fenced write after Cal.com answered (we hold the only live refresh token).
const WRITE_ATTEMPTS: u32 = 5;

/// How a flight ended, for metrics and spans.
pub(crate) type Outcome = &'static str;

/// The end of one leased round.
enum Step {
    Done(Result<(FreshToken, Outcome), KeeperError>),
    /// Someone else changed the row: read again.
    Again,
}

impl Inner {
    /// Runs a refresh flight for `id`: metrics, span, then the rounds.
    pub(crate) async fn refresh(
        self: &Arc<Self>,
        id: ConnectionId,
        trigger: Trigger,
    ) -> Result<FreshToken, KeeperError> {
        let span = tracing::info_span!(
            "calconnect.keeper.refresh",
            connection_id = %id,
            trigger = trigger.name(),
            outcome = tracing::field::Empty,
        );
        let started = Instant::now();
        let result = self.rounds(id, &trigger).instrument(span.clone()).await;
        let outcome = match &result {
            Ok((_, outcome)) => *outcome,
            Err(e) => e.outcome(),
        };
        span.record("outcome", outcome);
        telemetry::flight_finished(trigger.name(), outcome, started.elapsed());
        result.map(|(fresh, _)| fresh)
    }

    async fn rounds(
        self: &Arc<Self>,
        id: ConnectionId,
        trigger: &Trigger,
    ) -> Result<(FreshToken, Outcome), KeeperError> {
        let mut seen_version = None;
        for round in 1..=MAX_ROUNDS {
            let c = self.read(id).await?;
            check_status(&c)?;
            let fresh = self.open_access(&c)?;
            let margin = self.margin_of(&c);
            self.remember(id, &fresh, margin);
            let seen = *seen_version.get_or_insert(c.version);
            let now = self.clock.now();
            if !trigger.needs_refresh(&c, &fresh.access_token, now, margin, Some(seen)) {
                return Ok((fresh, "already_fresh"));
            }
            match self
                .store
                .acquire_lease(id, &self.owner, self.config.lease_for)
                .await
            {
                Ok(_grant) => {
                    let step = self.leased(id, trigger, seen).await;
                    if let Err(e) = self.store.release_lease(id, &self.owner).await {
                        tracing::warn!(connection_id = %id, error = %e, "releasing the refresh lease failed; it will expire");
                    }
                    match step {
                        Step::Done(result) => return result,
                        Step::Again => continue,
                    }
                }
                Err(StoreError::LeaseHeld { until, owner, .. }) => {
                    tracing::debug!(connection_id = %id, holder = %owner, "another instance is refreshing; waiting for its write");
                    if round == MAX_ROUNDS {
                        return Err(KeeperError::Transient {
                            id,
                            reason: format!("instance {owner} is refreshing this connection"),
                            retry_after: (until - now).try_into().ok(),
                            source: None,
                        });
                    }
                    self.wait_for_other(id, c.version).await?;
                }
                Err(e) => return Err(KeeperError::store(id, e)),
            }
        }
        Err(KeeperError::Transient {
            id,
            reason: "the connection kept changing during the refresh".into(),
            retry_after: None,
            source: None,
        })
    }

    pub(crate) async fn read(&self, id: ConnectionId) -> Result<Connection, KeeperError> {
        self.store
            .get_connection(id)
            .await
            .map_err(|e| KeeperError::store(id, e))
    }

    pub(crate) fn open_access(&self, c: &Connection) -> Result<FreshToken, KeeperError> {
        let context = SealContext::connection(c.id.as_uuid(), SealedField::AccessToken);
        let token = self
            .keyring
            .open_string(&c.access_token, context)
            .map_err(|e| KeeperError::crypto(c.id, e))?;
        Ok(FreshToken {
            access_token: AccessToken::new(token.expose_secret()),
            // No expiry known: treat as already expired, as Cal.com's own manager does (§8).
            expires_at: c.access_expires_at.unwrap_or(OffsetDateTime::UNIX_EPOCH),
        })
    }

    /// Polls the store until the lease holder writes (version moves), its lease ends, or
    /// `lease_wait` passes.
    async fn wait_for_other(&self, id: ConnectionId, version: i64) -> Result<(), KeeperError> {
        let start = self.config.timer.now();
        loop {
            self.config.timer.sleep(self.config.poll_interval).await;
            let c = self.read(id).await?;
            let now = self.clock.now();
            let lease_over = c
                .lease
                .as_ref()
                .is_none_or(|l| l.until <= now || l.owner == self.owner);
            if c.version != version
                || lease_over
                || self.config.timer.now().saturating_sub(start) >= self.config.lease_wait
            {
                return Ok(());
            }
        }
    }

    /// One round with the lease held.
    async fn leased(&self, id: ConnectionId, trigger: &Trigger, seen: i64) -> Step {
        let c = match self.read(id).await {
            Ok(c) => c,
            Err(e) => return Step::Done(Err(e)),
        };
        if let Err(e) = check_status(&c) {
            return Step::Done(Err(e));
        }
        let fresh = match self.open_access(&c) {
            Ok(f) => f,
            Err(e) => return Step::Done(Err(e)),
        };
        let now = self.clock.now();
        let margin = self.margin_of(&c);
        if !trigger.needs_refresh(&c, &fresh.access_token, now, margin, Some(seen)) {
            self.remember(id, &fresh, margin);
            return Step::Done(Ok((fresh, "already_fresh")));
        }
        let Some(sealed_refresh) = &c.refresh_token else {
            return self.mark_dead(&c, Dead::NoRefreshToken).await;
        };
        let context = SealContext::connection(id.as_uuid(), SealedField::RefreshToken);
        let refresh_token = match self.keyring.open_string(sealed_refresh, context) {
            Ok(t) => RefreshToken::new(t.expose_secret()),
            Err(e) => return Step::Done(Err(KeeperError::crypto(id, e))),
        };
        // A permit from the token-endpoint budget, if there is one: never send a request the
        // budget says would exceed the provider's rate limit.
        match self.take_permit(id, trigger).await {
            Ok(false) => {}
            // We may have waited for the permit longer than the lease lasts: extend it, or, if
            // another instance took the row meanwhile, start the round again.
            Ok(true) => match self
                .store
                .renew_lease(id, &self.owner, self.config.lease_for)
                .await
            {
                Ok(_) => {}
                Err(StoreError::LeaseNotHeld { .. }) => return Step::Again,
                Err(e) => return Step::Done(Err(KeeperError::store(id, e))),
            },
            Err(e) => return Step::Done(Err(e)),
        }
        // An intent still set now was recorded by an attempt whose lease ended without a write
        // clearing it: that attempt may have rotated the refresh token (module docs, S2/S3).
        let stale_intent = c.refresh_intent_started_at;
        match self
            .store
            .record_refresh_intent(id, &self.owner, c.version)
            .await
        {
            Ok(()) => {}
            Err(StoreError::VersionMismatch { .. } | StoreError::LeaseNotHeld { .. }) => {
                return Step::Again;
            }
            Err(e) => return Step::Done(Err(KeeperError::store(id, e))),
        }
        self.config.fail_point(Step_::BeforeCall, id).await;
        let call = tokio::time::timeout(
            self.config.refresh_timeout,
            self.flow.refresh(&refresh_token),
        )
        .await;
        match call {
            Err(_elapsed) => {
                telemetry::token_call("timeout");
                Step::Done(Err(self.transient(
                    id,
                    "the token call timed out",
                    None,
                    None,
                )))
            }
            Ok(Ok(tokens)) => {
                telemetry::token_call("ok");
                self.config.fail_point(Step_::AfterResponse, id).await;
                let written = self.save(&c, tokens).await;
                if written.is_ok() {
                    self.config.fail_point(Step_::AfterWrite, id).await;
                }
                Step::Done(written.map(|f| (f, "refreshed")))
            }
            Ok(Err(e)) if e.needs_reauthorization() => {
                telemetry::token_call("dead_grant");
                self.classify_dead(&c, stale_intent, e).await
            }
            Ok(Err(e)) if e.is_transient() => {
                telemetry::token_call("transient");
                self.clear_intent_if_unrotated(&c, &e).await;
                let hint = match &e {
                    // Cal.com's token-endpoint 429 has no Retry-After: its reset header, else
                    // the throttler's 60 s block.
                    RefreshError::RateLimited { retry_after } => {
                        Some(retry_after.unwrap_or(crate::errors::TOKEN_RATE_LIMIT_DEFAULT_WAIT))
                    }
                    _ => None,
                };
                if let (Some(budget), RefreshError::RateLimited { .. }, Some(wait)) =
                    (self.config.budget.as_deref(), &e, hint)
                {
                    let until =
                        self.clock.now() + time::Duration::try_from(wait).unwrap_or_default();
                    crate::budget::pause_after_rate_limit(budget, until).await;
                }
                let provider = self.provider_name();
                let reason = if matches!(e, RefreshError::RateLimited { .. }) {
                    format!("{provider} rate-limited the token call")
                } else {
                    format!("the token call failed (network or {provider} error)")
                };
                Step::Done(Err(self.transient(id, &reason, hint, Some(e))))
            }
            Ok(Err(e)) => {
                telemetry::token_call("protocol_error");
                self.clear_intent_if_unrotated(&c, &e).await;
                Step::Done(Err(KeeperError::Refresh {
                    id,
                    source: Arc::new(e),
                }))
            }
        }
    }

    /// A permit for this refresh from the budget: on-demand refreshes wait up to the budget's
    /// `max_wait`, keep-alive refreshes up to the sweep's `permit_wait` (they hold the
    /// connection's lease meanwhile, which is longer). No budget: always granted.
    /// `Ok(true)` when a budget granted it (the caller may have waited).
    async fn take_permit(&self, id: ConnectionId, trigger: &Trigger) -> Result<bool, KeeperError> {
        let Some(budget) = self.config.budget.as_deref() else {
            return Ok(false);
        };
        let priority = trigger.priority();
        let max_wait = match priority {
            crate::budget::Priority::Background => self.config.sweep.permit_wait,
            _ => budget.config().max_wait,
        };
        match crate::budget::acquire(budget, priority, max_wait, self.config.timer.as_ref()).await {
            Ok(()) => Ok(true),
            Err(crate::budget::BudgetError::Exhausted { retry_after, .. }) => {
                tracing::debug!(connection_id = %id, priority = priority.as_str(), ?retry_after, "no permit from the refresh budget");
                Err(KeeperError::BudgetExhausted { id, retry_after })
            }
            Err(crate::budget::BudgetError::Store(e)) => Err(KeeperError::store(id, e)),
        }
    }

    /// Cal.com answered with an error that certainly did not rotate the refresh token (an HTTP
    /// error status, not a lost or unreadable answer): clear our intent, so a later
    /// `invalid_grant` is read as the user's revocation, not as a lost refresh. Network errors,
    /// timeouts and unreadable answers keep it: Cal.com may have rotated before the answer was
    /// lost, and then the next refresh is rightly `refresh_lost`.
    async fn clear_intent_if_unrotated(&self, c: &Connection, err: &RefreshError) {
        use crate::errors::TransientError;
        let certain = match err {
            RefreshError::Transient(t) => matches!(
                t,
                TransientError::ServerError { .. } | TransientError::HtmlErrorPage { .. }
            ),
            RefreshError::Protocol(_) => false,
            _ => true,
        };
        if certain {
            if let Err(e) = self
                .store
                .clear_refresh_intent(c.id, &self.owner, c.version)
                .await
            {
                tracing::debug!(connection_id = %c.id, error = %e, "the refresh intent stays set");
            }
        }
    }

    /// A transient failure: back off (exponential, jittered) and say when to try again.
    fn transient(
        &self,
        id: ConnectionId,
        reason: &str,
        hint: Option<std::time::Duration>,
        source: Option<RefreshError>,
    ) -> KeeperError {
        let wait = self.record_failure(id, self.clock.now(), hint);
        KeeperError::Transient {
            id,
            reason: reason.to_owned(),
            retry_after: Some(wait),
            source: source.map(Arc::new),
        }
    }

    /// Seals and writes Cal.com's answer (fenced by version). We hold the only live refresh
    /// token, so a version moved by someone else (a status written while our lease had run
    /// out) does not stop the write: write at the new version and restore `active`.
    async fn save(&self, c: &Connection, tokens: TokenSet) -> Result<FreshToken, KeeperError> {
        let id = c.id;
        let mut rng = rand::rngs::OsRng;
        let seal = |rng: &mut rand::rngs::OsRng, field, value: &str| {
            self.keyring
                .seal(
                    rng,
                    SealContext::connection(id.as_uuid(), field),
                    value.as_bytes(),
                )
                .map_err(|e| KeeperError::crypto(id, e))
        };
        let access_token = seal(
            &mut rng,
            SealedField::AccessToken,
            tokens.access_token.expose_secret(),
        )?;
        let rotated = tokens
            .refresh_token
            .as_ref()
            .filter(|_| tokens.refresh_token_rotated);
        let refresh_token = match rotated {
            Some(t) => Some(seal(
                &mut rng,
                SealedField::RefreshToken,
                t.expose_secret(),
            )?),
            None => None,
        };
        let now = self.clock.now();
        let mut write = TokenWrite {
            expected_version: c.version,
            access_token,
            refresh_token,
            access_expires_at: Some(tokens.expires_at),
            refresh_expires_at_estimate: if rotated.is_some() {
                Some(now + self.config.refresh_window)
            } else {
                c.refresh_expires_at_estimate
            },
            scopes: tokens.scopes.clone(),
        };
        let mut attempt = 0;
        let written = loop {
            attempt += 1;
            match self.store.write_tokens(id, write.clone()).await {
                Ok(written) => break written,
                Err(StoreError::VersionMismatch { actual, .. }) if attempt < WRITE_ATTEMPTS => {
                    tracing::warn!(connection_id = %id, "the row changed during the refresh; writing the live tokens at the new version");
                    write.expected_version = actual;
                }
                Err(StoreError::Unavailable { .. }) if attempt < WRITE_ATTEMPTS => {
                    tracing::warn!(connection_id = %id, attempt, "writing refreshed tokens failed; retrying");
                    let wait = self.config.poll_interval.saturating_mul(1 << attempt);
                    self.config.timer.sleep(wait).await;
                }
                Err(e) => {
                    tracing::error!(connection_id = %id, error = %e, "refreshed tokens could not be written; the connection will be marked refresh_lost on its next refresh");
                    return Err(KeeperError::store(id, e));
                }
            }
        };
        if written.status != ConnectionStatus::Active {
            let change = StatusChange {
                status: ConnectionStatus::Active,
                reason: "refresh_recovered: a refresh that outlived its lease saved valid tokens after the connection had been marked broken".into(),
                expected_version: Some(written.version),
            };
            match self.store.set_status(id, change).await {
                Ok(_) => telemetry::status_changed(ConnectionStatus::Active),
                Err(e) => {
                    tracing::warn!(connection_id = %id, error = %e, "restoring the active status failed")
                }
            }
        }
        self.clear_backoff(id);
        let fresh = FreshToken {
            access_token: tokens.access_token,
            expires_at: tokens.expires_at,
        };
        self.remember(id, &fresh, self.margin_for(Some(tokens.expires_at - now)));
        Ok(fresh)
    }

    /// Cal.com says the grant is dead. Re-read first: newer tokens written by another
    /// instance mean we merely lost a race (docs/architecture.md §3.6). Otherwise a stale intent plus
    /// `invalid_grant` is our fault (`refresh_lost`); anything else is the user's or the
    /// client's (`needs_reauth`).
    async fn classify_dead(
        &self,
        before: &Connection,
        stale_intent: Option<OffsetDateTime>,
        err: RefreshError,
    ) -> Step {
        let now_c = match self.read(before.id).await {
            Ok(c) => c,
            Err(e) => return Step::Done(Err(e)),
        };
        if now_c.version != before.version {
            if now_c.refresh_token != before.refresh_token {
                return Step::Again;
            }
            return match check_status(&now_c) {
                Err(e) => Step::Done(Err(e)),
                Ok(()) => Step::Again,
            };
        }
        let dead = match (&err, stale_intent) {
            (RefreshError::InvalidGrant { reason }, Some(at)) => Dead::Lost {
                at,
                reason: reason.clone(),
            },
            _ => Dead::Refused(err),
        };
        self.mark_dead(before, dead).await
    }

    /// How messages name the provider: Cal.com, or a custom provider in its own words
    /// (docs/architecture.md §3.8).
    fn provider_name(&self) -> &'static str {
        if self.flow.profile().is_cal_com() {
            "Cal.com"
        } else {
            "the provider"
        }
    }

    async fn mark_dead(&self, c: &Connection, dead: Dead) -> Step {
        let (status, code, prose) = dead.describe(self.provider_name());
        let change = StatusChange {
            status,
            reason: format!("{code}: {prose}"),
            expected_version: Some(c.version),
        };
        match self.store.set_status(c.id, change).await {
            Ok(_) => {}
            Err(StoreError::VersionMismatch { .. }) => return Step::Again,
            Err(e) => return Step::Done(Err(KeeperError::store(c.id, e))),
        }
        telemetry::status_changed(status);
        tracing::warn!(connection_id = %c.id, status = status.as_str(), reason = %code, "connection marked broken");
        self.clear_backoff(c.id);
        self.write_cache().remove(&c.id);
        Step::Done(Err(error_for(c.id, status, code)))
    }
}

/// Why a grant is dead.
enum Dead {
    NoRefreshToken,
    Refused(RefreshError),
    Lost {
        at: OffsetDateTime,
        reason: InvalidGrantReason,
    },
}

impl Dead {
    /// Status, machine reason (Cal.com's where there is one) and a sentence for a person that
    /// names the provider as `provider` ("Cal.com" or "the provider").
    fn describe(&self, provider: &str) -> (ConnectionStatus, String, String) {
        use ConnectionStatus::{NeedsReauth, RefreshLost};
        match self {
            Self::NoRefreshToken => (
                NeedsReauth,
                "no_refresh_token".into(),
                "the access token expired and the provider gave no refresh token; the user must reconnect".into(),
            ),
            Self::Lost { at, reason } => (
                RefreshLost,
                "refresh_lost".into(),
                format!(
                    "a refresh started at {at} was interrupted before its result was saved, and {provider} now rejects the stored refresh token ({reason}); the user must reconnect (calconnect's fault, not the user's)"
                ),
            ),
            Self::Refused(err) => {
                let (code, prose) = match err {
                    RefreshError::InvalidGrant { reason } => (
                        reason.as_str().unwrap_or("invalid_grant").to_owned(),
                        match reason {
                            InvalidGrantReason::RefreshTokenRevoked => format!("{provider} says the refresh token was revoked (the user or another copy of this app ended the grant)"),
                            InvalidGrantReason::InvalidRefreshToken => format!("{provider} says the refresh token is invalid or expired (unused for longer than its sliding window)"),
                            _ => format!("{provider} rejected the refresh token"),
                        },
                    ),
                    RefreshError::InvalidClient { reason } => (
                        reason.as_str().unwrap_or("invalid_client").to_owned(),
                        format!("{provider} does not accept this OAuth client's credentials; fix the client id and secret"),
                    ),
                    RefreshError::UnauthorizedClient { reason } => (
                        reason.as_str().unwrap_or("unauthorized_client").to_owned(),
                        format!("{provider} no longer allows this OAuth client (not approved, or rejected)"),
                    ),
                    _ => (
                        "unauthorized".to_owned(),
                        format!("{provider} answered 401 to the refresh without details"),
                    ),
                };
                (
                    NeedsReauth,
                    code,
                    format!("{prose}; the user must reconnect the account"),
                )
            }
        }
    }
}

fn error_for(id: ConnectionId, status: ConnectionStatus, code: String) -> KeeperError {
    match status {
        ConnectionStatus::RefreshLost => KeeperError::RefreshLost { id, reason: code },
        _ => KeeperError::NeedsReauth { id, reason: code },
    }
}

/// `Ok` for an active connection; the matching error for a broken one.
pub(crate) fn check_status(c: &Connection) -> Result<(), KeeperError> {
    if c.status == ConnectionStatus::Active {
        return Ok(());
    }
    let code = c
        .status_reason
        .split_once(": ")
        .map_or(c.status_reason.as_str(), |(code, _)| code);
    Err(error_for(c.id, c.status, code.to_owned()))
}
