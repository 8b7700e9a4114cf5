//! `calconnect serve --config broker.toml`, `calconnect doctor --config` and
//! `calconnect api-keys`, as real processes against an in-process sandbox.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // reason: tests fail loudly

use calconnect_sandbox::{CONFIDENTIAL_CLIENT_ID, CONFIDENTIAL_CLIENT_SECRET, ClientType, Sandbox};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn calconnect() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_calconnect"));
    c.env("CALCONNECT_CLIENT_SECRET", CONFIDENTIAL_CLIENT_SECRET);
    c.env_remove("CALCONNECT_DATABASE_URL");
    c.env_remove("CALCONNECT_KEYS");
    c
}

async fn sandbox() -> Sandbox {
    Sandbox::builder()
        .redirect_uri(
            ClientType::Confidential,
            "http://127.0.0.1:8080/oauth/callback",
        )
        .start()
        .await
        .unwrap()
}

fn generate_key(path: &Path) {
    let status = calconnect()
        .args(["keys", "generate", "--out"])
        .arg(path)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
}

/// A broker configuration in `dir` with relative paths (`broker.db`, `keys`), on `sandbox`.
fn write_config(dir: &Path, sandbox: &Sandbox, extra: &str) -> std::path::PathBuf {
    generate_key(&dir.join("keys"));
    let config = dir.join("broker.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\npublic_base_url = \"http://127.0.0.1:8080\"\ndatabase_url = \"sqlite://broker.db\"\n\
             [provider]\nkind = \"sandbox\"\nweb_url = \"{}\"\n\
             [client]\nid = \"{CONFIDENTIAL_CLIENT_ID}\"\nscopes = [\"PROFILE_READ\"]\n[keys]\nfile = \"keys\"\n{extra}",
            sandbox.base_url().as_str().trim_end_matches('/')
        ),
    )
    .unwrap();
    config
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs a blocking command off the runtime (the sandbox runs on it).
async fn output(mut command: Command) -> Output {
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::disallowed_methods)] // reason: a test's own HTTP client, playing the app or the browser
async fn serve_checks_prints_its_summary_answers_and_stops_gracefully() {
    let sandbox = sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &sandbox, "");
    // Run from another folder: the relative paths are the config file's.
    let elsewhere = tempfile::tempdir().unwrap();
    let mut create = calconnect();
    create
        .args(["api-keys", "create", "--name", "test", "--config"])
        .arg(&config)
        .current_dir(elsewhere.path());
    let created = output(create).await;
    assert!(created.status.success(), "{}", text(&created.stderr));
    assert!(dir.path().join("broker.db").exists());
    assert!(!elsewhere.path().join("broker.db").exists());
    let key = text(&created.stdout).trim().to_owned();
    assert!(key.starts_with("cck_"), "{key}");

    let mut child = calconnect()
        .args(["serve", "--config"])
        .arg(&config)
        .current_dir(elsewhere.path())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let (url, summary) = tokio::task::spawn_blocking(move || {
        let mut before = Vec::new();
        let url = loop {
            let line = lines.next().expect("serve printed its address").unwrap();
            if let Some(rest) = line.split("listening on ").nth(1) {
                break rest.trim().to_owned();
            }
            before.push(line);
        };
        let summary: Vec<String> = (0..5).map(|_| lines.next().unwrap().unwrap()).collect();
        (url, (before, summary, lines))
    })
    .await
    .unwrap();
    let (before, summary, lines) = summary;
    assert!(
        before
            .iter()
            .all(|l| !l.contains("warning") && !l.contains("FAIL")),
        "{before:?}"
    );
    let summary = summary.join("\n");
    for expected in [
        "redirect URI  http://127.0.0.1:8080/oauth/callback (register it for client `calconnect-demo` at the sandbox",
        &format!(
            "database      SQLite {} opens, schema up to date, 0 connection(s)",
            dir.path().join("broker.db").display()
        ),
        "provider      the calconnect sandbox, token endpoint http://127.0.0.1:",
        "client        `calconnect-demo`, no PKCE (confidential client: the client secret authenticates",
        "webhooks      none (webhooks.urls)",
    ] {
        assert!(summary.contains(expected), "{expected:?} in\n{summary}");
    }

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
    let exit = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(exit.success(), "graceful shutdown exits 0: {exit}");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(
        rest.iter()
            .chain(&before)
            .all(|l| !l.contains(CONFIDENTIAL_CLIENT_SECRET) && !l.contains(&key))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_to_start_on_a_failed_check_and_doctor_says_why() {
    let sandbox = sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &sandbox, "");
    let text_of = |c: &Path| std::fs::read_to_string(c).unwrap();
    std::fs::write(
        &config,
        text_of(&config).replace("[\"PROFILE_READ\"]", "[\"PROFILE_RAED\"]"),
    )
    .unwrap();
    let mut serve = calconnect();
    serve.args(["serve", "--config"]).arg(&config);
    let out = output(serve).await;
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(
            "FAIL scopes: not a Cal.com scope: `PROFILE_RAED` (did you mean PROFILE_READ?)"
        ),
        "{err}"
    );
    assert!(
        err.contains("error: 1 start-up check(s) failed (above); the broker did not start"),
        "{err}"
    );
    assert!(!err.contains("listening on"), "{err}");

    // The doctor prints every check; a wrong secret fails one more.
    let mut doctor = calconnect();
    doctor
        .args(["doctor", "--config"])
        .arg(&config)
        .env("CALCONNECT_CLIENT_SECRET", "not-the-secret-of-this-client");
    let out = output(doctor).await;
    assert_eq!(out.status.code(), Some(1));
    let report = text(&out.stdout);
    for expected in [
        "[ok]   configuration: ",
        "[ok]   redirect URI: http://127.0.0.1:8080/oauth/callback: register exactly this URI",
        "[FAIL] scopes: not a Cal.com scope: `PROFILE_RAED`",
        "[ok]   database: SQLite ",
        "[ok]   sealing keys: active key ",
        "[FAIL] client credentials: ",
        "invalid_client_credentials",
        "       fix: set CALCONNECT_CLIENT_SECRET to the client's current secret",
        "[skip] webhook receiver: no receivers configured",
    ] {
        assert!(report.contains(expected), "{expected:?} in\n{report}");
    }
    assert!(
        text(&out.stderr).contains("2 check(s) failed"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_reports_an_unreachable_postgres_as_connection_refused_at_once() {
    let sandbox = sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &sandbox, "");
    let mut doctor = calconnect();
    doctor.args(["doctor", "--config"]).arg(&config).env(
        "CALCONNECT_DATABASE_URL",
        "postgres://calconnect:pg-password@127.0.0.1:1/calconnect",
    );
    let started = std::time::Instant::now();
    let out = output(doctor).await;
    assert_eq!(out.status.code(), Some(1));
    let report = text(&out.stdout);
    assert!(
        report.contains("[FAIL] database: ") && report.contains("connection refused"),
        "{report}"
    );
    assert_eq!(report.matches("connection refused").count(), 1, "{report}");
    assert!(
        !report.contains("pg-password") && !report.contains("timed out"),
        "{report}"
    );
    // Well under the pool's 10-second timeout (a refused connection answers at once).
    assert!(started.elapsed() < std::time::Duration::from_secs(8));

    // api-keys needs only the database, and says the cause once.
    let mut list = calconnect();
    list.args(["api-keys", "list", "--config"])
        .arg(&config)
        .env(
            "CALCONNECT_DATABASE_URL",
            "postgres://calconnect:pg-password@127.0.0.1:1/calconnect",
        );
    let out = output(list).await;
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert_eq!(err.matches("connection refused").count(), 1, "{err}");
    assert!(!err.contains("pg-password"), "{err}");
}

#[test]
fn api_keys_need_only_the_database_and_list_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("broker.toml");
    std::fs::write(&config, "database_url = \"sqlite://keys.db\"\n").unwrap();
    let created = calconnect()
        .env_remove("CALCONNECT_CLIENT_SECRET")
        .args(["api-keys", "create", "--name", "billing", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(created.status.success(), "{}", text(&created.stderr));
    let out = calconnect()
        .args(["api-keys", "list", "--json", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let key = &listed[0];
    assert_eq!(key["name"], "billing");
    assert_eq!(key["status"], "active");
    assert!(key["revoked_at"].is_null());
    assert!(key["last_used_at"].is_null(), "a key never used");
    let created_at = key["created_at"].as_str().unwrap();
    assert!(
        time::OffsetDateTime::parse(created_at, &time::format_description::well_known::Rfc3339)
            .is_ok(),
        "{created_at}"
    );
    let id = key["id"].as_str().unwrap();
    let revoked = calconnect()
        .args(["api-keys", "revoke", id, "-c"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(revoked.status.success(), "{}", text(&revoked.stderr));
    let out = calconnect()
        .args(["api-keys", "list", "--json", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed[0]["status"], "revoked");
    assert!(listed[0]["revoked_at"].is_string());
}

#[test]
fn serve_help_shows_an_example_config() {
    let out = calconnect().args(["serve", "--help"]).output().unwrap();
    let help = text(&out.stdout);
    assert!(
        help.contains("public_base_url") && help.contains("[webhooks]"),
        "{help}"
    );
}

#[test]
fn configuration_errors_name_the_key_and_the_line() {
    let out = calconnect()
        .args(["serve"])
        .env("CALCONNECT_PUBLIC_BASE_URL", "ftp://nope")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("public_base_url"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("broker.toml");
    let cases = [
        (
            "listen = \"127.0.0.1:0\"\npublic_base_url = \"https://c.example\n",
            "error: configuration file: line 2, column ",
        ),
        (
            "listen = 8080\n",
            "error: configuration key `listen`: invalid type: integer `8080`, expected a string (line 1)",
        ),
        (
            "public_base_url = \"https://c.example\"\n\n[client]\nid = \"x\"\nscopes = \"PROFILE_READ\"\n",
            "error: configuration key `client.scopes`: invalid type: string \"PROFILE_READ\", expected a sequence (line 5)",
        ),
        (
            "[client]\nscope = [\"PROFILE_READ\"]\n",
            "error: configuration key `client.scope`: unknown field `scope`",
        ),
    ];
    for (file, expected) in cases {
        std::fs::write(&config, file).unwrap();
        let out = calconnect()
            .args(["serve", "-c"])
            .arg(&config)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{file}");
        let err = text(&out.stderr);
        assert!(
            err.starts_with(expected),
            "{expected:?} for {file:?}:\n{err}"
        );
        assert_eq!(err.lines().count(), 1, "one line: {err}");
    }
}

#[test]
fn a_port_in_use_names_the_holder_and_the_setting_to_change() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    // serve: at once, before any check (the provider here does not even exist).
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("broker.toml");
    generate_key(&dir.path().join("keys"));
    std::fs::write(
        &config,
        format!(
            "listen = \"{addr}\"\npublic_base_url = \"http://127.0.0.1:8080\"\ndatabase_url = \"sqlite://b.db\"\n[provider]\nkind = \"sandbox\"\nweb_url = \"http://127.0.0.1:1\"\n[client]\nid = \"c\"\nscopes = [\"PROFILE_READ\"]\n[keys]\nfile = \"keys\"\n"
        ),
    )
    .unwrap();
    let out = calconnect()
        .args(["serve", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.starts_with(&format!("error: cannot listen on {addr}: ")),
        "{err}"
    );
    assert!(
        err.contains("set another address with listen (CALCONNECT_LISTEN)"),
        "{err}"
    );
    assert!(!err.contains("FAIL") && !err.contains("warning"), "{err}");
    assert!(!dir.path().join("b.db").exists(), "nothing else was done");

    // sandbox
    let out = calconnect()
        .args(["sandbox", "--listen", &addr.to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.starts_with(&format!("error: cannot listen on {addr}: ")),
        "{err}"
    );
    assert!(err.contains("already listens there"), "{err}");
    assert!(err.contains("--listen"), "{err}");
    #[cfg(target_os = "linux")]
    assert!(
        err.contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
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
