//! After login: token, api, connections, keys rotate, a revoked grant, a corrupted key file.

use crate::helpers::*;

#[tokio::test]
async fn token_api_connections_and_refresh() {
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let port = free_port();
    // From the login on, access tokens expire as they are issued: every `token` refreshes.
    let sb = sandbox(port, 2).await;
    assert_eq!(login(home, &sb, port).await.code, 0);
    expire_tokens_from_now_on(&sb).await;

    let first = run(home, &["token"]).await;
    assert_eq!(first.code, 0, "{first:?}");
    let token = first.stdout.trim().to_owned();
    assert!(token.starts_with(NO_TOKEN_HINT), "{first:?}");
    let second = run(home, &["token", "--connection", "alice"]).await;
    assert_eq!(second.code, 0, "{second:?}");
    // Each call refreshed once under the lease, with the rotated refresh token (a reuse of a
    // dead one would be `refresh_token_revoked`).
    assert_eq!(sb.token_calls("refresh_token", "ok"), 2);
    assert_eq!(
        sb.token_calls("refresh_token", "invalid_grant:refresh_token_revoked"),
        0
    );

    // Usual 30-minute tokens again for the API calls (the next one refreshes first).
    sb.update_settings(|s| s.access_token_ttl = time::Duration::seconds(1800));
    let me = run(home, &["api", "GET", "/v2/me"]).await;
    assert_eq!(me.code, 0, "{me:?}");
    assert!(me.stdout.contains("\"username\": \"alice\""), "{me:?}");
    assert!(!me.stdout.contains(NO_TOKEN_HINT) && !me.stderr.contains(NO_TOKEN_HINT));

    let schedules = run(home, &["api", "GET", "/v2/schedules", "--raw"]).await;
    assert_eq!(schedules.code, 0, "{schedules:?}");
    let json: serde_json::Value = serde_json::from_str(schedules.stdout.trim()).unwrap();
    assert!(json["data"][0]["availability"].is_array(), "{json}");

    let missing = run(home, &["api", "GET", "/v2/schedules/999999"]).await;
    assert_eq!(missing.code, 4, "{missing:?}");
    missing.one_line_error();

    let bad = run(home, &["api", "GET", "v2/me"]).await;
    assert_eq!(bad.code, 2, "{bad:?}");

    let list = run(home, &["connections", "list"]).await;
    assert_eq!(list.code, 0, "{list:?}");
    assert!(
        list.stdout.contains("alice") && list.stdout.contains("active"),
        "{list:?}"
    );
    let json = run(home, &["connections", "list", "--json"]).await;
    let rows: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let id = rows[0]["id"].as_str().unwrap().to_owned();
    for args in [
        &["connections", "show"][..],
        &["connections", "show", "alice", "--json"],
    ] {
        let show = run(home, args).await;
        assert_eq!(show.code, 0, "{show:?}");
        assert!(
            show.stdout.contains(&id) && show.stdout.contains("SCHEDULE_READ"),
            "{show:?}"
        );
        assert!(!show.stdout.contains(NO_TOKEN_HINT), "{show:?}");
    }

    let deleted = run(home, &["connections", "delete", &id[..8]]).await;
    assert_eq!(deleted.code, 0, "{deleted:?}");
    let after = run(home, &["token"]).await;
    assert_eq!(after.code, 3, "{after:?}");
}

#[tokio::test]
async fn api_refreshes_and_retries_on_401() {
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let port = free_port();
    let sb = sandbox(port, 1800).await;
    assert_eq!(login(home, &sb, port).await.code, 0);
    // The sandbox's clock jumps past the access token's expiry; the CLI still thinks it is valid.
    sb.advance_clock(time::Duration::minutes(31));
    let me = run(home, &["api", "GET", "/v2/me"]).await;
    assert_eq!(me.code, 0, "{me:?}");
    assert!(me.stdout.contains("alice"), "{me:?}");
    assert_eq!(sb.token_calls("refresh_token", "ok"), 1);
}

#[tokio::test]
async fn revoked_grant_needs_login() {
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let port = free_port();
    let sb = sandbox(port, 2).await;
    assert_eq!(login(home, &sb, port).await.code, 0);
    expire_tokens_from_now_on(&sb).await;
    sb.revoke_grant(
        calconnect_sandbox::PUBLIC_CLIENT_ID,
        calconnect_sandbox::Owner::User(1),
    );
    let out = run(home, &["token"]).await;
    assert_eq!(out.code, 3, "{out:?}");
    let line = out.one_line_error();
    assert!(line.contains("calconnect login"), "{line}");
    let show = run(home, &["connections", "show", "--json"]).await;
    assert!(show.stdout.contains("needs_reauth"), "{show:?}");
    let api = run(home, &["api", "GET", "/v2/me"]).await;
    assert_eq!(api.code, 3, "{api:?}");
}

