//! The sandbox's in-memory database, shared by every handler behind one lock. Critical sections
//! are short and never await, so thousands of concurrent requests are fine.

use crate::clock::SandboxClock;
use crate::oauth::faults::FaultRule;
use crate::seed::{
    ClientStatus, ClientType, Seed, SeedClient, SeedEventType, SeedSchedule, SeedTeam, SeedUser,
    TeamRole, hash_secret,
};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use time::{Duration, OffsetDateTime};

/// Lifetimes and limits. Defaults are Cal.com's (`docs/calcom.md` §2, §3.6, §6).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Access-token lifetime (Cal.com: 1800 s).
    pub access_token_ttl: Duration,
    /// Refresh-token lifetime (Cal.com: 30 days; design for up to a year).
    pub refresh_token_ttl: Duration,
    /// Authorization-code lifetime (Cal.com: 10 minutes).
    pub code_ttl: Duration,
    /// API v2 requests allowed per bearer token per window (Cal.com: 120 for third-party OAuth
    /// tokens, `RATE_LIMIT_DEFAULT_LIMIT`; the 500 of `RATE_LIMIT_DEFAULT_LIMIT_ACCESS_TOKEN` is
    /// for platform tokens only).
    pub rate_limit: u32,
    /// Requests allowed per client IP per window for requests without a bearer: API v2 calls and
    /// `POST /v2/auth/oauth2/token` (Cal.com: 120, `RATE_LIMIT_DEFAULT_LIMIT`).
    pub ip_rate_limit: u32,
    /// Rate-limit window, also the block duration (Cal.com: 60 s).
    pub rate_window: Duration,
    /// The unmerged "PKCE for every client" branch (§3.7).
    pub pkce_required_for_all: bool,
    /// `/v2/bookings` answers an expired token with 403 "no oAuth client found" (§5).
    pub bookings_expired_token_403: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            access_token_ttl: Duration::seconds(1800),
            refresh_token_ttl: Duration::days(30),
            code_ttl: Duration::minutes(10),
            rate_limit: 120,
            ip_rate_limit: 120,
            rate_window: Duration::seconds(60),
            pkce_required_for_all: false,
            bookings_expired_token_403: false,
        }
    }
}

/// Whom a code or token belongs to: a user, or a team (then API calls act as the team owner).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Owner {
    User(i64),
    Team(i64),
}

/// A registered client, with secrets hashed as Cal.com stores them.
#[derive(Debug, Clone)]
pub struct Client {
    pub client_id: String,
    pub name: String,
    pub client_type: ClientType,
    pub secret_hashes: Vec<String>,
    pub redirect_uris: Vec<String>,
    pub scopes: Vec<String>,
    pub status: ClientStatus,
    pub owner_user_id: i64,
    pub trusted: bool,
    pub logo_url: Option<String>,
    pub website_url: Option<String>,
}

impl From<&SeedClient> for Client {
    fn from(c: &SeedClient) -> Self {
        Self {
            client_id: c.client_id.clone(),
            name: c.name.clone(),
            client_type: c.client_type,
            secret_hashes: c.secrets.iter().map(|s| hash_secret(s)).collect(),
            redirect_uris: c.redirect_uris.clone(),
            scopes: c.scopes.clone(),
            status: c.status,
            owner_user_id: c.owner_user_id,
            trusted: c.trusted,
            logo_url: c.logo_url.clone(),
            website_url: c.website_url.clone(),
        }
    }
}

/// A row of Cal.com's `AccessCode` table.
#[derive(Debug, Clone)]
pub struct AccessCode {
    pub code: String,
    pub client_id: String,
    pub owner: Owner,
    pub scopes: Vec<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub expires_at: OffsetDateTime,
}

/// A row of Cal.com's `OAuthRefreshToken` table.
#[derive(Debug, Clone)]
pub struct RefreshTokenRow {
    pub client_id: String,
    pub owner: Owner,
    pub secret: String,
    pub expires_at: OffsetDateTime,
}

/// Cal.com's `OAuthRefreshToken` table, indexed as its queries use it: by secret (is this token
/// still live?) and by (client, owner) (rotation deletes every row of the pair). A simulation
/// keeps a million rows here, so neither lookup may scan.
#[derive(Debug, Default)]
pub struct RefreshTokens {
    by_secret: HashMap<String, RefreshTokenRow>,
    by_owner: HashMap<(String, Owner), Vec<String>>,
}

impl RefreshTokens {
    /// Adds a row.
    pub fn push(&mut self, row: RefreshTokenRow) {
        self.by_owner
            .entry((row.client_id.clone(), row.owner))
            .or_default()
            .push(row.secret.clone());
        self.by_secret.insert(row.secret.clone(), row);
    }

    /// Whether a row carries `secret`.
    pub fn contains_secret(&self, secret: &str) -> bool {
        self.by_secret.contains_key(secret)
    }

