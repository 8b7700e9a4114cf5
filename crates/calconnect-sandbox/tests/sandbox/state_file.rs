//! The state file (`SandboxBuilder::state_file`): grants, consent records, client statuses and
//! the clock's offset survive a restart; a damaged file is refused with the fix.

use crate::flow::*;
use calconnect_sandbox::{CONFIDENTIAL_CLIENT_ID, ClientStatus, Owner, Sandbox};
use reqwest::StatusCode;
use std::path::Path;

async fn start(path: &Path) -> Sandbox {
    Sandbox::builder()
        .signing_key(vec![7u8; 32])
        .state_file(path)
        .start()
        .await
        .expect("sandbox starts")
}

fn saved_secrets(path: &Path) -> Vec<String> {
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    json["refresh_tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["secret"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn grants_the_clock_and_client_statuses_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sandbox-state.json");
    let sb = start(&path).await;
    let tokens = demo_tokens(&sb, ALICE).await;
    // The token endpoint answered: the row it made is on disk already.
    let secret = claims(tokens["refresh_token"].as_str().unwrap())["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(saved_secrets(&path), vec![secret.clone()]);
    sb.advance_clock(time::Duration::minutes(45));
    sb.set_client_status("pending-client", ClientStatus::Rejected)
        .unwrap();
    let ahead = sb.now();
    sb.shutdown().await;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the file holds refresh-token secrets");
    }

    let again = start(&path).await;
    assert!(again.now() >= ahead, "the clock's offset is kept");
    assert_eq!(
        again.refresh_token_rows(CONFIDENTIAL_CLIENT_ID, Owner::User(ALICE)),
        1
    );
    assert!(again.authorization(ALICE, CONFIDENTIAL_CLIENT_ID).is_some());
    let page = client()
        .get(again.control_url())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let row = &page[page.find("<code>pending-client</code>").unwrap()..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(
        row.contains("<td>Rejected</td>"),
        "the client status is kept: {row}"
    );

    // The refresh token issued before the restart still refreshes, and rotates on disk.
    let (status, body) = demo_refresh(&again, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let rotated: serde_json::Value = serde_json::from_str(&body).unwrap();
    let saved = saved_secrets(&path);
    assert_eq!(saved.len(), 1);
    assert_ne!(saved[0], secret);
    again.shutdown().await;

    // A sandbox without the file has no such grant: Cal.com that forgot it.
    let forgetful = Sandbox::builder()
        .signing_key(vec![7u8; 32])
        .start()
        .await
        .unwrap();
    let (status, body) = demo_refresh(&forgetful, rotated["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, v2_err("invalid_grant", "refresh_token_revoked"));
}

#[tokio::test]
async fn a_damaged_state_file_is_refused_naming_it_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sandbox-state.json");
    std::fs::write(&path, "{\"version\": 1, \"clock_offset_ms\": ").unwrap();
    let err = Sandbox::builder()
        .state_file(&path)
        .start()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("delete it"), "{err}");

    std::fs::write(&path, r#"{"version": 9, "clock_offset_ms": 0}"#).unwrap();
    let err = Sandbox::builder()
        .state_file(&path)
        .start()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("version 9, expected 1"), "{err}");
}
