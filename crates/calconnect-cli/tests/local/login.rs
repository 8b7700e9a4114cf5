//! `calconnect login`: the happy path and every bad input named in issue 9.

use crate::helpers::*;

#[tokio::test]
async fn login_as_alice_stores_a_sealed_connection() {
    let home = tempfile::tempdir().unwrap();
    let port = free_port();
    let sb = sandbox(port, 1800).await;
    let out = login(home.path(), &sb, port).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .contains("Logged in as alice (alice@example.com, user 1) on sandbox."),
        "{out:?}"
    );
    assert!(
        !out.stdout.contains(NO_TOKEN_HINT) && !out.stderr.contains(NO_TOKEN_HINT),
        "{out:?}"
    );
    // Key file 0600, database present, no token in clear in any file.
    let key = home.path().join("key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    assert!(home.path().join("calconnect.db").exists());
    let records = std::fs::read_to_string(home.path().join("connections.json")).unwrap();
    assert!(records.contains("\"username\": \"alice\""), "{records}");
    assert!(!records.contains(NO_TOKEN_HINT));
}

#[tokio::test]
async fn denied_consent_is_an_auth_error() {
    let home = tempfile::tempdir().unwrap();
    let port = free_port();
    let sb = sandbox(port, 1800).await;
    let mut login = Login::with_sandbox(home.path(), &sb, port);
    let url = login.authorize_url();
    let redirect = consent(&sb, &url, "deny").await;
    let (status, page) = follow(&redirect).await;
    assert_eq!(status, 400);
    assert!(page.contains("You can close this tab"), "{page}");
    let out = login.finish().await;
    assert_eq!(out.code, 3, "{out:?}");
    let line = out.one_line_error();
    assert!(
        line.contains("access was denied") && line.contains("calconnect login"),
        "{line}"
    );
}

#[tokio::test]
async fn timeout_is_one_line() {
    let home = tempfile::tempdir().unwrap();
    let port = free_port();
    let sb = sandbox(port, 1800).await;
    let base = base(&sb);
    let port_text = port.to_string();
    let mut login = Login::spawn(
        home.path(),
        &[
            "--profile",
            "sandbox",
            "--sandbox-url",
            &base,
            "--port",
            &port_text,
            "--no-browser",
            "--timeout",
            "2s",
        ],
    );
    let _ = login.authorize_url();
    let out = login.finish().await;
    assert_eq!(out.code, 3, "{out:?}");
    let line = out.one_line_error();
    assert!(
        line.contains("no answer from the browser within 2s"),
        "{line}"
    );
    assert!(line.contains("--timeout"), "{line}");
}

#[tokio::test]
async fn occupied_port_names_the_fix() {
    let home = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = run(
        home.path(),
        &[
            "login",
            "--profile",
            "sandbox",
            "--sandbox-url",
            "http://127.0.0.1:9",
            "--port",
            &port,
            "--no-browser",
        ],
    )
    .await;
    assert_eq!(out.code, 1, "{out:?}");
    let line = out.one_line_error();
    assert!(
        line.contains(&format!("port {port} is in use by "))
            && line.contains("; pass --port N and register http://127.0.0.1:N/callback"),
        "{line}"
    );
    // The holder is this test process, named when the system tells.
    #[cfg(target_os = "linux")]
    assert!(
        line.contains(&format!("(pid {})", std::process::id())),
        "{line}"
    );
    assert!(!home.path().join("key").exists(), "nothing created");
}

