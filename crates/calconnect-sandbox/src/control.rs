//! The control surface: JSON under `/_sandbox/` and the same operations as methods on
//! [`Sandbox`]. Moves the clock, revokes grants, changes client status and settings, injects
//! token-endpoint faults, and reads the call counters and the issued codes and tokens.
//!
//! | Method and path | Body / query | Answer |
//! |---|---|---|
//! | `GET /_sandbox/` | | HTML index of these controls |
//! | `GET /_sandbox/clock`, `POST /_sandbox/clock/advance` | `{"seconds":600}` | `{"now","offset_seconds"}` |
//! | `POST /_sandbox/grants/revoke` | `{"client_id","user_id"}` or `{"client_id","team_id"}` | `{"revoked":n}` |
//! | `POST /_sandbox/clients/{client_id}/status` | `{"status":"APPROVED"\|"PENDING"\|"REJECTED"}` | the client's id and status |
//! | `GET`/`POST /_sandbox/settings` | partial settings (see [`SettingsView`]) | all settings |
//! | `GET`/`POST`/`DELETE /_sandbox/faults` | [`FaultSpec`] | armed faults |
//! | `GET`/`DELETE /_sandbox/token-calls` | `?grant=&outcome=` | counters, or `{"count":n}` |
//! | `GET /_sandbox/codes`, `GET /_sandbox/codes/latest` | `?client_id=&user_id=` | issued codes / `{"code"}` |
//! | `GET /_sandbox/tokens` | `?client_id=&user_id=&team_id=` | issued token pairs |
//! | `GET /_sandbox/authorizations` | | consent records |

use crate::oauth::faults::{FaultKind, FaultRule, FaultTarget};
use crate::seed::ClientStatus;
use crate::server::Sandbox;
use crate::state::{IssuedCode, IssuedTokens, Owner, Settings, Shared, TokenEndpoint};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

/// A fault to arm: its kind (flattened: `{"kind":"server_error","status":503}`), which endpoints
/// it hits, and for how many calls (`count`, default 1) or for how long (`for_seconds`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultSpec {
    #[serde(flatten)]
    pub kind: FaultKind,
    #[serde(default)]
    pub target: FaultTarget,
    #[serde(default)]
    pub count: Option<u32>,
    #[serde(default)]
    pub for_seconds: Option<i64>,
}

/// Errors of the control operations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    #[error("no client {0} in this sandbox; see GET /_sandbox/ for the seeded clients")]
    UnknownClient(String),
    #[error("invalid fault: {0}")]
    InvalidFault(String),
    #[error("give exactly one of user_id or team_id")]
    OwnerRequired,
}

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        let status = match self {
            ControlError::UnknownClient(_) => StatusCode::NOT_FOUND,
            _ => StatusCode::BAD_REQUEST,
        };
        (status, Json(json!({"error": self.to_string()}))).into_response()
    }
}

/// One counter: calls of a token endpoint by grant and outcome (`ok`,
/// `invalid_grant:refresh_token_revoked`, `fault:server_error`, `rate_limited` for a v2 call the
/// per-IP throttler refused, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenCallCount {
    pub endpoint: TokenEndpoint,
    pub grant: String,
    pub outcome: String,
    pub count: u64,
}

/// Settings as the control surface shows and patches them (durations in seconds).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsView {
    pub access_token_ttl_seconds: Option<i64>,
    pub refresh_token_ttl_seconds: Option<i64>,
    pub code_ttl_seconds: Option<i64>,
    /// Requests per bearer token per window (API v2).
    pub rate_limit: Option<u32>,
    /// Requests per client IP per window without a bearer (API v2 and the v2 token endpoint).
    pub ip_rate_limit: Option<u32>,
    pub rate_window_seconds: Option<i64>,
    pub pkce_required_for_all: Option<bool>,
    pub bookings_expired_token_403: Option<bool>,
}

