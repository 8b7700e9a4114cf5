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
