//! Building blocks for store tests: a clock at a fixed start, a keyring, sealed connections.

use calconnect::crypto::{KeyId, Keyring, SealContext, SealedField, SealingKey};
use calconnect::store::*;
use calconnect::{Clock, MockClock};
use rand::rngs::OsRng;
use secrecy::SecretString;
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

/// 2027-01-15T08:00:00Z: a fixed start for mock clocks.
pub fn start_time() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
}

/// A mock clock at [`start_time`], and the same clock as `Arc<dyn Clock>`.
pub fn mock_clock() -> (Arc<MockClock>, Arc<dyn Clock>) {
    let clock = Arc::new(MockClock::new(start_time()));
    let dynamic: Arc<dyn Clock> = clock.clone();
    (clock, dynamic)
}

/// A keyring with one fresh key `id`.
pub fn keyring(id: &str) -> Keyring {
    Keyring::new(vec![key(id)]).unwrap()
}

/// A fresh key.
pub fn key(id: &str) -> SealingKey {
    SealingKey::generate(KeyId::new(id).unwrap(), &mut OsRng)
}

/// A user identity on client `client`.
pub fn user(client: &str, id: i64) -> CalIdentity {
    CalIdentity {
        client_id: client.to_owned(),
        owner: CalOwner::User(id),
    }
}

/// An end-user id.
pub fn end_user(id: &str) -> EndUserId {
    EndUserId::new(id).unwrap()
}

/// Seals `value` for field `field` of connection `id`.
pub fn seal(
    keyring: &Keyring,
    id: ConnectionId,
    field: SealedField,
    value: &str,
) -> calconnect::crypto::SealedBlob {
    keyring
        .seal_secret(
            &mut OsRng,
            SealContext::connection(id.as_uuid(), field),
            &SecretString::from(value),
        )
        .unwrap()
}

/// Opens field `field` of connection `c`.
pub fn open(keyring: &Keyring, c: &Connection, field: SealedField) -> String {
    use secrecy::ExposeSecret as _;
    let blob = match field {
        SealedField::RefreshToken => c.refresh_token.as_ref().unwrap(),
        _ => &c.access_token,
    };
    keyring
        .open_string(blob, SealContext::connection(c.id.as_uuid(), field))
        .unwrap()
        .expose_secret()
        .to_owned()
}

/// A new connection for `identity` with tokens `access`/`refresh` sealed for a fresh id,
/// access expiring `expires_in` after `now`.
pub fn new_connection(
    keyring: &Keyring,
    identity: CalIdentity,
    user: &str,
    access: &str,
    refresh: &str,
    now: OffsetDateTime,
    expires_in: Duration,
) -> NewConnection {
    let id = ConnectionId::random(&mut OsRng);
    NewConnection {
        id,
        end_user: end_user(user),
        identity,
        scopes: vec!["BOOKING_READ".to_owned(), "SCHEDULE_READ".to_owned()],
        access_token: seal(keyring, id, SealedField::AccessToken, access),
        refresh_token: Some(seal(keyring, id, SealedField::RefreshToken, refresh)),
        access_expires_at: Some(now + expires_in),
        refresh_expires_at_estimate: Some(now + Duration::days(30)),
        profile: None,
    }
}

/// A token write for `c` at its current version.
pub fn token_write(keyring: &Keyring, c: &Connection, access: &str, refresh: &str) -> TokenWrite {
    TokenWrite {
        expected_version: c.version,
        access_token: seal(keyring, c.id, SealedField::AccessToken, access),
        refresh_token: Some(seal(keyring, c.id, SealedField::RefreshToken, refresh)),
        access_expires_at: Some(c.updated_at + Duration::minutes(30)),
        refresh_expires_at_estimate: Some(c.updated_at + Duration::days(30)),
        scopes: None,
    }
}
