//! `calconnect login --profile custom` end to end, as a binary, against npm `oidc-provider`
//! (opaque access tokens, rotating refresh tokens, docs/interop.md): once per client
//! authentication (`none` with PKCE, `client_secret_post`, `client_secret_basic`), then `token`,
//! an expiry and a refresh with rotation, `api` against the server's resource route, `doctor`,
//! and `connections delete` with revocation checked at the server (docs/interop.md,
//! docs/architecture.md §3.8).

use crate::helpers::*;
use crate::idp::*;
use std::path::Path;
use std::time::Duration;

/// Access tokens live this long at the server: short enough to wait one out.
const TTL_SECS: u64 = 3;

/// The common tail of the three: token, api, expiry, refresh with rotation, doctor, delete.
async fn use_refresh_and_delete(
    home: &Path,
    idp: &OidcProvider,
    client_id: &str,
    selector: &str,
    secret: Option<&str>,
    mut outs: Vec<Out>,
) {
    let first = run(home, &["token"]).await;
    assert_eq!(first.code, 0, "{first:?}");
    let t1 = first.stdout.trim().to_owned();
    assert!(
        !t1.is_empty() && !t1.starts_with(NO_TOKEN_HINT),
        "opaque: {first:?}"
    );
    assert!(active(idp, &t1).await);

    let whoami = run(home, &["api", "GET", "/whoami", "--connection", selector]).await;
    assert_eq!(whoami.code, 0, "{whoami:?}");
    let body: serde_json::Value = serde_json::from_str(&whoami.stdout).unwrap();
    assert_eq!(body["sub"], "interop-user", "{body}");
    assert_eq!(body["client_id"], client_id, "{body}");

    // The access token expires at the server and here (the CLI runs on the wall clock).
    tokio::time::sleep(Duration::from_secs(TTL_SECS) + Duration::from_millis(500)).await;
    assert!(!active(idp, &t1).await, "expired at the server");
    let before = stats(idp).await;
    let second = run(home, &["token", "--connection", selector]).await;
    assert_eq!(second.code, 0, "{second:?}");
    let t2 = second.stdout.trim().to_owned();
    assert_ne!(t1, t2);
    assert!(active(idp, &t2).await);
    let after = stats(idp).await;
    let count = |s: &serde_json::Value, k: &str| s[k].as_u64().unwrap_or(0);
    assert_eq!(
        after["grants"]["refresh_token"].as_u64().unwrap_or(0),
        before["grants"]["refresh_token"].as_u64().unwrap_or(0) + 1,
        "one refresh: {after}"
    );
    assert_eq!(
        count(&after, "refresh_token_consumed"),
        count(&before, "refresh_token_consumed") + 1,
        "the refresh token rotated: {after}"
    );
    let again = run(home, &["api", "GET", "/whoami"]).await;
    assert_eq!(again.code, 0, "{again:?}");

    let doctor = run(home, &["doctor"]).await;
    assert_eq!(doctor.code, 0, "{doctor:?}");
    for check in [
        "[ok]   token endpoint:",
        "answers like an OAuth 2.0 token endpoint",
        "[ok]   revocation endpoint:",
        "All checks passed.",
    ] {
        assert!(doctor.stdout.contains(check), "{check}\n{}", doctor.stdout);
    }

    let last = run(home, &["token"]).await;
    let t_last = last.stdout.trim().to_owned();
    let deleted = run(home, &["connections", "delete", selector]).await;
    assert_eq!(deleted.code, 0, "{deleted:?}");
    assert!(
        deleted.stdout.contains(&format!(
            "Revoked at {}: the refresh token was revoked; the access token was revoked. Deleted connection",
            host(idp)
        )),
        "{deleted:?}"
    );
    assert!(!active(idp, &t_last).await, "revoked at the server");
    let revoked = stats(idp).await;
    assert_eq!(count(&revoked, "refresh_token_destroyed"), 1, "{revoked}");
    assert!(count(&revoked, "grant_revoked") >= 1, "{revoked}");
    let gone = run(home, &["token"]).await;
    assert_eq!(gone.code, 3, "{gone:?}");

    outs.extend([first, whoami, second, again, doctor, last, deleted, gone]);
    for out in &outs {
        assert_no_cal_com(out);
    }
    if let Some(secret) = secret {
        assert_nowhere(secret, home, &outs.iter().collect::<Vec<_>>());
    }
}

