//! Secrets (client secret, API keys, tokens, codes, webhook secret) never reach logs, errors,
//! `Debug` output or metrics.

use crate::helpers::*;
use std::io::Write;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// current_thread: every task (broker, keeper, worker) runs on this thread, under this subscriber.
#[tokio::test(flavor = "current_thread")]
async fn no_secret_in_logs_debug_or_metrics() {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "trace,calconnect_sandbox=off,hyper=off,h2=off,reqwest=off,sqlx=off",
        ))
        .with_writer(move || writer.clone())
        .json()
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let mut env = calconnect_broker::config::Env::new();
    env.insert(
        "CALCONNECT_WEBHOOK_URLS".into(),
        "http://127.0.0.1:9/unreachable".into(),
    );
    env.insert("CALCONNECT_WEBHOOK_SECRET".into(), WEBHOOK_SECRET.into());
    let app = spawn_with(Options {
        env,
        ..Options::default()
    })
    .await;
    let id = app.connected("user-1", ALICE).await;
    let (_, t) = app
        .post(
            &format!("/api/v1/connections/{id}/access-token"),
            serde_json::json!({}),
        )
        .await;
    let access = t["access_token"].as_str().unwrap().to_owned();
    app.sandbox.advance_clock(time::Duration::minutes(31));
    let r = app
        .http
        .get(app.url(&format!("/api/v1/connections/{id}/proxy/me")))
        .bearer_auth(&app.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Failing paths too.
    let _ = app
        .http
        .get(app.url("/api/v1/connections?end_user_id=x"))
        .bearer_auth("cck_wrong-key")
        .send()
        .await;
    let _ = no_redirects()
        .get(app.url("/oauth/callback?code=leaked-code&state=leaked-state"))
        .send()
        .await;
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let debug = format!("{:?} {:?}", app.broker, app.broker.state());

    let mut secrets = vec![
        access,
        app.api_key.clone(),
        CLIENT_SECRET_TEXT.to_owned(),
        WEBHOOK_SECRET.to_owned(),
        "cck_wrong-key".to_owned(),
        "leaked-code".to_owned(),
        "leaked-state".to_owned(),
    ];
    for t in app.sandbox.issued_tokens() {
        secrets.push(t.access_token);
        secrets.push(t.refresh_token);
    }
    for c in app.sandbox.issued_codes() {
        secrets.push(c.code);
    }
    let logs = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("broker listening"), "logs were captured");
    for s in &secrets {
        assert!(!logs.contains(s.as_str()), "secret in logs: {s}");
        assert!(!metrics.contains(s.as_str()), "secret in metrics: {s}");
        assert!(!debug.contains(s.as_str()), "secret in Debug: {s}");
    }
}
