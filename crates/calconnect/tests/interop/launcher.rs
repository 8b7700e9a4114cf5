//! Starts `server.mjs` (npm `oidc-provider`, docs/interop.md) on a free loopback port and kills
//! it when dropped, and plays the browser through its auto-answered login and consent. Shared by the library's interop tests (`tests/it/interop.rs`) and the command
//! line's (`calconnect-cli/tests/custom`), which include this file by path.
//!
//! Without Node.js or `npm ci` output it says why and returns `None` (the test then skips),
//! unless `CALCONNECT_REQUIRE_ALL=1` (CI), which makes that a failure.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

/// A running `server.mjs`.
pub struct OidcProvider {
    /// `http://127.0.0.1:<port>`, also the issuer identifier.
    pub issuer: String,
    _child: Child,
}

/// The folder of `server.mjs`, from the manifest folder of the crate whose test runs.
pub fn interop_dir(manifest_dir: &str) -> PathBuf {
    let here = Path::new(manifest_dir);
    let own = here.join("tests/interop");
    if own.join("server.mjs").is_file() {
        own
    } else {
        here.join("../calconnect/tests/interop")
    }
}

/// Starts the server in `dir` with `env` (e.g. `REDIRECT_URIS`, `ACCESS_TOKEN_TTL`), or
/// returns `None` (after saying why) when it cannot run here.
pub async fn start_provider_in(dir: &Path, env: &[(&str, String)]) -> Option<OidcProvider> {
    let node_ok = Command::new("node")
        .arg("--version")
        .output()
        .await
        .is_ok_and(|o| o.status.success());
    if !node_ok || !dir.join("node_modules/oidc-provider").is_dir() {
        assert!(
            std::env::var("CALCONNECT_REQUIRE_ALL").as_deref() != Ok("1"),
            "oidc-provider not available (need `node` and `npm ci` in {}), and CALCONNECT_REQUIRE_ALL=1",
            dir.display()
        );
        eprintln!("oidc-provider not available, skipping");
        return None;
    }
    let mut command = Command::new("node");
    command
        .arg("server.mjs")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("spawn node");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let port = loop {
        match lines.next_line().await.unwrap() {
            Some(line) => {
                if let Some(port) = line.strip_prefix("READY port=") {
                    break port.trim().to_owned();
                }
            }
            None => {
                let mut err = String::new();
                child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .await
                    .unwrap();
                panic!("oidc-provider exited before it was ready: {err}");
            }
        }
    };
    // Keep draining both pipes: a closed pipe makes node die of EPIPE on its next write.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let mut stderr = child.stderr.take().unwrap();
    tokio::spawn(async move {
        let mut sink = Vec::new();
        let _ = stderr.read_to_end(&mut sink).await;
    });
    Some(OidcProvider {
        issuer: format!("http://127.0.0.1:{port}"),
        _child: child,
    })
}

/// Plays the browser: follows the 303s (login and consent are auto-answered) with a cookie jar
/// until the provider redirects to a URL starting with `redirect_uri`; returns that URL.
#[allow(clippy::disallowed_methods)] // reason: a test's own HTTP client, playing the browser
pub async fn browse(authorize_url: &str, redirect_uri: &str) -> String {
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut url = url::Url::parse(authorize_url).unwrap();
    for _ in 0..12 {
        let response = browser.get(url.clone()).send().await.unwrap();
        let status = response.status();
        let location = response
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned());
        let Some(location) = location else {
            panic!(
                "no redirect from {url} ({status}): {}",
                response.text().await.unwrap_or_default()
            );
        };
        assert!(status.is_redirection(), "{status}");
        if location.starts_with(redirect_uri) {
            return location;
        }
        url = url.join(&location).unwrap();
    }
    panic!("too many redirects");
}
