//! Identifiers and records kept by a [`super::ConnectionStore`].

use crate::crypto::SealedBlob;
use rand::{CryptoRng, RngCore};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use std::fmt;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// Truncates to whole microseconds: the precision every backend keeps, so a value read back
/// equals the value written.
pub fn truncate_to_micros(t: OffsetDateTime) -> OffsetDateTime {
    let nanos = t.nanosecond();
    t - Duration::nanoseconds(i64::from(nanos % 1_000))
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh random id.
            pub fn random(rng: &mut (impl RngCore + CryptoRng + ?Sized)) -> Self {
                let mut bytes = [0u8; 16];
                rng.fill_bytes(&mut bytes);
                Self(uuid::Builder::from_random_bytes(bytes).into_uuid())
            }
            /// Wraps a UUID (from a store row or a URL already parsed).
            pub fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }
            /// The UUID.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

uuid_id!(
    /// Identifies a stored connection. Part of the associated data of its sealed tokens.
    ConnectionId
);

impl ConnectionId {
    /// The nil id, which no connection has: in a store's change feed
    /// ([`super::ConnectionStore::subscribe_changes`]), "any connection may have changed".
    pub const ANY: Self = Self(Uuid::nil());
}
uuid_id!(
    /// Identifies a pending authorization. Part of the associated data of its sealed verifier.
    PendingId
);

/// The application's own id for its end user (opaque to calconnect): 1 to 255 characters, no
/// control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EndUserId(String);

/// An end-user id was empty, too long or had control characters.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid end-user id: use 1 to 255 characters without control characters")]
pub struct InvalidEndUserId;

impl EndUserId {
    /// Parses an end-user id.
    ///
    /// # Errors
    /// [`InvalidEndUserId`].
    pub fn new(id: &str) -> Result<Self, InvalidEndUserId> {
        if id.is_empty() || id.len() > 255 || id.chars().any(char::is_control) {
            return Err(InvalidEndUserId);
        }
        Ok(Self(id.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whose Cal.com tokens these are: a user or a team (`userId` / `teamId` claims, docs/calcom.md
/// §3.6; team tokens act as the team owner, §3.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CalOwner {
    /// A Cal.com user id.
    User(i64),
    /// A Cal.com team id.
    Team(i64),
}

impl CalOwner {
    /// `"user"` or `"team"`, as stored.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::User(_) => "user",
            Self::Team(_) => "team",
        }
    }

    /// The numeric id.
    pub fn id(&self) -> i64 {
        match self {
            Self::User(id) | Self::Team(id) => *id,
        }
    }

    /// Rebuilds from the stored kind and id; `None` for an unknown kind.
    pub fn from_parts(kind: &str, id: i64) -> Option<Self> {
        match kind {
            "user" => Some(Self::User(id)),
            "team" => Some(Self::Team(id)),
            _ => None,
        }
    }
}

/// The Cal.com identity of a connection, kept in clear so it can be looked up. Cal.com keeps one
/// live refresh token per (client, user or team) (docs/calcom.md §3.4, refresh step 6), so a
/// store holds at most one connection per identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CalIdentity {
    /// The OAuth client id.
    pub client_id: String,
    /// The user or team.
    pub owner: CalOwner,
}

/// Health of a connection (docs/architecture.md §3.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionStatus {
    /// Tokens work or can be refreshed.
    Active,
    /// Revoked, expired or client rejected: the user must connect again.
    NeedsReauth,
    /// A refresh was started but its result never written (crash between Cal.com's answer and
    /// the write): the refresh token is probably dead.
    RefreshLost,
}

impl ConnectionStatus {
    /// The stored name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::NeedsReauth => "needs_reauth",
            Self::RefreshLost => "refresh_lost",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "needs_reauth" => Some(Self::NeedsReauth),
            "refresh_lost" => Some(Self::RefreshLost),
            _ => None,
        }
    }
}

/// Who holds a refresh lease (an instance or task name; not secret).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LeaseOwner(String);

