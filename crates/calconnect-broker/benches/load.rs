//! Load benchmark on loopback with `wrk` (apt `wrk`): requests per second and p50/p99 latency of
//! the access-token endpoint and of proxying `/v2/me`, against the same `/v2/me` sent straight
//! to the sandbox. The target: the proxy keeps at least 70 % of the direct throughput.
//!
//! `cargo bench -p calconnect-broker --bench load` (optional: `LOAD_SECONDS`, `LOAD_CONNECTIONS`).
//!
//! `cargo bench -p calconnect-broker --bench load -- --serve` starts the same sandbox and broker,
//! connects the user, prints `KEY=value` lines (`BROKER_URL`, `SANDBOX_URL`, `API_KEY`,
//! `CONNECTION_ID`, `ACCESS_TOKEN`, then `READY`) and serves until SIGINT or SIGTERM. Logs go to
//! stderr as `calconnect serve` writes them (`RUST_LOG`, default `info`).
//! `scripts/bench-proxy` and `scripts/soak-proxy` drive it (docs in `BENCHMARKS.md`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use calconnect::Clock as _;
use calconnect::crypto::{KeyId, SealingKey};
use calconnect_broker::{Broker, BrokerConfig};
use calconnect_sandbox::browser::SandboxBrowser;
use calconnect_sandbox::{CONFIDENTIAL_CLIENT_ID, CONFIDENTIAL_CLIENT_SECRET, ClientType, Sandbox};
use secrecy::ExposeSecret as _;
use std::process::Command;

struct Result {
    name: &'static str,
    rps: f64,
    p50: String,
    p99: String,
    errors: String,
}

fn wrk(
    name: &'static str,
    url: &str,
    method: &str,
    token: &str,
    seconds: u32,
    conns: u32,
) -> Result {
    let script = std::env::temp_dir().join(format!("calconnect-load-{}.lua", std::process::id()));
    std::fs::write(
        &script,
        format!("wrk.method = \"{method}\"\nwrk.headers[\"Authorization\"] = \"Bearer {token}\"\n"),
    )
    .unwrap();
    let out = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{conns}"),
            &format!("-d{seconds}s"),
            "--latency",
            "-s",
        ])
        .arg(&script)
        .arg(url)
        .output()
        .expect("wrk is installed (apt-get install -y wrk)");
    let _ = std::fs::remove_file(&script);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |prefix: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .map(|l| l.trim_start()[prefix.len()..].trim().to_owned())
            .unwrap_or_default()
    };
    Result {
        name,
        rps: field("Requests/sec:").parse().unwrap_or(0.0),
        p50: field("50%"),
        p99: field("99%"),
        errors: field("Non-2xx or 3xx responses:"),
    }
}

/// A sandbox and a broker in this process, with one user connected through the real flow.
struct Setup {
    sandbox: Sandbox,
    broker: calconnect_broker::Broker,
    _dir: tempfile::TempDir,
    base: String,
    api_key: String,
    id: String,
    access: String,
}