#[tokio::test]
async fn public_client_with_pkce_found_by_discovery() {
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let port = free_port();
    let Some(idp) = idp(port, TTL_SECS).await else {
        return;
    };
    let api = format!("{}/api", idp.issuer);
    let out = custom_login(
        home,
        port,
        &[
            "--client-id",
            PUBLIC_ID,
            "--issuer",
            &idp.issuer,
            "--scopes",
            SCOPES,
            "--api-base",
            &api,
            "--save-as",
            "idp",
        ],
        &[],
        None,
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    // Discovery found the userinfo endpoint (openid was asked for): the account is its `sub`.
    assert!(
        out.stdout.contains(&format!(
            "Logged in as interop-user (userinfo) at {}.",
            host(&idp)
        )),
        "{out:?}"
    );
    assert!(out.stdout.contains("profile `idp`"), "{out:?}");
    let profiles = std::fs::read_to_string(home.join("profiles.json")).unwrap();
    assert!(profiles.contains("\"auth_method\": \"none\""), "{profiles}");
    // The saved profile checks itself, in its own words.
    let doctor = run(home, &["doctor", "--profile", "idp"]).await;
    assert_eq!(doctor.code, 0, "{doctor:?}");
    for check in [
        "[ok]   discovery:",
        "[ok]   client policy: public client (none): PKCE S256",
        "[ok]   userinfo endpoint:",
        "[skip] introspection endpoint: none configured",
    ] {
        assert!(doctor.stdout.contains(check), "{check}\n{}", doctor.stdout);
    }
    use_refresh_and_delete(home, &idp, PUBLIC_ID, "idp", None, vec![out, doctor]).await;
}

#[tokio::test]
async fn client_secret_post_from_a_file_identified_by_introspection() {
    let Some((home, port, idp, urls)) = setup(TTL_SECS).await else {
        return;
    };
    let home = home.path();
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, format!("{POST_SECRET}\n")).unwrap();
    let introspection = format!("{}/token/introspection", idp.issuer);
    let out = custom_login(
        home,
        port,
        &with(
            &urls,
            &[
                "--client-id",
                POST_ID,
                "--introspection-url",
                &introspection,
                "--auth-method",
                "client_secret_post",
                "--client-secret-file",
                secret_file.to_str().unwrap(),
                "--scopes",
                SCOPES,
                "--name",
                "post",
            ],
        ),
        &[],
        None,
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains(&format!(
            "Logged in as interop-user (introspection) at {}.",
            host(&idp)
        )),
        "{out:?}"
    );
    let show = run(home, &["connections", "show", "post", "--json"]).await;
    let shown: serde_json::Value = serde_json::from_str(&show.stdout).unwrap();
    assert_eq!(shown["owner"], "interop-user", "{shown}");
    assert_eq!(shown["auth_method"], "client_secret_post", "{shown}");
    // What the server granted (it names openid only).
    assert_eq!(shown["scopes"], "openid", "{shown}");
    use_refresh_and_delete(
        home,
        &idp,
        POST_ID,
        "post",
        Some(POST_SECRET),
        vec![out, show],
    )
    .await;
}

#[tokio::test]
async fn client_secret_basic_from_stdin_identified_by_userinfo() {
    let Some((home, port, idp, urls)) = setup(TTL_SECS).await else {
        return;
    };
    let home = home.path();
    let userinfo = format!("{}/me", idp.issuer);
    let out = custom_login(
        home,
        port,
        &with(
            &urls,
            &[
                "--client-id",
                BASIC_ID,
                "--userinfo-url",
                &userinfo,
                "--auth-method",
                "client_secret_basic",
                "--client-secret-stdin",
                "--scopes",
                SCOPES,
                "--name",
                "basic",
            ],
        ),
        &[],
        Some(&format!("{BASIC_SECRET}\n")),
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains(&format!(
            "Logged in as interop-user (userinfo) at {}.",
            host(&idp)
        )),
        "{out:?}"
    );
    use_refresh_and_delete(home, &idp, BASIC_ID, "basic", Some(BASIC_SECRET), vec![out]).await;
}
