//! The browser test: the demo on port 0 in a temp folder, driven by `tests/browser/flow.mjs`
//! (playwright-core + Debian's Chromium): the whole flow at laptop and phone (390 px) widths, and
//! axe-core (pinned in `tests/browser/package.json`) on every page of the app, the broker and
//! the sandbox — a critical or serious accessibility violation fails it. Screenshots go to `$CALCONNECT_ARTIFACTS` or
//! `target/artifacts/demo-browser`. Without node, Chromium or `node_modules`, it prints
//! "browser test skipped: …" and passes, unless `CALCONNECT_REQUIRE_ALL=1`.

use crate::helpers::*;
use std::path::{Path, PathBuf};

fn missing() -> Option<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_err()
    {
        return Some("node is not installed".into());
    }
    if !Path::new(&chromium).exists() {
        return Some(format!(
            "{chromium} is missing (apt-get install -y chromium)"
        ));
    }
    if !dir.join("node_modules/playwright-core").exists()
        || !dir.join("node_modules/axe-core").exists()
    {
        return Some(format!("run `npm ci` in {}", dir.display()));
    }
    None
}

fn artifacts() -> PathBuf {
    std::env::var_os("CALCONNECT_ARTIFACTS").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/artifacts/demo-browser"),
        |d| PathBuf::from(d).join("demo-browser"),
    )
}

#[tokio::test]
async fn the_real_pages_in_headless_chromium() {
    if let Some(why) = missing() {
        assert!(
            std::env::var("CALCONNECT_REQUIRE_ALL").as_deref() != Ok("1"),
            "browser test required (CALCONNECT_REQUIRE_ALL=1) but {why}"
        );
        println!("browser test skipped: {why}");
        return;
    }
    let app = start().await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/flow.mjs");
    let out = tokio::process::Command::new("node")
        .arg(&script)
        .arg(app.demo.app_url())
        .arg(artifacts())
        .env(
            "CALCONNECT_DEMO_ADMIN",
            secrecy::ExposeSecret::expose_secret(app.demo.admin_password()),
        )
        .env("CALCONNECT_DEMO_BROKER", app.demo.broker_url())
        .env("CALCONNECT_DEMO_SANDBOX", app.demo.sandbox_url())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("browser flow ok"),
        "browser flow failed ({}):\n{stdout}\n{stderr}\nscreenshots in {}",
        out.status,
        artifacts().display()
    );
    app.demo.shutdown().await;
}