#[tokio::test]
async fn keys_rotate_then_token_still_works() {
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let port = free_port();
    let sb = sandbox(port, 1800).await;
    assert_eq!(login(home, &sb, port).await.code, 0);
    let before = run(home, &["token"]).await;
    let generated = run(home, &["keys", "generate", "--id", "cli-2"]).await;
    assert_eq!(generated.code, 0, "{generated:?}");
    let old = std::fs::read_to_string(home.join("key")).unwrap();
    let both = home.join("keys-both");
    std::fs::write(&both, format!("{}{old}", generated.stdout)).unwrap();
    let db = home.join("calconnect.db");
    let rotated = run(
        home,
        &[
            "keys",
            "rotate",
            "--sqlite",
            db.to_str().unwrap(),
            "--key-file",
            both.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(rotated.code, 0, "{rotated:?}");
    assert!(
        rotated
            .stderr
            .contains("1/1 connections scanned, 1 re-sealed"),
        "{rotated:?}"
    );
    // Only the new key from now on.
    std::fs::write(home.join("key"), &generated.stdout).unwrap();
    let after = run(home, &["token"]).await;
    assert_eq!(after.code, 0, "{after:?}");
    assert_eq!(after.stdout, before.stdout);
}

#[tokio::test]
async fn corrupted_key_file_is_one_line_with_the_fix() {
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let port = free_port();
    let sb = sandbox(port, 1800).await;
    assert_eq!(login(home, &sb, port).await.code, 0);
    std::fs::write(home.join("key"), "calconnect-key-v1:broken\n").unwrap();
    for args in [&["token"][..], &["api", "GET", "/v2/me"]] {
        let out = run(home, args).await;
        assert_eq!(out.code, 1, "{out:?}");
        let line = out.one_line_error();
        assert!(
            line.contains("key file") && line.contains("move it aside"),
            "{line}"
        );
        assert!(line.contains("cannot be read"), "{line}");
    }
    // login stops before the browser is involved.
    let base = base(&sb);
    let port = free_port().to_string();
    let out = run(
        home,
        &[
            "login",
            "--profile",
            "sandbox",
            "--sandbox-url",
            &base,
            "--port",
            &port,
            "--no-browser",
        ],
    )
    .await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.one_line_error().contains("move it aside"), "{out:?}");
    assert!(!out.stderr.contains("/auth/oauth2/authorize"), "{out:?}");
}

#[tokio::test]
async fn concurrent_token_processes_refresh_one_at_a_time() {
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let port = free_port();
    // Tokens that expire as they are issued: each process wants a refresh; they take turns
    // under the store's lease, each with the refresh token the previous one stored.
    let sb = sandbox(port, 2).await;
    assert_eq!(login(home, &sb, port).await.code, 0);
    expire_tokens_from_now_on(&sb).await;
    let children: Vec<_> = (0..4)
        .map(|_| {
            calconnect(home)
                .arg("token")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs = tokio::task::spawn_blocking(move || {
        children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for out in outs {
        assert!(out.status.success(), "{out:?}");
    }
    assert_eq!(sb.token_calls("refresh_token", "ok"), 4);
    assert_eq!(
        sb.token_calls("refresh_token", "invalid_grant:refresh_token_revoked"),
        0
    );
    let after = run(home, &["token"]).await;
    assert_eq!(after.code, 0, "{after:?}");
}

#[tokio::test]
async fn api_exit_codes_tell_usage_auth_and_api_errors_apart() {
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let port = free_port();
    let sb = sandbox(port, 1800).await;
    assert_eq!(
        login_with_scopes(home, &sb, port, "PROFILE_READ")
            .await
            .code,
        0
    );
    // Missing scope: a new login is the fix (auth).
    let out = run(home, &["api", "GET", "/v2/schedules"]).await;
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.one_line_error().contains("SCHEDULE_READ"), "{out:?}");
    // Usage.
    for args in [
        &["api", "FETCH", "/v2/me"][..],
        &["api", "POST", "/v2/schedules", "--data", "{bad"],
        &["api", "GET", "/v2/me", "--query", "novalue"],
    ] {
        let out = run(home, args).await;
        assert_eq!(out.code, 2, "{args:?} {out:?}");
        out.one_line_error();
    }
    // The API said no (the sandbox has no POST /v2/schedules): 4, with Cal.com's envelope.
    let out = run(
        home,
        &["api", "POST", "/v2/schedules", "--data", r#"{"name":"x"}"#],
    )
    .await;
    assert_eq!(out.code, 4, "{out:?}");
    assert!(out.stdout.contains("\"status\": \"error\""), "{out:?}");
    assert!(!out.stdout.contains(NO_TOKEN_HINT) && !out.stderr.contains(NO_TOKEN_HINT));
}
