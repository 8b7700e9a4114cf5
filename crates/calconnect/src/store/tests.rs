use super::*;
use crate::MockClock;
use crate::crypto::{KeyId, Keyring, SealContext, SealedField, SealingKey};
use rand::rngs::OsRng;
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use time::OffsetDateTime;

fn store() -> MemoryStore {
    let start = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
    MemoryStore::new(Arc::new(MockClock::new(start)))
}

fn ring(ids: &[&str]) -> Keyring {
    Keyring::new(ids.iter().map(|id| key(id)).collect()).unwrap()
}

fn tokens(user: i64, access: &str) -> TokensToSave {
    TokensToSave {
        end_user: EndUserId::new("u1").unwrap(),
        identity: CalIdentity {
            client_id: "client".into(),
            owner: CalOwner::User(user),
        },
        scopes: vec![],
        access_token: SecretString::from(access),
        refresh_token: None,
        access_expires_at: None,
        refresh_expires_at_estimate: None,
        profile: None,
    }
}

fn key(id: &str) -> SealingKey {
    SealingKey::generate(KeyId::new(id).unwrap(), &mut OsRng)
}

fn copy(key: &SealingKey) -> SealingKey {
    SealingKey::parse(key.to_text().expose_secret()).unwrap()
}

#[tokio::test]
async fn rotation_without_the_old_key_stops_naming_it_and_changes_nothing() {
    let store = store();
    let (old_key, new_key) = (key("old-7"), key("new-8"));
    let old = Keyring::new(vec![copy(&old_key)]).unwrap();
    let saved = save_connection(&store, &old, &mut OsRng, tokens(1, "acc"))
        .await
        .unwrap();
    let before = store.get_connection(saved.connection().id).await.unwrap();

    let new_only = Keyring::new(vec![copy(&new_key)]).unwrap();
    let err = rotate_keys(&store, &new_only, &mut OsRng, 10, &mut |_| {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("`old-7`"), "{err}");
    assert_eq!(store.get_connection(before.id).await.unwrap(), before);

    // With the old key back (not active), rotation completes and the token still opens.
    let both = Keyring::new(vec![new_key, old_key]).unwrap();
    let done = rotate_keys(&store, &both, &mut OsRng, 10, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(done.connections_resealed, 1);
    let after = store.get_connection(before.id).await.unwrap();
    let ctx = SealContext::connection(after.id.as_uuid(), SealedField::AccessToken);
    assert_eq!(
        new_only
            .open_string(&after.access_token, ctx)
            .unwrap()
            .expose_secret(),
        "acc"
    );
    assert_eq!(
        after.version, before.version,
        "re-sealing is not a token change"
    );
}

#[tokio::test]
async fn save_connection_reuses_the_identitys_connection() {
    let store = store();
    let keys = ring(&["k"]);
    let first = save_connection(&store, &keys, &mut OsRng, tokens(5, "a1"))
        .await
        .unwrap();
    assert!(matches!(first, UpsertOutcome::Created(_)));
    let second = save_connection(&store, &keys, &mut OsRng, tokens(5, "a2"))
        .await
        .unwrap();
    let UpsertOutcome::Updated { connection, .. } = second else {
        panic!("expected Updated");
    };
    assert_eq!(connection.id, first.connection().id);
    let ctx = SealContext::connection(connection.id.as_uuid(), SealedField::AccessToken);
    assert_eq!(
        keys.open_string(&connection.access_token, ctx)
            .unwrap()
            .expose_secret(),
        "a2"
    );
    assert_eq!(store.count_connections().await.unwrap(), 1);
}

#[test]
fn store_error_messages_say_what_to_do() {
    let id = ConnectionId::from_uuid(uuid::Uuid::nil());
    let msg = StoreError::VersionMismatch {
        id,
        expected: 3,
        actual: 4,
    }
    .to_string();
    assert!(msg.contains("re-read"), "{msg}");
    let msg = StoreError::PendingExpired.to_string();
    assert!(msg.contains("start the connection again"), "{msg}");
}
