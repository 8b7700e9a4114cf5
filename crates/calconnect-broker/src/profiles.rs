//! Keeping the Cal.com profile of each connection (name, e-mail, username from `GET /v2/me`)
//! fresh, now and then: the profile is asked for when connecting, then again about once a day
//! ([`PROFILE_MAX_AGE`]).
//!
//! A check never refreshes a token and never changes a connection's status: it takes only
//! connections whose stored access token is still valid for a while (so one that was just
//! refreshed, by use or by the keep-alive sweep, is checked soon after), asks `/v2/me` with that
//! token, and keeps the answer. A failed question only moves the next check: an hour later, a
//! week later when the token may not read the profile (no `PROFILE_READ`). The store hands each
//! due connection to one instance only ([`ConnectionStore::claim_profile_checks`]).
//!
//! Profiles are personal data: nothing here logs a name or an e-mail address.

use crate::state::AppState;
use calconnect::AccessToken;
use calconnect::MeError;
use calconnect::crypto::{SealContext, SealedField};
use calconnect::store::{
    AccountProfile, Connection, PROFILE_MAX_AGE, ProfileCheckQuery, ProfileWrite, StoreError,
};
use secrecy::ExposeSecret as _;
use std::time::Duration as StdDuration;
use time::Duration;

/// How often the broker looks for profiles due for a check.
pub const CHECK_EVERY: StdDuration = StdDuration::from_secs(300);

/// Connections checked per look.
const BATCH: u32 = 50;
/// Only tokens valid at least this much longer are used (more than the keeper's margin, so
/// that the token asked with is one the keeper would still hand out as it is).
const TOKEN_STILL_VALID_FOR: Duration = Duration::minutes(10);
/// A check that never reports back (the instance stopped) is retried after this.
const CLAIM_FOR: Duration = Duration::minutes(15);
/// After a failure (network, 5xx, 429, 401).
const RETRY_AFTER: Duration = Duration::hours(1);
/// After a 403: the token may not read the profile.
const RETRY_FORBIDDEN_AFTER: Duration = Duration::days(7);

/// What one look did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProfileCheckReport {
    /// Connections whose profile was asked for.
    pub checked: usize,
    /// Of those, the ones whose profile was kept (Cal.com answered).
    pub updated: usize,
}

/// Checks the profiles that are due now (at most one batch).
///
/// # Errors
/// [`StoreError`] when the claim itself fails; a failed check of one connection is not an error
/// (it is retried later).
pub async fn check_due_profiles(state: &AppState) -> Result<ProfileCheckReport, StoreError> {
    let now = state.clock.now();
    let due = state
        .store
        .claim_profile_checks(ProfileCheckQuery {
            due_by: now,
            access_valid_after: now + TOKEN_STILL_VALID_FOR,
            limit: BATCH,
            claim_until: now + CLAIM_FOR,
        })
        .await?;
    let mut report = ProfileCheckReport::default();
    for c in &due {
        report.checked += 1;
        let write = check(state, c).await;
        if write.profile.is_some() {
            report.updated += 1;
        }
        match state.store.write_profile(c.id, write).await {
            Ok(()) | Err(StoreError::NotFound { .. }) => {} // deleted meanwhile
            Err(e) => {
                tracing::warn!(connection = %c.id, error = %e, "keeping the profile failed");
            }
        }
    }
    Ok(report)
}

/// Asks `/v2/me` for `c`'s profile with its stored access token.
async fn check(state: &AppState, c: &Connection) -> ProfileWrite {
    let now = state.clock.now();
    let retry = |after: Duration| ProfileWrite {
        profile: None,
        next_check_at: now + after,
    };
    let context = SealContext::connection(c.id.as_uuid(), SealedField::AccessToken);
    let token = match state.config.keyring.open_string(&c.access_token, context) {
        Ok(token) => AccessToken::new(token.expose_secret()),
        Err(e) => {
            tracing::warn!(connection = %c.id, error = %e, "the access token cannot be opened to ask for the profile");
            return retry(RETRY_AFTER);
        }
    };
    match state.flow.me(&token).await {
        Ok(user) => ProfileWrite {
            profile: Some(AccountProfile::from_cal_user(&user, now)),
            next_check_at: now + PROFILE_MAX_AGE,
        },
        Err(MeError::Forbidden) => {
            tracing::info!(connection = %c.id, "the token may not read the profile (no PROFILE_READ); asking again in a week");
            retry(RETRY_FORBIDDEN_AFTER)
        }
        Err(e) => {
            tracing::info!(connection = %c.id, error = %e, "asking for the profile failed; asking again in an hour");
            retry(RETRY_AFTER)
        }
    }
}

/// Looks for due profiles every [`CHECK_EVERY`] (batch after batch while batches are full)
/// until `stop` says so. Only for Cal.com
/// profiles (a custom provider has no `/v2/me`): `None` otherwise.
pub(crate) fn spawn(
    state: AppState,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    if !state.flow.profile().is_cal_com() {
        return None;
    }
    Some(tokio::spawn(async move {
        loop {
            // A full batch may leave more due (after an upgrade, every connection is): go on.
            loop {
                match check_due_profiles(&state).await {
                    Ok(report) if report.checked == BATCH as usize && !*stop.borrow() => {}
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "looking for profiles to check failed");
                        break;
                    }
                }
            }
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                () = tokio::time::sleep(CHECK_EVERY) => {}
            }
        }
    }))
}
