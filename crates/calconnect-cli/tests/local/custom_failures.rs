//! `calconnect login --profile custom` when things go wrong, as a binary against npm
//! `oidc-provider` (docs/interop.md): a wrong client secret, a denied consent, a tampered state, the
//! provider going down mid-refresh, a bad scope string, an error page instead of a redirect, an
//! identity step that fails, and a client secret on the command line. Never Cal.com's words.

use crate::helpers::*;
use crate::idp::*;
use std::time::Duration;

#[tokio::test]
async fn a_wrong_client_secret_names_the_secret_and_the_method() {
    let Some((home, port, idp, urls)) = setup(3600).await else {
        return;
    };
    let wrong = "wrong-secret-9f8e7d6c5b4a";
    let out = custom_login(
        home.path(),
        port,
        &with(
            &urls,
            &[
                "--client-id",
                POST_ID,
                "--auth-method",
                "client_secret_post",
                "--scopes",
                SCOPES,
            ],
        ),
        &[("CALCONNECT_CLIENT_SECRET", wrong)],
        None,
    )
    .await;
    assert_eq!(out.code, 3, "{out:?}");
    let line = out.one_line_error();
    assert!(
        line.contains("client secret")
            && line.contains("CALCONNECT_CLIENT_SECRET")
            && line.contains("client_secret_post")
            && line.contains("invalid_client"),
        "{line}"
    );
    assert_no_cal_com(&out);
    assert_nowhere(wrong, home.path(), &[&out]);
    assert_eq!(
        stats(&idp).await["grants"]["authorization_code"],
        serde_json::Value::Null
    );
}

#[tokio::test]
async fn a_denied_consent_is_an_auth_error() {
    let Some((home, port, idp, urls)) = setup(3600).await else {
        return;
    };
    switch(&idp, "deny").await;
    let out = custom_login(
        home.path(),
        port,
        &with(&urls, &["--client-id", PUBLIC_ID, "--scopes", SCOPES]),
        &[],
        None,
    )
    .await;
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.one_line_error().contains("access was denied"),
        "{out:?}"
    );
    assert_no_cal_com(&out);
}

#[tokio::test]
async fn a_tampered_state_is_refused_and_the_code_never_exchanged() {
    let Some((home, port, idp, urls)) = setup(3600).await else {
        return;
    };
    let mut login = spawn_custom(
        home.path(),
        port,
        "4s",
        &with(&urls, &["--client-id", PUBLIC_ID, "--scopes", SCOPES]),
        &[],
        None,
    );
    let redirect = browse(&mut login, port).await;
    let mut url = url::Url::parse(&redirect).unwrap();
    let tampered: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "state" {
                format!("{v}x")
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(tampered);
    let (status, page) = follow(url.as_str()).await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("still waiting"), "{page}");
    let out = login.finish().await;
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.one_line_error().contains("no answer from the browser"),
        "{out:?}"
    );
    assert_no_cal_com(&out);
    assert_eq!(
        stats(&idp).await["grants"]["authorization_code"],
        serde_json::Value::Null,
        "the code was never exchanged"
    );
}

#[tokio::test]
async fn the_provider_down_mid_refresh_fails_once_and_the_next_call_recovers() {
    let Some((home, port, idp, urls)) = setup(2).await else {
        return;
    };
    let home = home.path();
    let out = custom_login(
        home,
        port,
        &with(&urls, &["--client-id", PUBLIC_ID, "--scopes", SCOPES]),
        &[],
        None,
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    // Wait out the access token (the CLI runs on the wall clock), then the next token request
    // reaches the server and its connection is closed unanswered.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    switch(&idp, "drop-token").await;
    let down = run(home, &["token"]).await;
    assert_eq!(down.code, 1, "{down:?}");
    let line = down.one_line_error();
    assert!(line.contains("try again"), "{line}");
    assert_no_cal_com(&down);
    let show = run(home, &["connections", "show", "--json"]).await;
    assert!(show.stdout.contains("\"status\": \"active\""), "{show:?}");

    let recovered = run(home, &["token"]).await;
    assert_eq!(recovered.code, 0, "{recovered:?}");
    assert!(active(&idp, recovered.stdout.trim()).await);
    // The dropped request never reached the grant: one refresh, with the stored refresh token.
    let stats = stats(&idp).await;
    assert_eq!(stats["grants"]["refresh_token"], 1, "{stats}");
}

#[tokio::test]
async fn an_invalid_scope_string_is_a_usage_error() {
    let home = tempfile::tempdir().unwrap();
    let out = run(
        home.path(),
        &[
            "login",
            "--profile",
            "custom",
            "--client-id",
            "c",
            "--authorize-url",
            "http://127.0.0.1:9/auth",
            "--token-url",
            "http://127.0.0.1:9/token",
            "--scopes",
            "openid \"profile\"",
        ],
    )
    .await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.one_line_error().contains("is malformed"), "{out:?}");
    assert_no_cal_com(&out);
    assert!(!home.path().join("key").exists(), "nothing created");
    // Custom-only flags with a Cal.com profile, a secret for a public method: usage errors.
    for args in [
        &[
            "login",
            "--client-id",
            "c",
            "--userinfo-url",
            "https://x/me",
        ][..],
        &[
            "login",
            "--profile",
            "custom",
            "--client-id",
            "c",
            "--authorize-url",
            "http://127.0.0.1:9/auth",
            "--token-url",
            "http://127.0.0.1:9/token",
            "--auth-method",
            "client_secret_basic",
        ],
        &["login", "--profile", "custom", "--client-id", "c"],
    ] {
        let out = run(home.path(), args).await;
        assert_eq!(out.code, 2, "{args:?} {out:?}");
        out.one_line_error();
    }
}

