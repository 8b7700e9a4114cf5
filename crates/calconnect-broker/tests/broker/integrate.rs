//! The snippets of docs/integrate.md, run against a real broker and sandbox: the Node.js ones
//! (TypeScript on a client generated from the broker's OpenAPI document with openapi-typescript,
//! type-checked and compiled by tsc) and the Python ones (standard library only). Each language
//! goes through the whole flow: a connect link, the consent at the sandbox, the return, a token,
//! proxied calls, and a real webhook delivery verified by the snippet's receiver. Also:
//! docs/integrate.md quotes the snippet files verbatim, and `redocly lint` (recommended rules)
//! passes on `/api/openapi.json`.
//!
//! Node.js and the npm packages (`npm ci` in docs/integrate/node, done by `.ci/prepare`) are
//! required with CALCONNECT_REQUIRE_ALL=1; otherwise a missing one skips with a message.

use crate::helpers::*;
use crate::webhooks::hook_options;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::Value;
use sha2::Sha256;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

const RETURN_TO: &str = "https://app.example/calconnect/return";

fn docs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs")
}

fn node_dir() -> PathBuf {
    docs().join("integrate/node")
}

fn python_dir() -> PathBuf {
    docs().join("integrate/python")
}

/// Whether `program --version` runs.
fn runs(program: &str) -> bool {
    std::process::Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Whether the npm packages are installed; skips (or fails under CALCONNECT_REQUIRE_ALL=1)
/// when Node.js or they are missing.
fn node_ready() -> bool {
    let tools = ["tsc", "openapi-typescript", "redocly"];
    let missing = !runs("node")
        || tools
            .iter()
            .any(|t| !node_dir().join("node_modules/.bin").join(t).exists());
    if missing {
        assert!(
            !calconnect_testkit::require_all(),
            "Node.js or the npm packages of docs/integrate/node are missing (run `npm ci` there, as .ci/prepare does); CALCONNECT_REQUIRE_ALL=1 requires them"
        );
        eprintln!("Node.js or docs/integrate/node/node_modules missing, skipping");
        return false;
    }
    true
}

/// The OpenAPI document, as `/api/openapi.json` serves it.
fn openapi_json() -> String {
    use utoipa::OpenApi as _;
    calconnect_broker::openapi::ApiDoc::openapi()
        .to_pretty_json()
        .unwrap()
}

/// Runs a tool to completion; panics with its output when it fails.
async fn run_tool(mut command: Command, what: &str) -> String {
    let output = command
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    stdout
}

fn node_bin(tool: &str) -> Command {
    Command::new(node_dir().join("node_modules/.bin").join(tool))
}

/// One language's snippets, ready to run.
struct Snippets {
    /// The program and its first arguments (`node out/run.js`, `python3 run.py`).
    program: Vec<String>,
    dir: PathBuf,
    _build: Option<tempfile::TempDir>,
}

impl Snippets {
    /// The Node.js snippets: the client generated from the document, and everything
    /// type-checked and compiled by tsc in a scratch directory.
    async fn node() -> Self {
        let build = tempfile::tempdir().unwrap();
        let dir = build.path().to_owned();
        for entry in std::fs::read_dir(node_dir()).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            let keep = (name.ends_with(".ts") && !name.ends_with(".d.ts"))
                || name == "tsconfig.json"
                || name == "package.json";
            if keep {
                std::fs::copy(&path, dir.join(&name)).unwrap();
            }
        }
        #[cfg(unix)]
        std::os::unix::fs::symlink(node_dir().join("node_modules"), dir.join("node_modules"))
            .unwrap();
        std::fs::write(dir.join("openapi.json"), openapi_json()).unwrap();
        let mut generate = node_bin("openapi-typescript");
        generate
            .current_dir(&dir)
            .args(["openapi.json", "-o", "calconnect-api.d.ts"]);
        run_tool(generate, "openapi-typescript").await;
        let mut tsc = node_bin("tsc");
        tsc.current_dir(&dir).args(["-p", "tsconfig.json"]);
        run_tool(
            tsc,
            "tsc (a change to the API that breaks the generated client fails here)",
        )
        .await;
        Self {
            program: vec![
                "node".into(),
                dir.join("out/run.js").to_str().unwrap().to_owned(),
            ],
            dir,
            _build: Some(build),
        }
    }

    fn python() -> Self {
        Self {
            program: vec![
                "python3".into(),
                python_dir().join("run.py").to_str().unwrap().to_owned(),
            ],
            dir: python_dir(),
            _build: None,
        }
    }

    fn command(&self, app: Option<&TestApp>, args: &[&str]) -> Command {
        let mut c = Command::new(&self.program[0]);
        c.args(&self.program[1..])
            .args(args)
            .current_dir(&self.dir)
            .env("CALCONNECT_WEBHOOK_SECRET", WEBHOOK_SECRET)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .kill_on_drop(true);
        if let Some(app) = app {
            c.env("CALCONNECT_URL", &app.base)
                .env("CALCONNECT_API_KEY", &app.api_key);
        }
        c
    }

    /// Runs one command; its standard output, trimmed.
    async fn run(&self, app: &TestApp, args: &[&str]) -> String {
        run_tool(self.command(Some(app), args), &format!("snippet {args:?}"))
            .await
            .trim()
            .to_owned()
    }

    /// Runs one command that must fail; its standard error.
    async fn fails(&self, app: &TestApp, args: &[&str]) -> String {
        let output = self
            .command(Some(app), args)
            .stdin(Stdio::null())
            .output()
            .await
            .unwrap();
        assert!(!output.status.success(), "snippet {args:?} should fail");
        String::from_utf8_lossy(&output.stderr).into_owned()
    }

    /// Starts the webhook receiver; its URL and its lines (one verified event each).
    async fn receiver(&self) -> (Child, String, Lines<BufReader<ChildStdout>>) {
        let mut child = self
            .command(None, &["receive"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = next_line(&mut lines).await;
        let url = first
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("receiver said {first}"))
            .to_owned();
        (child, url, lines)
    }
}

async fn next_line(lines: &mut Lines<BufReader<ChildStdout>>) -> String {
    tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("the receiver printed a line in time")
        .unwrap()
        .expect("the receiver is running")
}

/// `calconnect-signature` for `body` at `t` under `secret`.
fn signed(secret: &str, t: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// The whole flow with one language's snippets.
async fn whole_flow(snippets: Snippets) {
    let (mut receiver, hook_url, mut events) = snippets.receiver().await;
    let app = spawn_with(hook_options(&hook_url, WEBHOOK_SECRET)).await;

    // The app asks for a connect link and sends the browser there.
    let connect_url = snippets.run(&app, &["connect", "user-1", RETURN_TO]).await;
    assert!(
        connect_url.starts_with(&format!("{}/connect/", app.base)),
        "{connect_url}"
    );
    // The person consents at Cal.com (the sandbox) and comes back to the app.
    let browser = browser();
    let callback = app.consent(&browser, &connect_url, ALICE, "allow").await;
    let back = browser.get(callback).send().await.unwrap();
    assert_eq!(back.status(), StatusCode::SEE_OTHER);
    let return_url = location(&back);
    assert!(return_url.starts_with(RETURN_TO), "{return_url}");

    // Another user of the app may not finish it; the result is single use.
    let someone_else = snippets
        .fails(&app, &["finish", &return_url, "user-2"])
        .await;
    assert!(
        someone_else.contains("finished by another user"),
        "{someone_else}"
    );
    let (_, list) = app.get("/api/v1/connections?end_user_id=user-1").await;
    assert_eq!(
        list["connections"].as_array().unwrap().len(),
        0,
        "the snippet deleted the connection made through another user's link"
    );

    // Again, properly: the same user finishes.
    let connect_url = snippets.run(&app, &["connect", "user-1", RETURN_TO]).await;
    let browser = crate::helpers::browser();
    let callback = app.consent(&browser, &connect_url, ALICE, "allow").await;
    let return_url = location(&browser.get(callback).send().await.unwrap());
    let connection_id = snippets.run(&app, &["finish", &return_url, "user-1"]).await;
    let (status, connection) = app
        .get(&format!("/api/v1/connections/{connection_id}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{connection}");
    assert_eq!(connection["end_user_id"], "user-1");
    let again = snippets
        .fails(&app, &["finish", &return_url, "user-1"])
        .await;
    assert!(again.contains("already_redeemed"), "{again}");

    // A fresh token works at Cal.com.
    let token: Value =
        serde_json::from_str(&snippets.run(&app, &["token", &connection_id]).await).unwrap();
    let me = app
        .http
        .get(app.sandbox.base_url().join("v2/me").unwrap())
        .bearer_auth(token["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    assert!(
        token["expires_at"].as_str().unwrap().starts_with("20"),
        "{token}"
    );

    // Calls through the proxy: `me`, and a two-segment path with the route's default version
    // (the 2024-06-11 schedule has English weekday names).
    let me: Value =
        serde_json::from_str(&snippets.run(&app, &["get", &connection_id, "me"]).await).unwrap();
    assert_eq!(me["id"], ALICE, "{me}");
    let schedule: Value = serde_json::from_str(
        &snippets
            .run(&app, &["get", &connection_id, "schedules/default"])
            .await,
    )
    .unwrap();
    assert_eq!(
        schedule["availability"][0]["days"][0], "Monday",
        "{schedule}"
    );
    let refused = snippets
        .fails(&app, &["get", &connection_id, "auth/oauth2/token"])
        .await;
    assert!(refused.contains("invalid_request"), "{refused}");

    // The receiver verified and printed the events of both connections: the first connection
    // was created, then deleted; the second created.
    let mut seen = Vec::new();
    while !seen.iter().any(|e: &Value| {
        e["type"] == "connection.created" && e["data"]["connection_id"] == connection_id.as_str()
    }) {
        let line = next_line(&mut events).await;
        seen.push(serde_json::from_str(&line).unwrap());
    }
    let types: Vec<&str> = seen.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "connection.created",
            "connection.deleted",
            "connection.created"
        ]
    );
    assert!(seen.iter().all(|e| e["data"]["end_user_id"] == "user-1"));

    // The receiver refuses what the broker did not sign, or signed too long ago.
    let body = r#"{"id":"evt_forged","type":"connection.deleted","created_at":"2026-01-01T00:00:00Z","data":{}}"#;
    // The receiver checks `t` against its own (the system's) clock.
    let now = calconnect::Clock::now(&calconnect::SystemClock).unix_timestamp();
    for (signature, want) in [
        (signed("not-the-secret-0123456789abcdef", now, body), 401),
        (signed(WEBHOOK_SECRET, now - 600, body), 401),
        ("v1=abc".to_owned(), 401),
        (signed(WEBHOOK_SECRET, now, body), 204),
    ] {
        let r = app
            .http
            .post(&hook_url)
            .header("content-type", "application/json")
            .header("calconnect-signature", &signature)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), want, "{signature}");
    }

    // The broker's test event reaches the receiver, which verifies it.
    let (status, report) = app
        .post("/api/v1/webhooks/test", serde_json::json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["results"][0]["delivered"], true, "{report}");
    loop {
        let e: Value = serde_json::from_str(&next_line(&mut events).await).unwrap();
        if e["type"] == "webhook.test" {
            assert_eq!(e["id"], report["event_id"]);
            break;
        }
    }
    drop(receiver.stdin.take());
    let _ = receiver.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_snippets_run_the_whole_flow_on_a_generated_client() {
    if !node_ready() {
        return;
    }
    whole_flow(Snippets::node().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_snippets_run_the_whole_flow() {
    if !runs("python3") {
        assert!(
            !calconnect_testkit::require_all(),
            "python3 is missing; CALCONNECT_REQUIRE_ALL=1 requires it"
        );
        eprintln!("python3 missing, skipping");
        return;
    }
    whole_flow(Snippets::python()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redocly_lint_passes_on_the_served_document() {
    if !node_ready() {
        return;
    }
    let app = spawn_app().await;
    let served = app
        .http
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let scratch = tempfile::tempdir().unwrap();
    std::fs::write(scratch.path().join("openapi.json"), served).unwrap();
    let mut lint = node_bin("redocly");
    lint.current_dir(scratch.path())
        .args(["lint", "openapi.json", "--extends", "recommended"])
        // Offline: no telemetry, no update check.
        .env("REDOCLY_TELEMETRY", "off")
        .env("REDOCLY_SUPPRESS_UPDATE_NOTICE", "true")
        .env("NO_COLOR", "1");
    let output = lint.stdin(Stdio::null()).output().await.unwrap();
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // Errors fail the command; warnings are counted after the verdict ("You have 2 warnings").
    assert!(
        output.status.success()
            && report.contains("Your API description is valid")
            && !report.contains("You have "),
        "redocly lint reports problems in /api/openapi.json:\n{report}"
    );
}

/// The fenced blocks of docs/integrate.md that follow a `<!-- snippet: FILE -->` line are the
/// file's text, and every snippet file (but the runners) is quoted.
#[test]
fn docs_quote_the_snippet_files_verbatim() {
    let md = std::fs::read_to_string(docs().join("integrate.md")).unwrap();
    let mut quoted = Vec::new();
    let mut lines = md.lines();
    while let Some(line) = lines.next() {
        let Some(file) = line
            .trim()
            .strip_prefix("<!-- snippet: ")
            .and_then(|r| r.strip_suffix(" -->"))
        else {
            continue;
        };
        let fence = lines.next().unwrap_or_default();
        assert!(
            fence.starts_with("```"),
            "{file}: no code block after the marker"
        );
        let mut block = String::new();
        for l in lines.by_ref() {
            if l == "```" {
                break;
            }
            block.push_str(l);
            block.push('\n');
        }
        let text = std::fs::read_to_string(docs().join("integrate").join(file))
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(
            block, text,
            "docs/integrate.md quotes {file} differently: copy the file into the block"
        );
        quoted.push(file.to_owned());
    }
    for (dir, ext) in [("node", ".ts"), ("python", ".py")] {
        for entry in std::fs::read_dir(docs().join("integrate").join(dir)).unwrap() {
            let name = entry.unwrap().file_name().to_str().unwrap().to_owned();
            if name.ends_with(ext) && !name.starts_with("run.") && !name.ends_with(".d.ts") {
                let file = format!("{dir}/{name}");
                assert!(
                    quoted.contains(&file),
                    "docs/integrate.md does not quote {file}"
                );
            }
        }
    }
    // The README's signature check is the Python snippet's.
    let readme = std::fs::read_to_string(docs().join("../README.md")).unwrap();
    let start = readme
        .find("def verify(")
        .expect("the README shows verify()");
    let end = start + readme[start..].find("```").unwrap();
    let webhook = std::fs::read_to_string(python_dir().join("webhook.py")).unwrap();
    assert!(
        webhook.contains(&readme[start..end]),
        "README.md's verify() differs from docs/integrate/python/webhook.py"
    );
}