impl SettingsView {
    /// The view of the given settings, every field set.
    pub fn of(s: &Settings) -> Self {
        Self {
            access_token_ttl_seconds: Some(s.access_token_ttl.whole_seconds()),
            refresh_token_ttl_seconds: Some(s.refresh_token_ttl.whole_seconds()),
            code_ttl_seconds: Some(s.code_ttl.whole_seconds()),
            rate_limit: Some(s.rate_limit),
            ip_rate_limit: Some(s.ip_rate_limit),
            rate_window_seconds: Some(s.rate_window.whole_seconds()),
            pkce_required_for_all: Some(s.pkce_required_for_all),
            bookings_expired_token_403: Some(s.bookings_expired_token_403),
        }
    }

    /// Applies the fields that are set.
    pub fn apply(&self, s: &mut Settings) {
        if let Some(v) = self.access_token_ttl_seconds {
            s.access_token_ttl = Duration::seconds(v);
        }
        if let Some(v) = self.refresh_token_ttl_seconds {
            s.refresh_token_ttl = Duration::seconds(v);
        }
        if let Some(v) = self.code_ttl_seconds {
            s.code_ttl = Duration::seconds(v);
        }
        if let Some(v) = self.rate_limit {
            s.rate_limit = v;
        }
        if let Some(v) = self.ip_rate_limit {
            s.ip_rate_limit = v;
        }
        if let Some(v) = self.rate_window_seconds {
            s.rate_window = Duration::seconds(v);
        }
        if let Some(v) = self.pkce_required_for_all {
            s.pkce_required_for_all = v;
        }
        if let Some(v) = self.bookings_expired_token_403 {
            s.bookings_expired_token_403 = v;
        }
    }
}

// ---- operations, shared by the HTTP surface and the handle ----

fn arm_fault(shared: &Shared, spec: &FaultSpec) -> Result<FaultRule, ControlError> {
    spec.kind.validate().map_err(ControlError::InvalidFault)?;
    let until = match spec.for_seconds {
        Some(s) if s <= 0 => {
            return Err(ControlError::InvalidFault(
                "for_seconds must be positive".into(),
            ));
        }
        Some(s) => Some(shared.clock.now() + Duration::seconds(s)),
        None => None,
    };
    let remaining = match (spec.count, until) {
        (Some(0), _) => return Err(ControlError::InvalidFault("count must be positive".into())),
        (Some(_), Some(_)) => {
            return Err(ControlError::InvalidFault(
                "give count or for_seconds, not both".into(),
            ));
        }
        (Some(n), None) => Some(n),
        (None, Some(_)) => None,
        (None, None) => Some(1),
    };
    let rule = FaultRule {
        kind: spec.kind.clone(),
        target: spec.target,
        remaining,
        until,
    };
    shared.db().faults.push(rule.clone());
    Ok(rule)
}

fn revoke(shared: &Shared, client_id: &str, owner: Owner) -> usize {
    let mut db = shared.db();
    let gone = db.refresh_tokens.remove_owner(client_id, owner);
    drop(db);
    shared.changed();
    gone
}

fn set_status(shared: &Shared, client_id: &str, status: ClientStatus) -> Result<(), ControlError> {
    let mut db = shared.db();
    let client = db
        .clients
        .get_mut(client_id)
        .ok_or_else(|| ControlError::UnknownClient(client_id.to_owned()))?;
    client.status = status;
    drop(db);
    shared.changed();
    Ok(())
}

fn counts(shared: &Shared) -> Vec<TokenCallCount> {
    shared
        .db()
        .token_calls
        .iter()
        .map(|((endpoint, grant, outcome), count)| TokenCallCount {
            endpoint: *endpoint,
            grant: grant.clone(),
            outcome: outcome.clone(),
            count: *count,
        })
        .collect()
}

fn count_of(shared: &Shared, grant: &str, outcome: &str) -> u64 {
    shared
        .db()
        .token_calls
        .iter()
        .filter(|((_, g, o), _)| g == grant && o == outcome)
        .map(|(_, n)| n)
        .sum()
}

