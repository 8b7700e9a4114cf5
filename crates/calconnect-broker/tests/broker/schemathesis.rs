//! `schemathesis` (PyPI) against `/api/openapi.json`: no 5xx, no response that violates the
//! document. Skipped when schemathesis is not installed, unless CALCONNECT_REQUIRE_ALL=1 (CI
//! installs it in `.ci/prepare`).

use crate::helpers::*;

fn available() -> bool {
    std::process::Command::new("schemathesis")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    if !available() {
        assert!(
            !calconnect_testkit::require_all(),
            "schemathesis is not installed (pip install schemathesis); CALCONNECT_REQUIRE_ALL=1 requires it"
        );
        eprintln!("schemathesis not installed, skipping");
        return;
    }
    let app = spawn_app().await;
    // Real data behind some of the generated requests.
    app.connected("user-1", ALICE).await;
    let checks = std::env::var("CALCONNECT_SCHEMATHESIS_CHECKS").unwrap_or_else(|_| {
        "not_a_server_error,response_schema_conformance,content_type_conformance,status_code_conformance".into()
    });
    let output = tokio::process::Command::new("schemathesis")
        .arg("run")
        .arg(app.url("/api/openapi.json"))
        .args(["--url", &app.base])
        .args([
            "--header",
            &format!("Authorization: Bearer {}", app.api_key),
        ])
        .args(["--checks", &checks])
        .args(["--max-examples", "40", "--seed", "1", "--workers", "1"])
        .args(["--request-timeout", "10"])
        .env("NO_COLOR", "1")
        .output()
        .await
        .expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("{stdout}");
    assert!(
        output.status.success(),
        "schemathesis failed:\n{stdout}\n{stderr}"
    );
}
