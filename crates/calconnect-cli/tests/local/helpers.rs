//! Sandbox, home folder, child processes and a browser with a cookie jar.

use calconnect_sandbox::browser::{Decision, SandboxBrowser};
use calconnect_sandbox::{ClientType, Sandbox};
use std::io::{BufRead as _, BufReader, Read as _};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const NO_TOKEN_HINT: &str = "eyJ";

/// A free loopback port (the CLI binds it; the sandbox registers its redirect URI).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A sandbox whose public client accepts `http://127.0.0.1:<port>/callback`.
pub async fn sandbox(port: u16, access_ttl_secs: i64) -> Sandbox {
    Sandbox::builder()
        .redirect_uri(
            ClientType::Public,
            format!("http://127.0.0.1:{port}/callback"),
        )
        .access_token_ttl(time::Duration::seconds(access_ttl_secs))
        .start()
        .await
        .unwrap()
}

/// The CLI runs on the wall clock, and the keeper never refreshes a token it just received (its
/// margin is at most a quarter of the token's lifetime, docs/architecture.md §3.5). For tests in
/// which every `token` must refresh: log in against `sandbox(port, 2)`, then call this: later
/// tokens expire as they are issued, and the login's 2-second token is waited out.
pub async fn expire_tokens_from_now_on(sb: &Sandbox) {
    sb.update_settings(|s| s.access_token_ttl = time::Duration::ZERO);
    tokio::time::sleep(Duration::from_secs(2)).await;
}

pub fn base(sb: &Sandbox) -> String {
    sb.base_url().as_str().trim_end_matches('/').to_owned()
}

pub fn calconnect(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_calconnect"));
    cmd.env("CALCONNECT_HOME", home)
        .env_remove("CALCONNECT_CLIENT_ID")
        .env_remove("CALCONNECT_CLIENT_SECRET")
        .env_remove("CALCONNECT_SANDBOX_URL")
        .env_remove("CALCONNECT_KEYS")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    cmd
}

/// A finished command.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// The error line, asserting it is exactly one line without a panic or backtrace.
    pub fn one_line_error(&self) -> &str {
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        let last = *lines
            .last()
            .unwrap_or_else(|| panic!("no stderr: {self:?}"));
        assert!(last.starts_with("error: "), "{self:?}");
        assert!(!self.stderr.contains("panicked"), "{self:?}");
        assert!(!self.stderr.contains("backtrace"), "{self:?}");
        // No library log lines around the explanation.
        assert!(
            !self.stderr.contains("WARN") && !self.stderr.contains("INFO"),
            "{self:?}"
        );
        last
    }
}

pub async fn run(home: &Path, args: &[&str]) -> Out {
    let mut cmd = calconnect(home);
    cmd.args(args);
    tokio::task::spawn_blocking(move || {
        let out = cmd.output().unwrap();
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    })
    .await
    .unwrap()
}

/// A `calconnect login` in progress.
pub struct Login {
    child: Option<Child>,
    stderr_lines: mpsc::Receiver<String>,
    stderr_seen: String,
}

impl Drop for Login {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Login {
    pub fn spawn(home: &Path, args: &[&str]) -> Self {
        Self::spawn_with(home, args, &[], None)
    }

    /// `calconnect login --profile sandbox` against `sb`, its callback on `port`, no browser.
    pub fn with_sandbox(home: &Path, sb: &Sandbox, port: u16) -> Self {
        let base = base(sb);
        let port = port.to_string();
        let args = [
            "--profile",
            "sandbox",
            "--sandbox-url",
            &base,
            "--port",
            &port,
            "--no-browser",
        ];
        Self::spawn(home, &args)
    }

    /// [`Login::spawn`] with environment variables and, optionally, text on standard input.
    pub fn spawn_with(
        home: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        stdin: Option<&str>,
    ) -> Self {
        let mut command = calconnect(home);
        command
            .arg("login")
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if stdin.is_some() {
            command.stdin(Stdio::piped());
        }
        let mut child = command.spawn().unwrap();
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            use std::io::Write as _;
            pipe.write_all(text.as_bytes()).unwrap();
        }
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child: Some(child),
            stderr_lines: rx,
            stderr_seen: String::new(),
        }
    }

    /// The authorize URL the CLI printed (on its own indented line).
    pub fn authorize_url(&mut self) -> String {
        loop {
            let line = self
                .stderr_lines
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| {
                    panic!("no authorize URL; stderr so far:\n{}", self.stderr_seen)
                });
            self.stderr_seen.push_str(&line);
            self.stderr_seen.push('\n');
            if let Some(url) = line.trim_start().strip_prefix("http") {
                return format!("http{url}");
            }
        }
    }

    /// Waits for the process to end.
    pub async fn finish(mut self) -> Out {
        let mut child = self.child.take().unwrap();
        let rx = std::mem::replace(&mut self.stderr_lines, mpsc::channel().1);
        let mut seen = std::mem::take(&mut self.stderr_seen);
        tokio::task::spawn_blocking(move || {
            let mut stdout = String::new();
            child
                .stdout
                .take()
                .unwrap()
                .read_to_string(&mut stdout)
                .unwrap();
            let status = child.wait().unwrap();
            while let Ok(line) = rx.recv_timeout(Duration::from_secs(5)) {
                seen.push_str(&line);
                seen.push('\n');
            }
            Out {
                code: status.code().unwrap_or(-1),
                stdout,
                stderr: seen,
            }
        })
        .await
        .unwrap()
    }
}

/// Plays the user through `SandboxBrowser`: signs in as alice, answers the consent page (which
/// must show) with `action` (allow/deny), returns the redirect to the CLI's loopback listener.
pub async fn consent(sb: &Sandbox, authorize_url: &str, action: &str) -> String {
    let person = SandboxBrowser::new(sb.base_url()).unwrap();
    person.sign_in(1).await.unwrap();
    let decision: Decision = action.parse().unwrap();
    person
        .consent(authorize_url, decision, None)
        .await
        .unwrap_or_else(|e| panic!("consent page expected: {e}"))
}

/// Follows the redirect to the CLI like the browser would; returns the page.
#[allow(clippy::disallowed_methods)] // reason: a test's own HTTP client, playing the browser
pub async fn follow(redirect: &str) -> (u16, String) {
    let resp = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(redirect)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// A full `calconnect login --profile sandbox` as alice; returns the CLI's output.
pub async fn login(home: &Path, sb: &Sandbox, port: u16) -> Out {
    login_with_scopes(home, sb, port, "PROFILE_READ,SCHEDULE_READ").await
}

/// [`login`] requesting `scopes`.
pub async fn login_with_scopes(home: &Path, sb: &Sandbox, port: u16, scopes: &str) -> Out {
    let base = base(sb);
    let port_text = port.to_string();
    let mut login = Login::spawn(
        home,
        &[
            "--profile",
            "sandbox",
            "--sandbox-url",
            &base,
            "--port",
            &port_text,
            "--no-browser",
            "--timeout",
            "60s",
            "--scopes",
            scopes,
        ],
    );
    let url = login.authorize_url();
    let redirect = consent(sb, &url, "allow").await;
    assert!(
        redirect.starts_with(&format!("http://127.0.0.1:{port}/callback?")),
        "{redirect}"
    );
    let (status, page) = follow(&redirect).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("Logged in as alice") && page.contains("You can close this tab"),
        "{page}"
    );
    login.finish().await
}