impl LeaseOwner {
    /// Names a lease owner.
    pub fn new(owner: impl Into<String>) -> Self {
        Self(owner.into())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LeaseOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A refresh lease on a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshLease {
    /// Holder.
    pub owner: LeaseOwner,
    /// Valid until (exclusive).
    pub until: OffsetDateTime,
}

/// A stored connection. Tokens are sealed; open them with
/// [`crate::crypto::Keyring::open_string`] and [`crate::crypto::SealContext::connection`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// Id (part of the tokens' associated data).
    pub id: ConnectionId,
    /// The application's end user.
    pub end_user: EndUserId,
    /// Cal.com identity, unique per store.
    pub identity: CalIdentity,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// Health.
    pub status: ConnectionStatus,
    /// Why the status was last set.
    pub status_reason: String,
    /// When the status was last changed.
    pub status_changed_at: OffsetDateTime,
    /// Sealed access token.
    pub access_token: SealedBlob,
    /// Sealed refresh token, if the provider gave one.
    pub refresh_token: Option<SealedBlob>,
    /// Absolute access-token expiry (never relative, docs/architecture.md §3.3).
    pub access_expires_at: Option<OffsetDateTime>,
    /// When the current refresh token was obtained (code exchange or last refresh).
    pub last_refreshed_at: OffsetDateTime,
    /// Estimated refresh-token expiry (sliding window, docs/calcom.md §3.6; 30 days to 1 year).
    pub refresh_expires_at_estimate: Option<OffsetDateTime>,
    /// Fencing version: bumped by every token or status write.
    pub version: i64,
    /// The refresh lease, if one was taken and not released (it may have expired).
    pub lease: Option<RefreshLease>,
    /// Set before a refresh call, cleared by the token write (docs/architecture.md §3.6).
    pub refresh_intent_started_at: Option<OffsetDateTime>,
    /// Who holds the account, as Cal.com last said (`GET /v2/me`); kept while the connection is
    /// in trouble. `None` until it was asked successfully.
    pub profile: Option<super::AccountProfile>,
    /// When the profile is next due to be asked for.
    pub profile_check_at: OffsetDateTime,
    /// Created.
    pub created_at: OffsetDateTime,
    /// Last written.
    pub updated_at: OffsetDateTime,
}

/// A freshly authorized connection, tokens already sealed for `id`.
#[derive(Debug, Clone)]
pub struct NewConnection {
    /// The id the tokens were sealed for.
    pub id: ConnectionId,
    /// The application's end user.
    pub end_user: EndUserId,
    /// Cal.com identity.
    pub identity: CalIdentity,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// Sealed access token.
    pub access_token: SealedBlob,
    /// Sealed refresh token.
    pub refresh_token: Option<SealedBlob>,
    /// Absolute access expiry.
    pub access_expires_at: Option<OffsetDateTime>,
    /// Estimated refresh-token expiry.
    pub refresh_expires_at_estimate: Option<OffsetDateTime>,
    /// The account's profile, if it was asked for while connecting: the next check is then
    /// [`super::PROFILE_MAX_AGE`] after it. `None` keeps a profile already stored (same
    /// identity) and makes the next check due at once.
    pub profile: Option<super::AccountProfile>,
}

/// What [`super::ConnectionStore::upsert_connection`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpsertOutcome {
    /// A new connection.
    Created(Connection),
    /// The identity was already connected: its tokens were replaced (instead of creating a rival
    /// connection whose refreshes would kill this one, docs/calcom.md §3.4).
    Updated {
        /// The connection after the update.
        connection: Connection,
        /// Its end user before (differs from the new one if another app user authorized the
        /// same Cal.com account).
        previous_end_user: EndUserId,
        /// Its status before.
        previous_status: ConnectionStatus,
    },
}

impl UpsertOutcome {
    /// The stored connection.
    pub fn connection(&self) -> &Connection {
        match self {
            Self::Created(c) | Self::Updated { connection: c, .. } => c,
        }
    }
}

/// New tokens from a refresh, written only if the version still matches (fencing).
#[derive(Debug, Clone)]
pub struct TokenWrite {
    /// The version read before the refresh.
    pub expected_version: i64,
    /// Sealed new access token.
    pub access_token: SealedBlob,
    /// Sealed new refresh token; `None` keeps the stored one (providers that do not rotate).
    pub refresh_token: Option<SealedBlob>,
    /// Absolute access expiry.
    pub access_expires_at: Option<OffsetDateTime>,
    /// Estimated refresh-token expiry.
    pub refresh_expires_at_estimate: Option<OffsetDateTime>,
    /// Granted scopes if the response named them; `None` keeps the stored ones.
    pub scopes: Option<Vec<String>>,
}

/// A status change, recorded as an event when it changes the status.
#[derive(Debug, Clone)]
pub struct StatusChange {
    /// New status.
    pub status: ConnectionStatus,
    /// Why (machine-readable reason such as `invalid_grant:refresh_token_revoked`).
    pub reason: String,
    /// If set, the change applies only at this version.
    pub expected_version: Option<i64>,
}

/// A lease that was granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseGrant {
    /// The connection's version when the lease was granted: use it for the fenced write.
    pub version: i64,
    /// The lease expires then.
    pub until: OffsetDateTime,
}

