use super::*;
use rand::rngs::OsRng;
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

fn key(id: &str) -> SealingKey {
    SealingKey::generate(KeyId::new(id).unwrap(), &mut OsRng)
}

fn secret(s: &str) -> SecretString {
    SecretString::from(s)
}

#[test]
fn seal_then_open_round_trips_and_hides_plaintext() {
    let ring = Keyring::new(vec![key("k1")]).unwrap();
    let ctx = SealContext::connection(Uuid::new_v4(), SealedField::RefreshToken);
    let blob = ring
        .seal_secret(&mut OsRng, ctx, &secret("refresh-PLAINTEXT"))
        .unwrap();
    assert!(!blob.as_bytes().windows(9).any(|w| w == b"PLAINTEXT"));
    assert_eq!(blob.as_bytes()[0], BLOB_VERSION);
    assert_eq!(
        ring.open_string(&blob, ctx).unwrap().expose_secret(),
        "refresh-PLAINTEXT"
    );
    // Two seals of the same value differ (random nonce).
    let again = ring
        .seal_secret(&mut OsRng, ctx, &secret("refresh-PLAINTEXT"))
        .unwrap();
    assert_ne!(blob, again);
}

#[test]
fn blob_copied_to_another_row_or_field_does_not_open() {
    let ring = Keyring::new(vec![key("k1")]).unwrap();
    let id = Uuid::new_v4();
    let ctx = SealContext::connection(id, SealedField::AccessToken);
    let blob = ring.seal_secret(&mut OsRng, ctx, &secret("tok")).unwrap();
    let other_row = SealContext::connection(Uuid::new_v4(), SealedField::AccessToken);
    let other_field = SealContext::connection(id, SealedField::RefreshToken);
    let other_kind = SealContext::pending_verifier(id);
    for wrong in [other_row, other_field, other_kind] {
        assert!(matches!(
            ring.open(&blob, wrong),
            Err(OpenError::Authentication { .. })
        ));
    }
}

#[test]
fn tampered_header_or_body_does_not_open() {
    let ring = Keyring::new(vec![key("k1"), key("k2")]).unwrap();
    let ctx = SealContext::pending_verifier(Uuid::new_v4());
    let blob = ring
        .seal_secret(&mut OsRng, ctx, &secret("verifier"))
        .unwrap();
    let mut body = blob.clone().into_bytes();
    let last = body.len() - 1;
    body[last] ^= 1;
    assert!(ring.open(&SealedBlob::from_bytes(body), ctx).is_err());
    // Relabel the blob as sealed by k2: the header is in the associated data.
    let mut relabelled = blob.into_bytes();
    relabelled[3] = b'2';
    assert!(matches!(
        ring.open(&SealedBlob::from_bytes(relabelled), ctx),
        Err(OpenError::Authentication { .. })
    ));
    assert!(matches!(
        ring.open(&SealedBlob::from_bytes(vec![1, 2, b'k']), ctx),
        Err(OpenError::Format { .. })
    ));
    assert!(matches!(
        ring.open(&SealedBlob::from_bytes(vec![9; 64]), ctx),
        Err(OpenError::Format {
            source: BlobFormatError::UnsupportedVersion { version: 9 },
            ..
        })
    ));
}

#[test]
fn missing_or_wrong_key_names_the_key_id() {
    let old = Keyring::new(vec![key("old-1")]).unwrap();
    let ctx = SealContext::connection(Uuid::new_v4(), SealedField::AccessToken);
    let blob = old.seal_secret(&mut OsRng, ctx, &secret("tok")).unwrap();

    let without = Keyring::new(vec![key("new-2")]).unwrap();
    let err = without.open(&blob, ctx).unwrap_err();
    assert!(matches!(err, OpenError::UnknownKey { .. }));
    assert!(err.to_string().contains("`old-1`"), "{err}");

    let wrong_material = Keyring::new(vec![key("old-1")]).unwrap();
    let err = wrong_material.open(&blob, ctx).unwrap_err();
    assert!(matches!(err, OpenError::Authentication { .. }));
    assert!(err.to_string().contains("`old-1`"), "{err}");
}

#[test]
fn older_keys_open_active_key_seals_and_reseal_moves_to_active() {
    let k_old = key("old");
    let old_text = k_old.to_text();
    let old_ring = Keyring::new(vec![k_old]).unwrap();
    let ctx = SealContext::connection(Uuid::new_v4(), SealedField::AccessToken);
    let blob = old_ring
        .seal_secret(&mut OsRng, ctx, &secret("tok"))
        .unwrap();

    let ring = Keyring::new(vec![
        key("new"),
        SealingKey::parse(old_text.expose_secret()).unwrap(),
    ])
    .unwrap();
    assert_eq!(ring.active_key_id().as_str(), "new");
    assert_eq!(ring.open_string(&blob, ctx).unwrap().expose_secret(), "tok");
    let resealed = ring.reseal(&mut OsRng, &blob, ctx).unwrap().unwrap();
    assert_eq!(resealed.key_id().unwrap().as_str(), "new");
    assert!(ring.reseal(&mut OsRng, &resealed, ctx).unwrap().is_none());
    assert_eq!(
        ring.open_string(&resealed, ctx).unwrap().expose_secret(),
        "tok"
    );
}

#[test]
fn keyring_parsing_from_env_value_and_file_names_positions_not_material() {
    let a = key("a").to_text();
    let b = key("b").to_text();
    let env = secret(&format!("{}, {}", a.expose_secret(), b.expose_secret()));
    let ring = Keyring::from_env_value(&env).unwrap();
    assert_eq!(
        ring.key_ids().map(KeyId::as_str).collect::<Vec<_>>(),
        ["a", "b"]
    );

    let file = secret(&format!(
        "# active first\n{}\n\n{}\ncalconnect-key-v1:broken:AAAA\n",
        b.expose_secret(),
        a.expose_secret()
    ));
    let err = Keyring::from_key_file_contents(&file, "key file k.txt").unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("line 5") && msg.contains("broken"), "{msg}");
    assert!(!msg.contains("AAAA"), "{msg}");

    let dup = secret(&format!("{},{}", a.expose_secret(), a.expose_secret()));
    assert!(matches!(
        Keyring::from_env_value(&dup),
        Err(KeyringError::DuplicateId { .. })
    ));
    assert!(matches!(
        Keyring::from_env_value(&secret(" , ")),
        Err(KeyringError::Empty { .. })
    ));
    let debug = format!("{ring:?}");
    let material = a.expose_secret().rsplit(':').next().unwrap().to_owned();
    assert!(!debug.contains(&material), "{debug}");
}

#[test]
fn key_file_is_read_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys");
    std::fs::write(
        &path,
        format!("{}\n", key("disk").to_text().expose_secret()),
    )
    .unwrap();
    let ring = Keyring::from_key_file(&path).unwrap();
    assert_eq!(ring.active_key_id().as_str(), "disk");
    let missing = Keyring::from_key_file(&dir.path().join("nope")).unwrap_err();
    assert!(matches!(missing, KeyringError::File { .. }));
}