fn codes(shared: &Shared, client_id: Option<&str>, user_id: Option<i64>) -> Vec<IssuedCode> {
    shared
        .db()
        .issued_codes
        .iter()
        .filter(|c| client_id.is_none_or(|id| c.client_id == id))
        .filter(|c| user_id.is_none_or(|u| c.user_id == u))
        .cloned()
        .collect()
}

fn tokens(shared: &Shared, q: &IssuedQuery) -> Vec<IssuedTokens> {
    shared
        .db()
        .issued_tokens
        .iter()
        .filter(|t| q.client_id.as_deref().is_none_or(|id| t.client_id == id))
        .filter(|t| q.user_id.is_none_or(|u| t.user_id == Some(u)))
        .filter(|t| q.team_id.is_none_or(|u| t.team_id == Some(u)))
        .cloned()
        .collect()
}

fn clock_json(shared: &Shared) -> serde_json::Value {
    let now = shared
        .clock
        .now()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    json!({"now": now, "offset_seconds": shared.clock.offset().whole_seconds()})
}

// ---- the handle ----

/// Control methods (the same operations as the HTTP surface).
impl Sandbox {
    /// Arms a fault for the next `count` token calls of any endpoint.
    pub fn inject_fault(&self, kind: FaultKind, count: u32) -> Result<(), ControlError> {
        self.arm_fault(FaultSpec {
            kind,
            target: FaultTarget::Any,
            count: Some(count),
            for_seconds: None,
        })
    }

    /// Arms a fault from a full spec (target, count or duration).
    pub fn arm_fault(&self, spec: FaultSpec) -> Result<(), ControlError> {
        arm_fault(&self.shared, &spec).map(|_| ())
    }

    /// Fails every token call with `kind` for `duration` of sandbox time (demos).
    pub fn fail_for(&self, kind: FaultKind, duration: Duration) -> Result<(), ControlError> {
        self.arm_fault(FaultSpec {
            kind,
            target: FaultTarget::Any,
            count: None,
            for_seconds: Some(duration.whole_seconds().max(1)),
        })
    }

    /// The armed faults.
    pub fn faults(&self) -> Vec<FaultRule> {
        self.shared.db().faults.clone()
    }

    /// Disarms every fault.
    pub fn clear_faults(&self) {
        self.shared.db().faults.clear();
    }

    /// Token calls with this grant (`authorization_code`, `refresh_token`, `unknown`) and outcome,
    /// summed over the v2 and legacy endpoints.
    pub fn token_calls(&self, grant: &str, outcome: &str) -> u64 {
        count_of(&self.shared, grant, outcome)
    }

    /// Every counter.
    pub fn token_call_counts(&self) -> Vec<TokenCallCount> {
        counts(&self.shared)
    }

    /// Token-endpoint calls per minute of the sandbox clock (key: Unix time / 60), whatever
    /// their outcome.
    pub fn token_calls_per_minute(&self) -> std::collections::BTreeMap<i64, u64> {
        self.shared.db().token_calls_per_minute.clone()
    }

    /// Zeroes the counters.
    pub fn reset_token_calls(&self) {
        let mut db = self.shared.db();
        db.token_calls.clear();
        db.token_calls_per_minute.clear();
    }

    /// Deletes every refresh-token row of (client, owner): the next refresh of any of its tokens
    /// gets 400 `invalid_grant`/`refresh_token_revoked`. Returns how many rows went.
    pub fn revoke_grant(&self, client_id: &str, owner: Owner) -> usize {
        revoke(&self.shared, client_id, owner)
    }

    /// Sets a client's review status (`docs/calcom.md` §1).
    pub fn set_client_status(
        &self,
        client_id: &str,
        status: ClientStatus,
    ) -> Result<(), ControlError> {
        set_status(&self.shared, client_id, status)
    }

    /// The current settings.
    pub fn settings(&self) -> Settings {
        self.shared.settings()
    }

