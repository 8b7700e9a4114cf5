//! Two `calconnect serve` processes on one PostgreSQL database, behind a (pretend) load balancer:
//! a connect flow started on one finishes on the other, and a refresh storm through both makes
//! exactly one refresh at Cal.com (the sandbox's counters prove it), with no `invalid_grant`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // reason: tests fail loudly

use calconnect_sandbox::browser::SandboxBrowser;
use calconnect_sandbox::{CONFIDENTIAL_CLIENT_ID, CONFIDENTIAL_CLIENT_SECRET, ClientType, Sandbox};
use calconnect_testkit::postgres::TestDatabase;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

/// The load balancer's address: the public base URL both instances share. Nothing listens
/// there; the test plays the balancer by sending each request to the instance it chooses.
const PUBLIC: &str = "http://127.0.0.1:9";

struct Instance {
    child: Child,
    url: String,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn calconnect() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_calconnect"));
    c.env("CALCONNECT_CLIENT_SECRET", CONFIDENTIAL_CLIENT_SECRET);
    c
}

fn serve(config: &std::path::Path) -> Instance {
    let mut child = calconnect()
        .args(["serve", "--config"])
        .arg(config)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let url = loop {
        let line = lines.next().expect("serve printed its address").unwrap();
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.trim().trim_end_matches('/').to_owned();
        }
    };
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
    Instance { child, url }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[allow(clippy::disallowed_methods)] // reason: a test's own HTTP client, playing the app or the browser
async fn two_serve_processes_share_flows_refresh_once_and_see_each_others_disconnect() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    // The connection's first access token lives 2 seconds, and the storm below starts once it
    // has expired (the processes run on the wall clock, and the keepers never refresh a token
    // they just received, docs/architecture.md §3.5), so the first access-token request
    // refreshes; by then the sandbox is back to 30-minute tokens.
    let sandbox = Arc::new(
        Sandbox::builder()
            .redirect_uri(ClientType::Confidential, format!("{PUBLIC}/oauth/callback"))
            .access_token_ttl(time::Duration::seconds(2))
            .start()
            .await
            .unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    assert!(
        calconnect()
            .args(["keys", "generate", "--out"])
            .arg(&keys)
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
    );
    let config = dir.path().join("broker.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\npublic_base_url = \"{PUBLIC}\"\ndatabase_url = \"{db}\"\n\
             [provider]\nkind = \"sandbox\"\nweb_url = \"{sandbox}\"\n\
             [client]\nid = \"{CONFIDENTIAL_CLIENT_ID}\"\nscopes = [\"PROFILE_READ\", \"SCHEDULE_READ\"]\n\
             [keys]\nfile = \"{keys}\"\n",
            db = db.url(),
            sandbox = sandbox.base_url().as_str().trim_end_matches('/'),
            keys = keys.display(),
        ),
    )
    .unwrap();
    let created = calconnect()
        .args(["api-keys", "create", "--name", "lb-test", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let key = String::from_utf8(created.stdout).unwrap().trim().to_owned();

    let a = serve(&config);
    let b = serve(&config);
    // Each start checked the client with a made-up refresh token (refused as
    // invalid_refresh_token); the counts below are about the flows and the storm only.
    assert_eq!(
        sandbox.token_calls("refresh_token", "invalid_grant:invalid_refresh_token"),
        2
    );
    sandbox.reset_token_calls();

    // The flow starts on A ...
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let session: serde_json::Value = http
        .post(format!("{}/api/v1/connect-sessions", a.url))
        .bearer_auth(&key)
        .json(&serde_json::json!({"end_user_id": "u1"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let connect_url = session["connect_url"]
        .as_str()
        .unwrap()
        .replacen(PUBLIC, &a.url, 1);
    let to_cal = http.get(&connect_url).send().await.unwrap();
    assert_eq!(to_cal.status(), 303);
    let authorize = to_cal.headers()["location"].to_str().unwrap().to_owned();
    let person = SandboxBrowser::new(sandbox.base_url()).unwrap();
    let callback = person.sign_in_and_allow(1, &authorize).await.unwrap();
    // ... and the balancer sends the callback to B.
    let callback = callback.replacen(PUBLIC, &b.url, 1);
    let done = http.get(&callback).send().await.unwrap();
    let status = done.status();
    assert_eq!(status, 200, "{}", done.text().await.unwrap_or_default());

    let list: serde_json::Value = http
        .get(format!("{}/api/v1/connections?end_user_id=u1", b.url))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = list["connections"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(sandbox.token_calls("authorization_code", "ok"), 1);

    // From now on Cal.com mints the usual 30-minute tokens again.
    sandbox.update_settings(|s| s.access_token_ttl = time::Duration::seconds(1800));
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    // The storm: 40 access-token requests, half to each process, all at once.
    let requests = (0..40).map(|i| {
        let base = if i % 2 == 0 { &a.url } else { &b.url };
        let url = format!("{base}/api/v1/connections/{id}/access-token");
        let (http, key) = (http.clone(), key.clone());
        tokio::spawn(async move {
            let r = http.post(url).bearer_auth(key).send().await.unwrap();
            assert_eq!(r.status(), 200);
            let body: serde_json::Value = r.json().await.unwrap();
            body["access_token"].as_str().unwrap().to_owned()
        })
    });
    let tokens: Vec<String> = futures::future::join_all(requests)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        sandbox.token_calls("refresh_token", "ok"),
        1,
        "{:?}",
        sandbox.token_call_counts()
    );
    let counts = format!("{:?}", sandbox.token_call_counts());
    assert!(!counts.contains("invalid_grant"), "{counts}");
    assert!(
        tokens.iter().all(|t| t == &tokens[0]),
        "everyone got the refreshed token"
    );

    // B has the token cached; the app disconnects the user on A. Within a second B knows:
    // its access-token endpoint answers 404 and its proxy refuses the call.
    let proxied = http
        .get(format!("{}/api/v1/connections/{id}/proxy/me", b.url))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(proxied.status(), 200);
    let deleted = http
        .delete(format!("{}/api/v1/connections/{id}", a.url))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    let after = loop {
        let r = http
            .post(format!("{}/api/v1/connections/{id}/access-token", b.url))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        if r.status() == 404 || std::time::Instant::now() > deadline {
            break r.status();
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(after, 404, "B still hands out the disconnected token");
    let proxied = http
        .get(format!("{}/api/v1/connections/{id}/proxy/me", b.url))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(proxied.status(), 404);
    drop((a, b));
}