#[tokio::test]
async fn an_error_page_at_the_provider_gets_a_hint_and_the_timeout_holds() {
    let Some((home, port, _idp, urls)) = setup(3600).await else {
        return;
    };
    let mut login = spawn_custom(
        home.path(),
        port,
        "3s",
        &with(
            &urls,
            &[
                "--client-id",
                "no-such-client",
                "--scopes",
                SCOPES,
                "--hint-after",
                "1s",
            ],
        ),
        &[],
        None,
    );
    let url = login.authorize_url();
    // The provider shows an error page: no redirect ever reaches the CLI.
    let (status, page) = follow(&url).await;
    assert_eq!(status, 400, "{page}");
    let out = login.finish().await;
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stderr.contains("No answer from the browser yet")
            && out.stderr.contains(&format!(
                "the redirect URI http://127.0.0.1:{port}/callback is not registered for client `no-such-client`"
            )),
        "{out:?}"
    );
    assert!(
        out.one_line_error()
            .contains("no answer from the browser within 3s"),
        "{out:?}"
    );
    assert_no_cal_com(&out);
}

#[tokio::test]
async fn a_failed_identity_step_revokes_what_it_received() {
    let Some((home, port, idp, urls)) = setup(3600).await else {
        return;
    };
    let me = format!("{}/me", idp.issuer);
    let out = custom_login(
        home.path(),
        port,
        &with(
            &urls,
            &[
                "--client-id",
                PUBLIC_ID,
                "--scopes",
                SCOPES,
                "--userinfo-url",
                &me,
                "--identity-claim",
                "email",
            ],
        ),
        &[],
        None,
    )
    .await;
    assert_eq!(out.code, 2, "{out:?}");
    let line = out.one_line_error();
    assert!(
        line.contains("no usable account name at /email")
            && line.contains("the refresh token was revoked; the access token was revoked"),
        "{line}"
    );
    assert_no_cal_com(&out);
    let stats = stats(&idp).await;
    assert_eq!(stats["refresh_token_destroyed"], 1, "{stats}");
    let list = run(home.path(), &["connections", "list", "--json"]).await;
    assert_eq!(list.stdout.trim(), "[]", "{list:?}");
}

#[tokio::test]
async fn a_secret_on_the_command_line_works_but_warns_loudly() {
    let Some((home, port, idp, urls)) = setup(3600).await else {
        return;
    };
    let out = custom_login(
        home.path(),
        port,
        &with(
            &urls,
            &[
                "--client-id",
                BASIC_ID,
                "--client-secret",
                BASIC_SECRET,
                "--scopes",
                SCOPES,
            ],
        ),
        &[],
        None,
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr
            .contains("WARNING: --client-secret puts the client secret in your shell history"),
        "{out:?}"
    );
    // Default with a secret: client_secret_basic; no identity source: the host names it.
    assert!(
        out.stdout.contains(&format!("at {}.", host(&idp)))
            && out.stdout.contains("names no account"),
        "{out:?}"
    );
    assert_nowhere(BASIC_SECRET, home.path(), &[&out]);
    let token = run(home.path(), &["token"]).await;
    assert_eq!(token.code, 0, "{token:?}");
}