#[allow(clippy::disallowed_methods)] // reason: a test's own HTTP client, playing the app or the browser
async fn setup() -> Setup {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let sandbox = Sandbox::builder()
        .rate_limit(u32::MAX, time::Duration::minutes(1))
        .redirect_uri(ClientType::Confidential, format!("{base}/oauth/callback"))
        .start()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "public_base_url = \"{base}\"\ndatabase_url = \"sqlite://{}\"\n[provider]\nkind = \"sandbox\"\nweb_url = \"{}\"\n[client]\nid = \"{CONFIDENTIAL_CLIENT_ID}\"\nscopes = [\"PROFILE_READ\"]\n",
        dir.path().join("load.db").display(),
        sandbox.base_url().as_str().trim_end_matches('/'),
    );
    let key = SealingKey::generate(KeyId::new("load").unwrap(), &mut rand::rngs::OsRng);
    let env = [
        (
            "CALCONNECT_KEYS".to_owned(),
            key.to_text().expose_secret().to_owned(),
        ),
        (
            "CALCONNECT_CLIENT_SECRET".to_owned(),
            CONFIDENTIAL_CLIENT_SECRET.to_owned(),
        ),
    ]
    .into_iter()
    .collect();
    let config = BrokerConfig::from_toml_and_env(&toml, &env).unwrap();
    let broker = Broker::builder(config)
        .listener(listener)
        .start()
        .await
        .unwrap();
    let now = calconnect::SystemClock.now().unix_timestamp() * 1000;
    let api_key =
        calconnect_broker::api_keys::create(broker.db(), "load", now, &mut rand::rngs::OsRng)
            .await
            .unwrap()
            .key
            .expose_secret()
            .to_owned();

    // Connect alice through the real flow.
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let session: serde_json::Value = http
        .post(format!("{base}/api/v1/connect-sessions"))
        .bearer_auth(&api_key)
        .json(&serde_json::json!({"end_user_id": "load", "return_to": "https://app.example/done"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let to_cal = http
        .get(session["connect_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let person = SandboxBrowser::new(sandbox.base_url()).unwrap();
    let callback = person
        .sign_in_and_allow(1, to_cal.headers()["location"].to_str().unwrap())
        .await
        .unwrap();
    let done = http.get(callback).send().await.unwrap();
    let back = url::Url::parse(done.headers()["location"].to_str().unwrap()).unwrap();
    let id = back
        .query_pairs()
        .find(|(k, _)| k == "connection_id")
        .unwrap()
        .1
        .into_owned();
    let token: serde_json::Value = http
        .post(format!("{base}/api/v1/connections/{id}/access-token"))
        .bearer_auth(&api_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = token["access_token"].as_str().unwrap().to_owned();
    Setup {
        sandbox,
        broker,
        _dir: dir,
        base,
        api_key,
        id,
        access,
    }
}

/// `--serve`: print what a script needs, then serve until SIGINT or SIGTERM.
async fn serve() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let s = setup().await;
    println!("BROKER_URL={}", s.base);
    println!(
        "SANDBOX_URL={}",
        s.sandbox.base_url().as_str().trim_end_matches('/')
    );
    println!("API_KEY={}", s.api_key);
    println!("CONNECTION_ID={}", s.id);
    println!("ACCESS_TOKEN={}", s.access);
    println!("READY");
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    s.broker.shutdown().await;
    s.sandbox.shutdown().await;
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    if std::env::args().any(|a| a == "--serve") {
        serve().await;
        return;
    }
    let seconds: u32 = std::env::var("LOAD_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let conns: u32 = std::env::var("LOAD_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    let Setup {
        sandbox,
        broker,
        _dir,
        base,
        api_key,
        id,
        access,
    } = setup().await;

    let sandbox_me = sandbox.api_url().join("v2/me").unwrap().to_string();
    let runs = tokio::task::spawn_blocking(move || {
        vec![
            wrk(
                "direct GET /v2/me (sandbox)",
                &sandbox_me,
                "GET",
                &access,
                seconds,
                conns,
            ),
            wrk(
                "proxy GET /v2/me (broker)",
                &format!("{base}/api/v1/connections/{id}/proxy/me"),
                "GET",
                &api_key,
                seconds,
                conns,
            ),
            wrk(
                "POST access-token (broker)",
                &format!("{base}/api/v1/connections/{id}/access-token"),
                "POST",
                &api_key,
                seconds,
                conns,
            ),
        ]
    })
    .await
    .unwrap();
    println!("\nload: wrk -t2 -c{conns} -d{seconds}s on loopback\n");
    println!(
        "{:<32} {:>12} {:>10} {:>10}  non-2xx",
        "request", "req/s", "p50", "p99"
    );
    for r in &runs {
        println!(
            "{:<32} {:>12.0} {:>10} {:>10}  {}",
            r.name,
            r.rps,
            r.p50,
            r.p99,
            if r.errors.is_empty() { "0" } else { &r.errors }
        );
    }
    if runs[0].rps > 0.0 {
        println!(
            "\nproxy / direct throughput: {:.0} % (target >= 70 %)",
            100.0 * runs[1].rps / runs[0].rps
        );
    }
    broker.shutdown().await;
}