    /// Deletes every row of (client, owner); returns how many there were.
    pub fn remove_owner(&mut self, client_id: &str, owner: Owner) -> usize {
        let secrets = self
            .by_owner
            .remove(&(client_id.to_owned(), owner))
            .unwrap_or_default();
        for secret in &secrets {
            self.by_secret.remove(secret);
        }
        secrets.len()
    }

    /// Rows of (client, owner).
    pub fn count_owner(&self, client_id: &str, owner: Owner) -> usize {
        self.by_owner
            .get(&(client_id.to_owned(), owner))
            .map_or(0, Vec::len)
    }

    /// Every row, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &RefreshTokenRow> {
        self.by_secret.values()
    }
}

/// A row of Cal.com's `OAuthAuthorization` table (consent given by a user to a client).
#[derive(Debug, Clone)]
pub struct Authorization {
    pub scopes: Vec<String>,
    pub created_at: OffsetDateTime,
    pub last_refreshed_at: Option<OffsetDateTime>,
}

/// A booking with its absolute start (seed bookings are relative to the sandbox's start).
#[derive(Debug, Clone)]
pub struct Booking {
    pub id: i64,
    pub uid: String,
    pub user_id: i64,
    pub event_type_id: i64,
    pub title: String,
    pub start: OffsetDateTime,
    pub end: OffsetDateTime,
    pub status: String,
    pub attendee_name: String,
    pub attendee_email: String,
    pub attendee_time_zone: String,
    pub created_at: OffsetDateTime,
}

/// Everything mutable.
#[derive(Debug, Default)]
pub struct Db {
    pub clients: BTreeMap<String, Client>,
    pub users: BTreeMap<i64, SeedUser>,
    pub teams: Vec<SeedTeam>,
    pub schedules: Vec<SeedSchedule>,
    pub event_types: Vec<SeedEventType>,
    pub bookings: Vec<Booking>,
    /// Authorization codes by code value.
    pub codes: HashMap<String, AccessCode>,
    pub refresh_tokens: RefreshTokens,
    /// Consent records by (user id, client id).
    pub authorizations: BTreeMap<(i64, String), Authorization>,
    /// Signed-in browser sessions: cookie value -> user id.
    pub sessions: HashMap<String, i64>,
    /// Faults waiting to hit the token endpoints (control surface).
    pub faults: Vec<FaultRule>,
    /// Token-endpoint calls by (endpoint, grant, outcome).
    pub token_calls: BTreeMap<(TokenEndpoint, String, String), u64>,
    /// Token-endpoint calls per minute of the sandbox clock (Unix minute), whatever their
    /// outcome: what a rate limiter at Cal.com would count.
    pub token_calls_per_minute: BTreeMap<i64, u64>,
    /// Every authorization code handed out, oldest first (bounded by [`ISSUED_LOG_CAP`]).
    pub issued_codes: VecDeque<IssuedCode>,
    /// Every token pair handed out, oldest first (bounded by [`ISSUED_LOG_CAP`]).
    pub issued_tokens: VecDeque<IssuedTokens>,
}

/// How many issued codes and token pairs the sandbox remembers for tests.
pub const ISSUED_LOG_CAP: usize = 10_000;

/// Which token endpoint a call hit (`docs/calcom.md` §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenEndpoint {
    /// `POST /v2/auth/oauth2/token`.
    V2,
    /// Legacy `POST /api/auth/oauth/token`.
    LegacyToken,
    /// Legacy `POST /api/auth/oauth/refreshToken`.
    LegacyRefresh,
}

impl TokenEndpoint {
    pub fn is_legacy(self) -> bool {
        !matches!(self, TokenEndpoint::V2)
    }
}

/// An authorization code as handed to the browser (kept after the code is used, for tests).
#[derive(Clone, serde::Serialize)]
pub struct IssuedCode {
    pub code: String,
    pub client_id: String,
    /// The signed-in user who clicked Allow (also for team codes).
    pub user_id: i64,
    pub team_id: Option<i64>,
    pub scopes: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: OffsetDateTime,
}

impl std::fmt::Debug for IssuedCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCode")
            .field("code", &"[redacted]")
            .field("client_id", &self.client_id)
            .field("user_id", &self.user_id)
            .field("team_id", &self.team_id)
            .finish_non_exhaustive()
    }
}

/// A token pair as returned by a token endpoint (kept for tests).
#[derive(Clone, serde::Serialize)]
pub struct IssuedTokens {
    pub endpoint: TokenEndpoint,
    /// `authorization_code` or `refresh_token`.
    pub grant: String,
    pub client_id: String,
    pub user_id: Option<i64>,
    pub team_id: Option<i64>,
    pub access_token: String,
    pub refresh_token: String,
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: OffsetDateTime,
}

