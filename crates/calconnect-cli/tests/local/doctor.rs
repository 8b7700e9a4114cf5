//! `calconnect doctor`: passing and failing cases.

use crate::helpers::*;

#[tokio::test]
async fn doctor_passes_after_login_and_runs_the_synthetic_flow() {
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let port = free_port();
    let sb = sandbox(port, 1800).await;
    assert_eq!(login(home, &sb, port).await.code, 0);
    let out = run(home, &["doctor", "--synthetic"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    for check in [
        "[ok]   configuration:",
        "[ok]   redirect URI: http://127.0.0.1:",
        "[ok]   clock:",
        "[ok]   token endpoint:",
        "[ok]   key file:",
        "[ok]   database:",
        "schema at migration ",
        "[ok]   sealed tokens: 1 connection(s)",
        "[ok]   synthetic flow: signed in, consented, exchanged the code with PKCE and read /v2/me as alice",
        "All checks passed.",
    ] {
        assert!(out.stdout.contains(check), "{check}\n{}", out.stdout);
    }
    assert!(!out.stdout.contains(NO_TOKEN_HINT) && !out.stderr.contains(NO_TOKEN_HINT));
}

#[tokio::test]
async fn doctor_before_login_checks_the_given_provider() {
    let home = tempfile::tempdir().unwrap();
    let sb = sandbox(free_port(), 1800).await;
    let out = run(
        home.path(),
        &[
            "doctor",
            "--profile",
            "sandbox",
            "--sandbox-url",
            &base(&sb),
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("[ok]   token endpoint:"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("[skip] database:"), "{}", out.stdout);
}

#[tokio::test]
async fn doctor_fails_with_fixes() {
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let port = free_port();
    let sb = sandbox(port, 1800).await;
    assert_eq!(login(home, &sb, port).await.code, 0);
    std::fs::write(home.join("key"), "not a key\n").unwrap();
    let out = run(
        home,
        &["doctor", "--redirect-uri", "http://example.com/callback"],
    )
    .await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("[FAIL] key file:"), "{}", out.stdout);
    assert!(out.stdout.contains("fix: move it aside"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("[FAIL] redirect URI: http://example.com/callback"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("fix: use https://"), "{}", out.stdout);
    assert!(
        out.one_line_error().contains("2 check(s) failed"),
        "{out:?}"
    );

    // A provider that does not answer.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let out = run(
        home,
        &["doctor", "--profile", "sandbox", "--sandbox-url", &dead],
    )
    .await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stdout.contains("[FAIL] token endpoint: cannot reach"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains(NO_TOKEN_HINT));
}

/// A token endpoint whose clock is in 1994: answers every request like an RFC 6749 server.
async fn stale_clock_provider() -> u16 {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let body = r#"{"error":"unsupported_grant_type"}"#;
                let response = format!(
                    "HTTP/1.1 400 Bad Request\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    port
}

#[tokio::test]
async fn doctor_flags_a_skewed_clock_against_a_custom_provider() {
    let home = tempfile::tempdir().unwrap();
    let port = stale_clock_provider().await;
    let authorize = format!("http://127.0.0.1:{port}/authorize");
    let token = format!("http://127.0.0.1:{port}/token");
    let out = run(
        home.path(),
        &[
            "doctor",
            "--profile",
            "custom",
            "--client-id",
            "c",
            "--authorize-url",
            &authorize,
            "--token-url",
            &token,
        ],
    )
    .await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stdout.contains("[FAIL] clock: your clock is"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("fix: enable time synchronisation"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("[ok]   token endpoint:"),
        "{}",
        out.stdout
    );
}

#[tokio::test]
async fn doctor_notices_tokens_sealed_with_another_key() {
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let port = free_port();
    let sb = sandbox(port, 1800).await;
    assert_eq!(login(home, &sb, port).await.code, 0);
    let other = run(home, &["keys", "generate", "--id", "cli-1"]).await;
    std::fs::write(home.join("key"), &other.stdout).unwrap();
    let out = run(home, &["doctor"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("[ok]   key file:"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("[FAIL] sealed tokens: 1 of 1 connection(s) cannot be opened"),
        "{}",
        out.stdout
    );
    // `token` says the same in one line.
    let token = run(home, &["token"]).await;
    assert_eq!(token.code, 1, "{token:?}");
    assert!(token.one_line_error().contains("cli-1"), "{token:?}");
}
