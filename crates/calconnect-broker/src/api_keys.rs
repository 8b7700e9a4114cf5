//! API keys: created by `calconnect api-keys create`, shown once, stored as the SHA-256 of the key
//! (a 256-bit random key needs no slow hash), listed and revoked. The request extractor
//! [`Authenticated`] checks `Authorization: Bearer <key>`.

use crate::db::{BrokerDb, DbError, at_ms, db_err};
use crate::error::ApiError;
use crate::state::{AppState, unix_ms};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use calconnect::Clock as _;
use calconnect_sql::query;
use rand::{CryptoRng, RngCore};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// Every key starts with this (so secret scanners can find leaked keys).
pub const KEY_PREFIX: &str = "cck_";

/// A listed API key (never the key itself).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ApiKeyInfo {
    /// Id (for revocation).
    pub id: String,
    /// A name given at creation.
    pub name: String,
    /// The first characters of the key, to recognise it.
    pub prefix: String,
    /// Created (unix ms).
    pub created_at_ms: i64,
    /// Revoked (unix ms), if it was.
    pub revoked_at_ms: Option<i64>,
    /// Last accepted (unix ms, to within [`LAST_USED_EVERY`]), if ever since it was recorded.
    pub last_used_at_ms: Option<i64>,
}

/// A key's last use is written at most this often (a hot key is checked every second).
pub const LAST_USED_EVERY: time::Duration = time::Duration::minutes(1);

/// A key just created: the only time the key is available.
#[derive(Debug)]
pub struct CreatedApiKey {
    /// Its listing.
    pub info: ApiKeyInfo,
    /// The key (`Debug` is redacted by `secrecy`).
    pub key: SecretString,
}