#[tokio::test]
async fn bad_input_is_a_usage_error() {
    let home = tempfile::tempdir().unwrap();
    let out = run(home.path(), &["login", "--profile", "outlook"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains(
            "unknown profile `outlook`: use cal.com, sandbox or custom, or a profile saved with"
        ),
        "{out:?}"
    );
    assert!(!out.stderr.contains("panicked"));

    let out = run(
        home.path(),
        &[
            "login",
            "--profile",
            "sandbox",
            "--sandbox-url",
            "http://127.0.0.1:9",
            "--scopes",
            "profile read!",
        ],
    )
    .await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.one_line_error().contains("is malformed"), "{out:?}");

    let out = run(home.path(), &["login", "--no-browser"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.one_line_error().contains("--client-id"), "{out:?}");

    let out = run(home.path(), &["login", "--profile", "sandbox"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.one_line_error().contains("--sandbox-url"), "{out:?}");
}

#[tokio::test]
async fn commands_before_login_say_to_log_in() {
    let home = tempfile::tempdir().unwrap();
    for args in [
        &["token"][..],
        &["api", "GET", "/v2/me"],
        &["connections", "show"],
    ] {
        let out = run(home.path(), args).await;
        assert_eq!(out.code, 3, "{args:?} {out:?}");
        assert!(out.one_line_error().contains("calconnect login"), "{out:?}");
    }
    let out = run(home.path(), &["connections", "list"]).await;
    assert_eq!(out.code, 0, "{out:?}");
}

#[tokio::test]
async fn help_and_completions() {
    let home = tempfile::tempdir().unwrap();
    let out = run(home.path(), &["login", "--help"]).await;
    assert_eq!(out.code, 0);
    assert!(
        out.stdout.contains("Examples:") && out.stdout.contains("Exit codes:"),
        "{}",
        out.stdout
    );
    for shell in ["bash", "zsh", "fish"] {
        let out = run(home.path(), &["completions", shell]).await;
        assert_eq!(out.code, 0, "{out:?}");
        assert!(out.stdout.contains("calconnect"), "{shell}");
    }
}

#[tokio::test]
async fn a_failed_exchange_shows_in_the_browser_and_the_terminal() {
    let home = tempfile::tempdir().unwrap();
    let port = free_port();
    let sb = sandbox(port, 1800).await;
    // The token endpoints answer 500 more times than the client retries.
    sb.inject_fault(
        calconnect_sandbox::FaultKind::ServerError { status: 500 },
        10,
    )
    .unwrap();
    let mut login = Login::with_sandbox(home.path(), &sb, port);
    let url = login.authorize_url();
    let redirect = consent(&sb, &url, "allow").await;
    let (status, page) = follow(&redirect).await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("Login failed"), "{page}");
    let out = login.finish().await;
    assert_eq!(out.code, 1, "{out:?}");
    let line = out.one_line_error();
    assert!(line.contains("calconnect login"), "{line}");
    assert!(!out.stderr.contains(NO_TOKEN_HINT));
}

/// The sandbox as a custom provider whose account is named by a claim of its JWT access
/// tokens; `api` reaches its API once given the base.
#[tokio::test]
async fn custom_profile_logs_in_with_the_token_claims() {
    let home = tempfile::tempdir().unwrap();
    let port = free_port();
    let sb = sandbox(port, 1800).await;
    let authorize = sb.authorize_url().to_string();
    let token = sb.token_url().to_string();
    let port_text = port.to_string();
    let mut login = Login::spawn(
        home.path(),
        &[
            "--profile",
            "custom",
            "--client-id",
            "calconnect-cli",
            "--authorize-url",
            &authorize,
            "--token-url",
            &token,
            "--port",
            &port_text,
            "--no-browser",
            "--scopes",
            "PROFILE_READ",
            "--scope-delimiter",
            "comma",
            "--identity-claim",
            "userId",
        ],
    );
    let url = login.authorize_url();
    let redirect = consent(&sb, &url, "allow").await;
    let (status, page) = follow(&redirect).await;
    assert_eq!(status, 200, "{page}");
    let out = login.finish().await;
    assert_eq!(out.code, 0, "{out:?}");
    let host = base(&sb).trim_start_matches("http://").to_owned();
    assert!(
        out.stdout
            .contains(&format!("Logged in as 1 (claims) at {host}.")),
        "{out:?}"
    );
    let token = run(home.path(), &["token"]).await;
    assert_eq!(token.code, 0, "{token:?}");
    // No API base given: `api` says how to give one.
    let api = run(home.path(), &["api", "GET", "/me"]).await;
    assert_eq!(api.code, 2, "{api:?}");
    assert!(api.one_line_error().contains("--api-base"), "{api:?}");
    let v2 = format!("{}/v2", base(&sb));
    let me = run(home.path(), &["api", "--api-base", &v2, "GET", "/me"]).await;
    assert_eq!(me.code, 0, "{me:?}");
    assert!(me.stdout.contains("\"username\": \"alice\""), "{me:?}");
}

#[tokio::test]
async fn a_stray_request_to_the_callback_is_answered_and_the_login_keeps_waiting() {
    let home = tempfile::tempdir().unwrap();
    let port = free_port();
    let sb = sandbox(port, 1800).await;
    let mut login = Login::with_sandbox(home.path(), &sb, port);
    let url = login.authorize_url();
    // Wrong state, no state, no code: each gets an error page, none ends the login.
    for stray in [
        "/callback?code=forged&state=forged",
        "/callback",
        "/callback?state=forged",
        "/callback?error=access_denied",
    ] {
        let (status, page) = follow(&format!("http://127.0.0.1:{port}{stray}")).await;
        assert_eq!(status, 400, "{stray}");
        assert!(page.contains("still waiting"), "{stray}: {page}");
    }
    // The real answer still completes the login.
    let redirect = consent(&sb, &url, "allow").await;
    let (status, page) = follow(&redirect).await;
    assert_eq!(status, 200, "{page}");
    let out = login.finish().await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("still waiting"), "{out:?}");
}
