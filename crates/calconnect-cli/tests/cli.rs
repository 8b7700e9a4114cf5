//! Drives the built `calconnect` binary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // reason: tests fail loudly

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// Kills the child when the test ends, pass or fail.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn calconnect() -> Command {
    Command::new(env!("CARGO_BIN_EXE_calconnect"))
}

/// Starts `calconnect sandbox` on a free port and returns its banner.
fn start_sandbox(extra: &[&str]) -> (Running, String) {
    let mut child = calconnect()
        .args(["sandbox", "--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn calconnect");
    let stdout = child.stdout.take().unwrap();
    let running = Running(child);
    let mut banner = String::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        banner.push_str(&line);
        banner.push('\n');
        if line.starts_with("Press Ctrl-C") {
            break;
        }
    }
    (running, banner)
}

fn url_after<'a>(banner: &'a str, label: &str) -> &'a str {
    banner
        .lines()
        .find_map(|l| l.trim_start().strip_prefix(label))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {label:?} line in banner:\n{banner}"))
}

#[test]
#[allow(clippy::disallowed_methods)] // reason: a test's own HTTP client, playing the app or the browser
fn sandbox_prints_urls_and_credentials_and_serves_them() {
    let (_running, banner) = start_sandbox(&[
        "--client-id",
        "my-app",
        "--client-secret",
        "my-secret-value",
        "--redirect-uri",
        "http://localhost:3000/callback",
    ]);
    assert!(
        banner.contains("my-app (confidential, Approved)"),
        "{banner}"
    );
    assert!(
        banner.contains("client_secret  my-secret-value"),
        "{banner}"
    );
    assert!(
        banner.contains("http://localhost:3000/callback"),
        "{banner}"
    );
    assert!(
        banner.contains("calconnect-cli (public, Approved)"),
        "{banner}"
    );
    assert!(banner.contains("alice <alice@example.com>"), "{banner}");
    // What to do after the example link, whose redirect URI may have nobody listening.
    assert!(
        banner.contains("What happens next:")
            && banner.contains("the code is in\n  its address bar")
            && banner.contains("\"grant_type\":\"authorization_code\",\"client_id\":\"my-app\",\"client_secret\":\"my-secret-value\""),
        "{banner}"
    );
    let base = url_after(&banner, "control surface")
        .trim_end_matches('/')
        .trim_end_matches("/_sandbox");
    assert!(
        banner.contains(&format!(
            "calconnect login --profile sandbox --sandbox-url {base}"
        )),
        "{banner}"
    );

    let token_url = url_after(&banner, "token endpoint (v2)");
    assert!(token_url.starts_with("http://127.0.0.1:"), "{token_url}");
    assert!(
        !token_url.ends_with(":0/v2/auth/oauth2/token"),
        "real port printed: {token_url}"
    );

    // The printed endpoint answers like Cal.com: a bare RFC 6749 error for an empty body.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (status, body) = rt.block_on(async {
        let resp = reqwest::Client::builder()
            .build()
            .unwrap()
            .post(token_url)
            .json(&serde_json::json!({}))
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    });
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("client_id is required"), "{body}");
}

#[test]
fn unknown_seed_file_is_a_one_line_error() {
    let out = calconnect()
        .args([
            "sandbox",
            "--listen",
            "127.0.0.1:0",
            "--seed",
            "/nonexistent/seed.toml",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot read seed file /nonexistent/seed.toml"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn help_has_examples() {
    let out = calconnect().args(["sandbox", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(help.contains("--redirect-uri"), "{help}");
}

/// A reader that closes the pipe early (`| head`) ends the command quietly: exit 0, no panic.
/// The pipe is closed before the command starts, so every run hits it.
#[test]
fn writing_to_a_closed_pipe_exits_quietly() {
    for args in [
        &["completions", "bash"][..],
        &["keys", "generate"][..],
        &["completions", "zsh"][..],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = calconnect()
            .args(args)
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(out.status.success(), "{args:?}: {:?} {stderr}", out.status);
    }
}