    /// Changes settings in place (PKCE for all, TTLs, rate limit, ...).
    pub fn update_settings(&self, f: impl FnOnce(&mut Settings)) {
        self.shared.update_settings(f);
    }

    /// The newest code handed to `user_id` for `client_id` (used or not).
    pub fn latest_code(&self, client_id: &str, user_id: i64) -> Option<String> {
        codes(&self.shared, Some(client_id), Some(user_id))
            .pop()
            .map(|c| c.code)
    }

    /// Every code handed out, oldest first.
    pub fn issued_codes(&self) -> Vec<IssuedCode> {
        codes(&self.shared, None, None)
    }

    /// Every token pair handed out, oldest first.
    pub fn issued_tokens(&self) -> Vec<IssuedTokens> {
        self.shared.db().issued_tokens.iter().cloned().collect()
    }

    /// Live refresh-token rows of (client, owner).
    pub fn refresh_token_rows(&self, client_id: &str, owner: Owner) -> usize {
        self.shared
            .db()
            .refresh_tokens
            .count_owner(client_id, owner)
    }

    /// The users one can sign in as (the sign-in page's choices), by id.
    pub fn users(&self) -> Vec<crate::seed::SeedUser> {
        self.shared.db().users.values().cloned().collect()
    }

    /// The consent record of (user, client): scopes, created, last refreshed.
    pub fn authorization(
        &self,
        user_id: i64,
        client_id: &str,
    ) -> Option<crate::state::Authorization> {
        self.shared
            .db()
            .authorizations
            .get(&(user_id, client_id.to_owned()))
            .cloned()
    }

    /// Mints an access and refresh token pair for `owner` of `client_id` and stores its refresh
    /// secret, as a code exchange ends, without the consent page, the code or an HTTP request:
    /// seeding for tests and simulations that need many connections (the pair then rotates
    /// through the token endpoint like any other). Counts no token call.
    ///
    /// # Errors
    /// [`ControlError::UnknownClient`].
    pub fn issue_tokens(
        &self,
        client_id: &str,
        owner: Owner,
        scopes: &[String],
    ) -> Result<IssuedTokens, ControlError> {
        if !self.shared.db().clients.contains_key(client_id) {
            return Err(ControlError::UnknownClient(client_id.to_owned()));
        }
        let now = self.shared.clock.now();
        let minted = crate::oauth::grants::issue(
            &self.shared,
            TokenEndpoint::V2,
            client_id,
            owner,
            scopes,
            (None, None),
        );
        let (user_id, team_id) = match owner {
            Owner::User(u) => (Some(u), None),
            Owner::Team(t) => (None, Some(t)),
        };
        Ok(IssuedTokens {
            endpoint: TokenEndpoint::V2,
            grant: "authorization_code".to_owned(),
            client_id: client_id.to_owned(),
            user_id,
            team_id,
            access_token: minted.access_token,
            refresh_token: minted.refresh_token,
            issued_at: now,
        })
    }
}

// ---- HTTP ----

type S = State<Arc<Shared>>;

/// The control routes (nested under `/_sandbox`).
pub fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/", get(index))
        .route(
            "/clock",
            get(|State(s): S| async move { Json(clock_json(&s)) }),
        )
        .route("/clock/advance", post(advance))
        .route("/grants/revoke", post(revoke_http))
        .route("/clients/{client_id}/status", post(status_http))
        .route("/settings", get(settings_get).post(settings_post))
        .route(
            "/faults",
            get(|State(s): S| async move { Json(s.db().faults.clone()) })
                .post(faults_post)
                .delete(|State(s): S| async move {
                    s.db().faults.clear();
                    Json(json!([]))
                }),
        )
        .route("/token-calls", get(calls_get).delete(calls_delete))
        .route("/codes", get(codes_get))
        .route("/codes/latest", get(latest_code))
        .route(
            "/tokens",
            get(|State(s): S, Query(q): Query<IssuedQuery>| async move { Json(tokens(&s, &q)) }),
        )
        .route("/authorizations", get(authorizations))
}

