//! `calconnect demo` as a person runs it: prints the address to open, serves it, stops cleanly on
//! Ctrl-C (SIGINT), and keeps its data folder between runs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // reason: tests fail loudly

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// Runs the demo in `dir` on free ports until the "open" line; returns the child and the URL.
fn start(dir: &std::path::Path) -> (std::process::Child, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_calconnect"))
        .args([
            "demo",
            "--port",
            "0",
            "--broker-port",
            "0",
            "--sandbox-port",
            "0",
        ])
        .arg("--data-dir")
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn calconnect demo");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut banner = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        banner.push_str(&line);
        banner.push('\n');
        if let Some(url) = line.strip_prefix("open ") {
            let url = url.to_owned();
            std::thread::spawn(move || for _ in lines {});
            return (child, url, banner);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("no `open` line in:\n{banner}");
}

fn interrupt(child: &mut std::process::Child) -> std::process::ExitStatus {
    let ok = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    child.wait().unwrap()
}

#[tokio::test]
#[allow(clippy::disallowed_methods)] // reason: a test's own HTTP client, playing the app or the browser
async fn demo_serves_stops_on_ctrl_c_and_keeps_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url, banner) = start(dir.path());
    assert!(
        banner.contains("WARNING: generated a sealing key FOR THIS DEMO ONLY"),
        "{banner}"
    );
    assert!(banner.contains("password"), "{banner}");
    // The seeded users the sandbox's sign-in page offers.
    assert!(banner.contains("sign in as alice, bob, dev)"), "{banner}");
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let home = http.get(&url).send().await.unwrap();
    assert_eq!(home.status(), reqwest::StatusCode::OK);
    assert!(home.text().await.unwrap().contains("Sign in"));
    let status = interrupt(&mut child);
    assert!(status.success(), "exit after Ctrl-C: {status}");

    let key = std::fs::read_to_string(dir.path().join("keys")).unwrap();
    let (mut child, url, banner) = start(dir.path());
    assert!(!banner.contains("generated a sealing key"), "{banner}");
    assert!(banner.contains("for the demo only"), "{banner}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("keys")).unwrap(),
        key
    );
    assert!(dir.path().join("calconnect.db").exists());
    assert_eq!(
        http.get(&url).send().await.unwrap().status(),
        reqwest::StatusCode::OK
    );
    assert!(interrupt(&mut child).success());
}
