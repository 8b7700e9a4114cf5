//! Metrics and traces name connections and outcomes, never tokens.

use super::{config, env};
use calconnect::keeper::KeeperError;
use calconnect_sandbox::FaultKind;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use std::io::Write;
use std::sync::{Arc, Mutex};
use time::Duration;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn no_token_in_metrics_or_traces() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::FULL)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let secrets = metrics::with_local_recorder(&recorder, || {
        tracing::subscriber::with_default(subscriber, || {
            tracing::callsite::rebuild_interest_cache();
            runtime.block_on(async {
                let env = env().await;
                let id = env.connect(1).await;
                let keeper = env.parts.keeper(config());
                let (first_access, first_refresh) = env.parts.open_tokens(id).await;
                env.advance(Duration::minutes(31));
                keeper.access_token(id).await.unwrap();
                env.sandbox
                    .inject_fault(FaultKind::ServerError { status: 503 }, 1)
                    .unwrap();
                assert!(keeper.refresh_now(id).await.is_err());
                env.advance(Duration::minutes(31));
                env.sandbox.revoke_grant(
                    calconnect_sandbox::CONFIDENTIAL_CLIENT_ID,
                    calconnect_sandbox::Owner::User(1),
                );
                let (second_access, second_refresh) = env.parts.open_tokens(id).await;
                let err = keeper.access_token(id).await.unwrap_err();
                assert!(matches!(err, KeeperError::NeedsReauth { .. }), "{err}");
                assert!(!format!("{err:?} {err}").contains(second_access.expose_secret()));
                vec![
                    first_access.expose_secret().to_owned(),
                    first_refresh.unwrap().expose_secret().to_owned(),
                    second_access.expose_secret().to_owned(),
                    second_refresh.unwrap().expose_secret().to_owned(),
                ]
            })
        })
    });

    let snapshot = snapshotter.snapshot().into_vec();
    let mut names = Vec::new();
    for (key, _, _, value) in &snapshot {
        let key = key.key();
        names.push(key.name().to_owned());
        for label in key.labels() {
            for secret in &secrets {
                assert!(
                    !label.value().contains(secret.as_str()),
                    "token in a metric label"
                );
                // A JWT's first segment is enough to spot one.
                assert!(!label.value().starts_with("eyJ"), "token-like metric label");
            }
        }
        if key.name() == "calconnect_keeper_refreshes_total" {
            assert!(matches!(value, DebugValue::Counter(n) if *n > 0));
        }
    }
    for expected in [
        "calconnect_keeper_refreshes_total",
        "calconnect_keeper_refresh_duration_seconds",
        "calconnect_keeper_token_calls_total",
        "calconnect_keeper_status_changes_total",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing: {names:?}"
        );
    }

    let traces = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(traces.contains("calconnect.keeper.refresh"), "{traces}");
    assert!(traces.contains("outcome"), "{traces}");
    for secret in &secrets {
        assert!(
            !traces.contains(secret.as_str()),
            "a token reached the traces"
        );
        // Nor any of its three JWT segments' signatures.
        let signature = secret.rsplit('.').next().unwrap();
        assert!(!traces.contains(signature));
    }
}
