//! `calconnect serve --config broker.toml` and `calconnect api-keys`, as real processes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // reason: tests fail loudly

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn calconnect() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_calconnect"));
    c.env("CALCONNECT_CLIENT_SECRET", "serve-test-client-secret");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::disallowed_methods)] // reason: a test's own HTTP client, playing the app or the browser
async fn serve_with_a_config_file_answers_and_stops_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let status = calconnect()
        .args(["keys", "generate", "--out"])
        .arg(&keys)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let config = dir.path().join("broker.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\npublic_base_url = \"http://127.0.0.1:8080\"\ndatabase_url = \"sqlite://{}\"\n[client]\nid = \"my-client\"\nscopes = [\"PROFILE_READ\"]\n[keys]\nfile = \"{}\"\n",
            dir.path().join("broker.db").display(),
            keys.display()
        ),
    )
    .unwrap();
    let created = calconnect()
        .args(["api-keys", "create", "--name", "test", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let key = String::from_utf8(created.stdout).unwrap().trim().to_owned();
    assert!(key.starts_with("cck_"), "{key}");
    let listed = calconnect()
        .args(["api-keys", "list", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    let listed = String::from_utf8(listed.stdout).unwrap();
    assert!(
        listed.contains("test") && listed.contains("active") && !listed.contains(&key),
        "{listed}"
    );

    let mut child = calconnect()
        .args(["serve", "--config"])
        .arg(&config)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let url = loop {
        let line = lines.next().expect("serve printed its address").unwrap();
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.trim().to_owned();
        }
    };
    let http = reqwest::Client::builder().build().unwrap();
    let ready = http.get(format!("{url}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let session = http
        .post(format!("{url}/api/v1/connect-sessions"))
        .bearer_auth(&key)
        .json(&serde_json::json!({"end_user_id": "u1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(session.status(), 201);
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "graceful shutdown exits 0: {exit}");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(
        rest.iter()
            .all(|l| !l.contains("serve-test-client-secret") && !l.contains(&key))
    );
}

#[test]
fn serve_help_shows_an_example_config() {
    let out = calconnect().args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(
        help.contains("public_base_url") && help.contains("[webhooks]"),
        "{help}"
    );
}

#[test]
fn configuration_errors_name_the_key() {
    let out = calconnect()
        .args(["serve"])
        .env("CALCONNECT_PUBLIC_BASE_URL", "ftp://nope")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("public_base_url"), "{err}");
}

/// A one-request HTTP receiver on 127.0.0.1 answering `status`; the request's head (lowercase)
/// and body come back on the channel.
fn one_shot_receiver(status: u16) -> (String, std::sync::mpsc::Receiver<(String, String)>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let (head, body_start) = loop {
            let n = stream.read(&mut chunk).unwrap();
            buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break (String::from_utf8_lossy(&buf[..end]).to_lowercase(), end + 4);
            }
        };
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        while buf.len() < body_start + length {
            let n = stream.read(&mut chunk).unwrap();
            buf.extend_from_slice(&chunk[..n]);
        }
        let body = String::from_utf8_lossy(&buf[body_start..body_start + length]).into_owned();
        write!(
            stream,
            "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        )
        .unwrap();
        tx.send((head, body)).unwrap();
    });
    (url, rx)
}

const HOOK_SECRET: &str = "cli-webhook-secret-0123456789abcdef";

/// A broker.toml sending webhooks to `url`, on a SQLite database in `dir`.
fn webhook_config(dir: &std::path::Path, url: &str) -> std::path::PathBuf {
    let config = dir.join("broker.toml");
    std::fs::write(
        &config,
        format!(
            "public_base_url = \"http://127.0.0.1:8080\"\ndatabase_url = \"sqlite://{}\"\n[client]\nid = \"my-client\"\nscopes = [\"PROFILE_READ\"]\n[webhooks]\nurls = [\"{url}\"]\n",
            dir.join("broker.db").display(),
        ),
    )
    .unwrap();
    config
}

fn webhooks_cli(config: &std::path::Path, args: &[&str]) -> std::process::Output {
    let keys = config.with_file_name("keys");
    if !keys.exists() {
        let status = calconnect()
            .args(["keys", "generate", "--out"])
            .arg(&keys)
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
    }
    calconnect()
        .arg("webhooks")
        .args(args)
        .arg("--config")
        .arg(config)
        .env("CALCONNECT_KEY_FILE", &keys)
        .env("CALCONNECT_WEBHOOK_SECRET", HOOK_SECRET)
        .output()
        .unwrap()
}

#[test]
fn webhooks_test_sends_a_signed_event_and_reports_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    let (url, got) = one_shot_receiver(204);
    let out = webhooks_cli(&webhook_config(dir.path(), &url), &["test"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim(), format!("ok    {url} answered 204"));
    let (head, body) = got.recv().unwrap();
    let event: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(event["type"], "webhook.test");
    assert!(
        head.contains("calconnect-event-type: webhook.test"),
        "{head}"
    );
    let signature = head
        .lines()
        .find_map(|l| l.strip_prefix("calconnect-signature: "))
        .unwrap();
    let t: i64 = signature
        .strip_prefix("t=")
        .and_then(|s| s.split(',').next())
        .unwrap()
        .parse()
        .unwrap();
    let expected = calconnect_broker::webhooks::signature(
        &secrecy::SecretString::from(HOOK_SECRET),
        t,
        body.as_bytes(),
    );
    assert_eq!(signature, expected);
}

#[test]
fn webhooks_test_fails_with_a_hint_when_the_receiver_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let (url, _got) = one_shot_receiver(401);
    let out = webhooks_cli(&webhook_config(dir.path(), &url), &["test"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with(&format!("FAIL  {url}: receiver answered 401"))
            && stdout.contains("refused the signature"),
        "{stdout}"
    );
}

#[test]
fn webhooks_redeliver_names_an_unknown_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let config = webhook_config(dir.path(), "http://127.0.0.1:9/hook");
    let out = webhooks_cli(&config, &["redeliver", "42"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no webhook delivery 42") && stderr.contains("webhook-deliveries"),
        "{stderr}"
    );
}