impl std::fmt::Debug for IssuedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedTokens")
            .field("endpoint", &self.endpoint)
            .field("grant", &self.grant)
            .field("client_id", &self.client_id)
            .field("user_id", &self.user_id)
            .field("team_id", &self.team_id)
            .field("access_token", &"[redacted]")
            .field("refresh_token", &"[redacted]")
            .finish_non_exhaustive()
    }
}

/// Appends to a bounded log, dropping the oldest entry when full.
pub fn push_bounded<T>(log: &mut VecDeque<T>, item: T) {
    if log.len() >= ISSUED_LOG_CAP {
        log.pop_front();
    }
    log.push_back(item);
}

impl Db {
    /// Builds the database from a seed, resolving relative booking times against `now`.
    pub fn from_seed(seed: &Seed, now: OffsetDateTime) -> Self {
        Db {
            clients: seed
                .clients
                .iter()
                .map(|c| (c.client_id.clone(), c.into()))
                .collect(),
            users: seed.users.iter().map(|u| (u.id, u.clone())).collect(),
            teams: seed.teams.clone(),
            schedules: seed.schedules.clone(),
            event_types: seed.event_types.clone(),
            bookings: seed
                .bookings
                .iter()
                .map(|b| {
                    let start = now + Duration::minutes(b.starts_in_minutes);
                    Booking {
                        id: b.id,
                        uid: b.uid.clone(),
                        user_id: b.user_id,
                        event_type_id: b.event_type_id,
                        title: b.title.clone(),
                        start,
                        end: start + Duration::minutes(b.duration_minutes),
                        status: b.status.clone(),
                        attendee_name: b.attendee_name.clone(),
                        attendee_email: b.attendee_email.clone(),
                        attendee_time_zone: b.attendee_time_zone.clone(),
                        created_at: now - Duration::days(7),
                    }
                })
                .collect(),
            ..Db::default()
        }
    }

    /// Counts one token-endpoint call.
    pub fn count_token_call(&mut self, endpoint: TokenEndpoint, grant: &str, outcome: &str) {
        *self
            .token_calls
            .entry((endpoint, grant.to_owned(), outcome.to_owned()))
            .or_default() += 1;
    }

    /// The user an owner acts as: the user, or the team's owner (`api-auth.strategy.ts`).
    pub fn acting_user(&self, owner: Owner) -> Option<&SeedUser> {
        match owner {
            Owner::User(id) => self.users.get(&id),
            Owner::Team(team_id) => {
                let team = self.teams.iter().find(|t| t.id == team_id)?;
                let m = team.members.iter().find(|m| m.role == TeamRole::Owner)?;
                self.users.get(&m.user_id)
            }
        }
    }
}

/// State shared by every handler.
#[derive(Debug)]
pub struct Shared {
    pub clock: SandboxClock,
    pub settings: Mutex<Settings>,
    /// `CALENDSO_ENCRYPTION_KEY`: the HS256 key for every token.
    pub signing_key: Vec<u8>,
    pub db: Mutex<Db>,
    /// API v2 state: rate-limit counters and request statistics.
    pub api: crate::api::ApiState,
    /// Where the grants are kept across restarts, if anywhere ([`crate::persist`]).
    pub(crate) persistence: Option<crate::persist::Persistence>,
}

impl Shared {
    /// Locks the database. A panic while holding the lock cannot leave it half-written in a way
    /// that matters to a test double, so poisoning is ignored.
    pub fn db(&self) -> MutexGuard<'_, Db> {
        self.db.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts one token-endpoint call, by kind and by minute of the sandbox clock.
    pub fn count_token_call(&self, endpoint: TokenEndpoint, grant: &str, outcome: &str) {
        let minute = self.clock.now_unix().div_euclid(60);
        let mut db = self.db();
        db.count_token_call(endpoint, grant, outcome);
        *db.token_calls_per_minute.entry(minute).or_default() += 1;
    }

    /// A copy of the current settings.
    pub fn settings(&self) -> Settings {
        self.settings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Records that kept state (grants, codes, client statuses, the clock) changed: the
    /// sandbox's state file, if it has one, is rewritten soon.
    pub fn changed(&self) {
        if let Some(p) = &self.persistence {
            p.changed();
        }
    }

    /// Waits until every change recorded so far is in the state file (at once without one).
    pub async fn saved(&self) {
        if let Some(p) = &self.persistence {
            p.saved().await;
        }
    }

    /// Moves the clock (and keeps the new offset).
    pub fn advance_clock(&self, by: Duration) {
        self.clock.advance(by);
        self.changed();
    }

    /// Changes settings in place.
    pub fn update_settings(&self, f: impl FnOnce(&mut Settings)) {
        f(&mut self.settings.lock().unwrap_or_else(PoisonError::into_inner));
    }
}
