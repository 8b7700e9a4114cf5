//! `spawn_app()`: a sandbox and a broker (SQLite in a temp dir, or a PostgreSQL test database),
//! an API key, and a browser that walks the consent flow.
#![allow(dead_code)]

use calconnect::Clock;
use calconnect::crypto::{KeyId, SealingKey};
use calconnect_broker::config::Env;
use calconnect_broker::{Broker, BrokerConfig};
use calconnect_sandbox::browser::{Decision, SandboxBrowser};
use calconnect_sandbox::{CONFIDENTIAL_CLIENT_ID, CONFIDENTIAL_CLIENT_SECRET, ClientType, Sandbox};
use reqwest::StatusCode;
use secrecy::ExposeSecret;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

pub const ALICE: i64 = 1;
pub const BOB: i64 = 2;
pub const CLIENT_SECRET_TEXT: &str = CONFIDENTIAL_CLIENT_SECRET;
pub const WEBHOOK_SECRET: &str = "test-webhook-secret-0123456789abcdef";

pub struct TestApp {
    pub broker: Broker,
    pub sandbox: Arc<Sandbox>,
    pub api_key: String,
    pub base: String,
    pub http: reqwest::Client,
    _dir: tempfile::TempDir,
}

#[derive(Default)]
pub struct Options {
    pub clock: Option<Arc<dyn Clock>>,
    pub extra_toml: String,
    pub env: Env,
    pub database_url: Option<String>,
    pub sandbox: Option<Arc<Sandbox>>,
    pub listener: Option<std::net::TcpListener>,
    pub webhook: Option<calconnect_broker::webhooks::WorkerConfig>,
    pub public_base_url: Option<String>,
    pub instance_name: Option<String>,
    /// The API-key cache's TTL (default zero: every request asks the database).
    pub api_key_cache_ttl: Option<std::time::Duration>,
}

pub fn key_text() -> String {
    SealingKey::generate(KeyId::new("test").unwrap(), &mut rand::rngs::OsRng)
        .to_text()
        .expose_secret()
        .to_owned()
}

#[allow(clippy::disallowed_methods)] // reason: a test's own HTTP client, playing the app or the browser
pub fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[allow(clippy::disallowed_methods)] // reason: a test's own HTTP client, playing the app or the browser
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub async fn spawn_app() -> TestApp {
    spawn_with(Options::default()).await
}

/// Binds the broker's port first (the redirect URI needs it), starts the sandbox with that
/// redirect URI registered, then the broker on the bound listener.
pub async fn spawn_with(mut o: Options) -> TestApp {
    let listener = o
        .listener
        .take()
        .unwrap_or_else(|| std::net::TcpListener::bind("127.0.0.1:0").unwrap());
    let base = format!("http://{}", listener.local_addr().unwrap());
    let sandbox = match o.sandbox.take() {
        Some(s) => s,
        None => Arc::new(
            Sandbox::builder()
                .redirect_uri(ClientType::Confidential, format!("{base}/oauth/callback"))
                .start()
                .await
                .unwrap(),
        ),
    };
    let dir = tempfile::tempdir().unwrap();
    let database_url = o
        .database_url
        .take()
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("broker.db").display()));
    let public = o.public_base_url.clone().unwrap_or_else(|| base.clone());
    let toml = format!(
        r#"
public_base_url = "{public}"
database_url = "{database_url}"
[provider]
kind = "sandbox"
web_url = "{sandbox}"
[client]
id = "{CONFIDENTIAL_CLIENT_ID}"
scopes = ["PROFILE_READ", "SCHEDULE_READ"]
{extra}
"#,
        sandbox = sandbox.base_url().as_str().trim_end_matches('/'),
        extra = o.extra_toml,
    );
    let mut env = o.env;
    env.entry("CALCONNECT_KEYS".into()).or_insert_with(key_text);
    env.insert(
        "CALCONNECT_CLIENT_SECRET".into(),
        CONFIDENTIAL_CLIENT_SECRET.into(),
    );
    let config = BrokerConfig::from_toml_and_env(&toml, &env).unwrap();
    let mut builder = Broker::builder(config)
        .listener(listener)
        .api_key_cache_ttl(o.api_key_cache_ttl.unwrap_or(std::time::Duration::ZERO));
    if let Some(c) = o.clock {
        builder = builder.clock(c);
    }
    if let Some(n) = o.instance_name {
        builder = builder.instance_name(n);
    }
    if let Some(w) = o.webhook {
        builder = builder.webhook_worker(w);
    }
    let broker = builder.start().await.unwrap();
    let now = calconnect::SystemClock.now().unix_timestamp() * 1000;
    let created =
        calconnect_broker::api_keys::create(broker.db(), "tests", now, &mut rand::rngs::OsRng)
            .await
            .unwrap();
    TestApp {
        broker,
        sandbox,
        api_key: created.key.expose_secret().to_owned(),
        base,
        http: no_redirects(),
        _dir: dir,
    }
}

