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