#[derive(Debug, Deserialize)]
struct Advance {
    seconds: i64,
}

async fn advance(State(s): S, Json(a): Json<Advance>) -> Json<serde_json::Value> {
    s.advance_clock(Duration::seconds(a.seconds));
    Json(clock_json(&s))
}

#[derive(Debug, Deserialize)]
struct RevokeBody {
    client_id: String,
    user_id: Option<i64>,
    team_id: Option<i64>,
}

async fn revoke_http(
    State(s): S,
    Json(b): Json<RevokeBody>,
) -> Result<Json<serde_json::Value>, ControlError> {
    let owner = match (b.user_id, b.team_id) {
        (Some(u), None) => Owner::User(u),
        (None, Some(t)) => Owner::Team(t),
        _ => return Err(ControlError::OwnerRequired),
    };
    Ok(Json(json!({"revoked": revoke(&s, &b.client_id, owner)})))
}

#[derive(Debug, Deserialize)]
struct StatusBody {
    status: ClientStatus,
}

async fn status_http(
    State(s): S,
    Path(client_id): Path<String>,
    Json(b): Json<StatusBody>,
) -> Result<Json<serde_json::Value>, ControlError> {
    set_status(&s, &client_id, b.status)?;
    Ok(Json(json!({"client_id": client_id, "status": b.status})))
}

async fn settings_get(State(s): S) -> Json<SettingsView> {
    Json(SettingsView::of(&s.settings()))
}

async fn settings_post(State(s): S, Json(patch): Json<SettingsView>) -> Json<SettingsView> {
    s.update_settings(|st| patch.apply(st));
    Json(SettingsView::of(&s.settings()))
}

async fn faults_post(
    State(s): S,
    Json(spec): Json<FaultSpec>,
) -> Result<Json<Vec<FaultRule>>, ControlError> {
    arm_fault(&s, &spec)?;
    Ok(Json(s.db().faults.clone()))
}

#[derive(Debug, Deserialize)]
struct CallsQuery {
    grant: Option<String>,
    outcome: Option<String>,
}

async fn calls_get(State(s): S, Query(q): Query<CallsQuery>) -> Response {
    match (q.grant, q.outcome) {
        (Some(g), Some(o)) => Json(json!({"count": count_of(&s, &g, &o)})).into_response(),
        _ => Json(counts(&s)).into_response(),
    }
}

async fn calls_delete(State(s): S) -> Json<serde_json::Value> {
    s.db().token_calls.clear();
    Json(json!([]))
}

#[derive(Debug, Deserialize)]
struct IssuedQuery {
    client_id: Option<String>,
    user_id: Option<i64>,
    team_id: Option<i64>,
}

async fn codes_get(State(s): S, Query(q): Query<IssuedQuery>) -> Json<Vec<IssuedCode>> {
    Json(codes(&s, q.client_id.as_deref(), q.user_id))
}

async fn latest_code(State(s): S, Query(q): Query<IssuedQuery>) -> Response {
    match codes(&s, q.client_id.as_deref(), q.user_id).pop() {
        Some(c) => Json(json!({"code": c.code})).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no code issued yet for this client/user"})),
        )
            .into_response(),
    }
}

#[derive(Debug, Serialize)]
struct AuthorizationView {
    user_id: i64,
    client_id: String,
    scopes: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    last_refreshed_at: Option<OffsetDateTime>,
}

async fn authorizations(State(s): S) -> Json<Vec<AuthorizationView>> {
    let db = s.db();
    Json(
        db.authorizations
            .iter()
            .map(|((u, c), a)| AuthorizationView {
                user_id: *u,
                client_id: c.clone(),
                scopes: a.scopes.clone(),
                created_at: a.created_at,
                last_refreshed_at: a.last_refreshed_at,
            })
            .collect(),
    )
}

/// `GET /_sandbox/`: the HTML index.
pub(crate) async fn index(State(s): S) -> Response {
    crate::oauth::control_index(&s)
}