impl TestApp {
    /// Stops the broker gracefully (keeps the sandbox and the database directory alive).
    pub async fn shutdown(self) -> (Arc<Sandbox>, tempfile::TempDir) {
        self.broker.shutdown().await;
        (self.sandbox, self._dir)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request to the broker's `path` with the app's API key, to finish and send.
    pub fn authed(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .bearer_auth(&self.api_key)
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let r = self
            .authed(reqwest::Method::POST, path)
            .json(&body)
            .send()
            .await
            .unwrap();
        json_of(r).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let r = self
            .authed(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap();
        json_of(r).await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        let r = self
            .authed(reqwest::Method::DELETE, path)
            .send()
            .await
            .unwrap();
        json_of(r).await
    }

    /// A connect session for `user`; returns the connect URL.
    pub async fn session(&self, user: &str, return_to: Option<&str>) -> String {
        let mut body = serde_json::json!({"end_user_id": user});
        if let Some(r) = return_to {
            body["return_to"] = r.into();
        }
        let (status, json) = self.post("/api/v1/connect-sessions", body).await;
        assert_eq!(status, StatusCode::CREATED, "{json}");
        json["connect_url"].as_str().unwrap().to_owned()
    }

    /// Opens the connect URL in `browser` (which keeps the broker's binding cookie), then plays
    /// the person at the sandbox through `SandboxBrowser`: signs in as `user_id`, and answers
    /// the consent page (which must show) with `action` ("allow" or "deny"). Returns the redirect
    /// to the broker's callback, for `browser` to follow.
    pub async fn consent(
        &self,
        browser: &reqwest::Client,
        connect_url: &str,
        user_id: i64,
        action: &str,
    ) -> String {
        let to_cal = browser.get(connect_url).send().await.unwrap();
        assert_eq!(to_cal.status(), StatusCode::SEE_OTHER);
        assert_eq!(to_cal.headers()["cache-control"], "no-store");
        let set_cookie = to_cal.headers()["set-cookie"].to_str().unwrap();
        assert!(
            set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"),
            "{set_cookie}"
        );
        let authorize = location(&to_cal);
        assert!(
            authorize.starts_with(self.sandbox.base_url().as_str()),
            "{authorize}"
        );
        let person = SandboxBrowser::new(self.sandbox.base_url()).unwrap();
        person.sign_in(user_id).await.unwrap();
        let decision: Decision = action.parse().unwrap();
        let callback = person
            .consent(&authorize, decision, None)
            .await
            .unwrap_or_else(|e| panic!("consent page: {e}"));
        assert!(callback.contains("/oauth/callback?"), "{callback}");
        callback
    }

    /// The whole flow; returns the final response of the callback.
    pub async fn connect(
        &self,
        user: &str,
        return_to: Option<&str>,
        cal_user: i64,
    ) -> reqwest::Response {
        let url = self.session(user, return_to).await;
        let b = browser();
        let callback = self.consent(&b, &url, cal_user, "allow").await;
        b.get(callback).send().await.unwrap()
    }

    /// Connects and returns the connection id (via return_to).
    pub async fn connected(&self, user: &str, cal_user: i64) -> String {
        let r = self
            .connect(user, Some("https://app.example/done"), cal_user)
            .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let q = query_of(&location(&r));
        q["connection_id"].clone()
    }
}

pub async fn json_of(r: reqwest::Response) -> (StatusCode, Value) {
    let status = r.status();
    let text = r.text().await.unwrap();
    let json =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
    (status, json)
}

pub fn location(r: &reqwest::Response) -> String {
    r.headers()["location"].to_str().unwrap().to_owned()
}

pub fn query_of(url: &str) -> HashMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

/// The `data-outcome` of a broker page.
pub async fn outcome(r: reqwest::Response) -> (StatusCode, String) {
    let status = r.status();
    let html = r.text().await.unwrap();
    let start = html
        .find("data-outcome=\"")
        .unwrap_or_else(|| panic!("no outcome in {html}"))
        + 14;
    let end = start + html[start..].find('"').unwrap();
    (status, html[start..end].to_owned())
}