/// Which connections are due for refresh; the ones returned are leased to `owner`.
#[derive(Debug, Clone)]
pub struct DueQuery {
    /// Due when the access token expires before this.
    pub access_expires_before: OffsetDateTime,
    /// Due when the refresh token was obtained before this (keep-alive sweep).
    pub last_refreshed_before: OffsetDateTime,
    /// At most this many.
    pub limit: u32,
    /// Lease owner.
    pub owner: LeaseOwner,
    /// Lease length.
    pub lease_for: Duration,
}

/// A digest of an OAuth `state`. Stores index pending authorizations by it, so the state itself
/// is never stored and lookups compare digests, not secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StateKey([u8; 32]);

/// A digest of the browser-binding cookie value of a pending authorization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BrowserBinding([u8; 32]);

fn digest(domain: &[u8], secret: &SecretString) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(domain);
    h.update(secret.expose_secret().as_bytes());
    h.finalize().into()
}

macro_rules! digest_impl {
    ($name:ident, $domain:literal) => {
        impl $name {
            /// Digests the secret value.
            pub fn of(secret: &SecretString) -> Self {
                Self(digest($domain, secret))
            }
            /// From stored bytes.
            pub fn from_bytes(bytes: [u8; 32]) -> Self {
                Self(bytes)
            }
            /// The digest bytes.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }
        }
    };
}

digest_impl!(StateKey, b"calconnect-state\0");

impl StateKey {
    /// The digest as 64 lowercase hex digits (for cookie names and logs; not secret).
    pub fn to_hex(&self) -> String {
        use std::fmt::Write as _;
        self.0.iter().fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    }
}
digest_impl!(BrowserBinding, b"calconnect-browser-binding\0");

/// A new pending authorization (docs/architecture.md §3.1), verifier already sealed for `id`.
#[derive(Debug, Clone)]
pub struct NewPendingRecord {
    /// Id (part of the verifier's associated data).
    pub id: PendingId,
    /// Digest of the `state`.
    pub state_key: StateKey,
    /// Sealed PKCE verifier.
    pub pkce_verifier: SealedBlob,
    /// Who is connecting.
    pub end_user: EndUserId,
    /// Requested scopes.
    pub scopes: Vec<String>,
    /// The redirect URI used at authorize (sent again at exchange).
    pub redirect_uri: String,
    /// Where to send the browser afterwards.
    pub return_to: Option<String>,
    /// Digest of the browser-binding cookie.
    pub browser_binding: BrowserBinding,
    /// Consuming fails after this.
    pub expires_at: OffsetDateTime,
}

/// A stored pending authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRecord {
    /// Id.
    pub id: PendingId,
    /// Digest of the `state`.
    pub state_key: StateKey,
    /// Sealed PKCE verifier.
    pub pkce_verifier: SealedBlob,
    /// Who is connecting.
    pub end_user: EndUserId,
    /// Requested scopes.
    pub scopes: Vec<String>,
    /// Redirect URI used at authorize.
    pub redirect_uri: String,
    /// Where to send the browser afterwards.
    pub return_to: Option<String>,
    /// Digest of the browser-binding cookie.
    pub browser_binding: BrowserBinding,
    /// Expiry.
    pub expires_at: OffsetDateTime,
    /// Created.
    pub created_at: OffsetDateTime,
}

/// What happened to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// First authorization.
    Created,
    /// Authorized again (tokens replaced).
    Reauthorized,
    /// Status changed.
    StatusChanged,
    /// Deleted (disconnected).
    Deleted,
}

impl EventKind {
    /// The stored name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Reauthorized => "reauthorized",
            Self::StatusChanged => "status_changed",
            Self::Deleted => "deleted",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "created" => Some(Self::Created),
            "reauthorized" => Some(Self::Reauthorized),
            "status_changed" => Some(Self::StatusChanged),
            "deleted" => Some(Self::Deleted),
            _ => None,
        }
    }
}

/// A recorded event, for webhooks and audit. Events survive deletion of their connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionEvent {
    /// Increasing sequence number (a cursor for webhook delivery).
    pub seq: i64,
    /// The connection.
    pub connection_id: ConnectionId,
    /// Its end user at the time.
    pub end_user: EndUserId,
    /// What happened.
    pub kind: EventKind,
    /// Status before (none for `Created`).
    pub from_status: Option<ConnectionStatus>,
    /// Status after (none for `Deleted`).
    pub to_status: Option<ConnectionStatus>,
    /// Why.
    pub reason: String,
    /// When.
    pub at: OffsetDateTime,
}