fn hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Creates a key named `name`.
///
/// # Errors
/// [`DbError`].
pub async fn create(
    db: &BrokerDb,
    name: &str,
    now_ms: i64,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<CreatedApiKey, DbError> {
    let mut bytes = [0u8; 32];
    rng.fill_bytes(&mut bytes);
    let key = format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let mut id_bytes = [0u8; 16];
    rng.fill_bytes(&mut id_bytes);
    let id = uuid::Builder::from_random_bytes(id_bytes)
        .into_uuid()
        .to_string();
    let prefix: String = key.chars().take(KEY_PREFIX.len() + 6).collect();
    let key_hash = hash(&key);
    query(
        "INSERT INTO broker_api_keys (id, name, prefix, key_hash, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&id)
    .bind(name)
    .bind(&prefix)
    .bind(&key_hash)
    .bind(at_ms(now_ms))
    .execute(db.sql())
    .await
    .map_err(db_err("creating an API key"))?;
    Ok(CreatedApiKey {
        info: ApiKeyInfo {
            id,
            name: name.to_owned(),
            prefix,
            created_at_ms: now_ms,
            revoked_at_ms: None,
            last_used_at_ms: None,
        },
        key: SecretString::from(key),
    })
}

/// All keys, oldest first.
///
/// # Errors
/// [`DbError`].
pub async fn list(db: &BrokerDb) -> Result<Vec<ApiKeyInfo>, DbError> {
    let err = db_err("listing API keys");
    let rows = query(
        "SELECT id, name, prefix, created_at, revoked_at, last_used_at FROM broker_api_keys \
         ORDER BY created_at, id",
    )
    .fetch_all(db.sql())
    .await
    .map_err(&err)?;
    rows.iter()
        .map(|r| {
            Ok(ApiKeyInfo {
                id: r.get("id").map_err(&err)?,
                name: r.get("name").map_err(&err)?,
                prefix: r.get("prefix").map_err(&err)?,
                created_at_ms: unix_ms(r.get("created_at").map_err(&err)?),
                revoked_at_ms: r
                    .get::<Option<OffsetDateTime>>("revoked_at")
                    .map_err(&err)?
                    .map(unix_ms),
                last_used_at_ms: r
                    .get::<Option<OffsetDateTime>>("last_used_at")
                    .map_err(&err)?
                    .map(unix_ms),
            })
        })
        .collect()
}

/// Revokes key `id`; `false` if there is no such unrevoked key.
///
/// # Errors
/// [`DbError`].
pub async fn revoke(db: &BrokerDb, id: &str, now_ms: i64) -> Result<bool, DbError> {
    let done =
        query("UPDATE broker_api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(at_ms(now_ms))
            .bind(id)
            .execute(db.sql())
            .await
            .map_err(db_err("revoking an API key"))?;
    Ok(done > 0)
}

/// Whether `key` is a live key, recording its use at `now` (at most once per
/// [`LAST_USED_EVERY`]). The lookup is by hash, so no secret is compared.
///
/// # Errors
/// [`DbError`].
pub async fn verify(
    db: &BrokerDb,
    key: &SecretString,
    now: OffsetDateTime,
) -> Result<bool, DbError> {
    let key = key.expose_secret();
    if !key.starts_with(KEY_PREFIX) || key.len() > 128 {
        return Ok(false);
    }
    let key_hash = hash(key);
    let err = db_err("checking an API key");
    let Some(found) = query(
        "SELECT id, last_used_at FROM broker_api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
    )
    .bind(&key_hash)
    .fetch_optional(db.sql())
    .await
    .map_err(&err)?
    else {
        return Ok(false);
    };
    let last: Option<OffsetDateTime> = found.get("last_used_at").map_err(&err)?;
    if last.is_none_or(|at| now - at >= LAST_USED_EVERY) {
        let id: String = found.get("id").map_err(&err)?;
        // A failed write does not refuse the key: the use is only for the listing.
        if let Err(e) = query("UPDATE broker_api_keys SET last_used_at = $1 WHERE id = $2")
            .bind(now)
            .bind(&id)
            .execute(db.sql())
            .await
        {
            tracing::debug!(error = %e, "cannot record an API key's last use");
        }
    }
    Ok(true)
}

/// Proof that the request carried a live API key.
#[derive(Debug, Clone, Copy)]
pub struct Authenticated;

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(ApiError::unauthorized)?;
        let (scheme, key) = header.split_once(' ').ok_or_else(ApiError::unauthorized)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(ApiError::unauthorized());
        }
        // The cache is asked with the header's own bytes: a copy of the key (allocated,
        // zeroized, freed) only when the database is asked (issue 15).
        let key = key.trim();
        if state.api_key_cache.contains(key) {
            return Ok(Self);
        }
        let key = SecretString::from(key.to_owned());
        if verify(&state.db, &key, state.clock.now()).await? {
            state.api_key_cache.insert(&key);
            Ok(Self)
        } else {
            Err(ApiError::unauthorized())
        }
    }
}

/// Recently verified keys (by hash) for a few seconds, so hot paths do not read the database on
/// every request. A revoked key stops working within the cache's TTL. Entries are the raw
/// SHA-256 (no hex string per request, issue 15).
#[derive(Debug)]
pub struct KeyCache {
    ttl: std::time::Duration,
    entries: std::sync::Mutex<std::collections::HashMap<[u8; 32], std::time::Instant>>,
}

impl KeyCache {
    /// How long a verified key is trusted without asking the database again, by default.
    pub const TTL: std::time::Duration = std::time::Duration::from_secs(1);

    /// A cache trusting a verified key for `ttl` (zero: always ask the database).
    pub fn new(ttl: std::time::Duration) -> Self {
        Self {
            ttl,
            entries: std::sync::Mutex::default(),
        }
    }

    fn contains(&self, key: &str) -> bool {
        let h: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        entries.get(&h).is_some_and(|at| at.elapsed() < self.ttl)
    }

    fn insert(&self, key: &SecretString) {
        if self.ttl.is_zero() {
            return;
        }
        let h: [u8; 32] = Sha256::digest(key.expose_secret().as_bytes()).into();
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() > 10_000 {
            entries.clear();
        }
        entries.insert(h, std::time::Instant::now());
    }
}
