use crate::fixtures::*;
use calconnect::crypto::{Keyring, SealContext};
use calconnect::store::*;
use rand::rngs::OsRng;
use secrecy::{ExposeSecret, SecretString};
use time::Duration;

/// Plaintexts that [`store_level_flow`] stores (sealed). A scan of the raw database must find
/// none of them.
pub const FLOW_PLAINTEXTS: &[&str] = &[
    "PLAINTEXT-STATE-2f8c1d",
    "PLAINTEXT-COOKIE-5e2a90",
    "PLAINTEXT-VERIFIER-9d1c44",
    "PLAINTEXT-ACCESS-1-77ab31",
    "PLAINTEXT-REFRESH-1-0c9e55",
    "PLAINTEXT-ACCESS-2-a4f610",
    "PLAINTEXT-REFRESH-2-3b7d28",
];

/// A full connection lifecycle at the store level, with recognisable plaintext secrets: pending
/// authorization with a sealed verifier, consumed; connection saved with sealed tokens; lease,
/// intent and fenced token write; status change. (The broker-level version of this test comes
/// with the flow and the keeper.)
pub async fn store_level_flow(store: &dyn ConnectionStore, ring: &Keyring) {
    let [
        state,
        cookie,
        verifier,
        access1,
        refresh1,
        access2,
        refresh2,
    ] = FLOW_PLAINTEXTS
    else {
        unreachable!()
    };
    let mut p = super::pending::pending(
        ring,
        state,
        cookie,
        verifier,
        start_time() + Duration::minutes(10),
    );
    p.pkce_verifier = ring
        .seal_secret(
            &mut OsRng,
            SealContext::pending_verifier(p.id.as_uuid()),
            &SecretString::from(*verifier),
        )
        .unwrap();
    store.insert_pending(p).await.unwrap();
    // A second one left in place, so its row is scanned too.
    let other = super::pending::pending(
        ring,
        "other-state",
        cookie,
        verifier,
        start_time() + Duration::minutes(10),
    );
    store.insert_pending(other).await.unwrap();
    let consumed = store
        .consume_pending(
            &StateKey::of(&SecretString::from(*state)),
            &BrowserBinding::of(&SecretString::from(*cookie)),
        )
        .await
        .unwrap();
    let opened = ring
        .open_string(
            &consumed.pkce_verifier,
            SealContext::pending_verifier(consumed.id.as_uuid()),
        )
        .unwrap();
    assert_eq!(opened.expose_secret(), *verifier);

    let saved = save_connection(
        store,
        ring,
        &mut OsRng,
        TokensToSave {
            end_user: consumed.end_user,
            identity: user("scan-client", 4242),
            scopes: consumed.scopes,
            access_token: SecretString::from(*access1),
            refresh_token: Some(SecretString::from(*refresh1)),
            access_expires_at: Some(start_time() + Duration::minutes(30)),
            refresh_expires_at_estimate: Some(start_time() + Duration::days(30)),
            profile: None,
        },
    )
    .await
    .unwrap();
    let c = saved.connection().clone();
    let owner = LeaseOwner::new("keeper-1");
    let grant = store
        .acquire_lease(c.id, &owner, Duration::minutes(1))
        .await
        .unwrap();
    store
        .record_refresh_intent(c.id, &owner, grant.version)
        .await
        .unwrap();
    let written = store
        .write_tokens(c.id, token_write(ring, &c, access2, refresh2))
        .await
        .unwrap();
    store.release_lease(c.id, &owner).await.unwrap();
    store
        .set_status(
            c.id,
            StatusChange {
                status: ConnectionStatus::RefreshLost,
                reason: "test".into(),
                expected_version: Some(written.version),
            },
        )
        .await
        .unwrap();
    assert!(!store.events_for_connection(c.id).await.unwrap().is_empty());
}

/// Panics if `haystack` contains any of [`FLOW_PLAINTEXTS`] (or their UTF-16 form, as a belt).
pub fn assert_no_plaintext(haystack: &[u8], where_: &str) {
    for needle in FLOW_PLAINTEXTS {
        let bytes = needle.as_bytes();
        assert!(
            !haystack.windows(bytes.len()).any(|w| w == bytes),
            "{needle} found in clear in {where_}"
        );
        let wide: Vec<u8> = needle.bytes().flat_map(|b| [b, 0]).collect();
        assert!(
            !haystack.windows(wide.len()).any(|w| w == wide),
            "{needle} (UTF-16) in {where_}"
        );
    }
}
