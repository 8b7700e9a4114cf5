//! A token keeper in its own OS process, for the multi-process tests (storm across processes,
//! SIGKILL at each refresh step). Talks over stdin/stdout:
//!
//! ```text
//! keeper-child <storm|crash> <database> <sandbox-url> <connection-id> [callers | step]
//!   key: CALCONNECT_CHILD_KEY (a sealing key as text)
//!   database: a postgres:// URL or a SQLite file path
//! storm: prints READY, waits for a line GO, runs <callers> concurrent access_token calls,
//!        prints RESULT ok=<n> distinct=<k> digest=<sha256 of the token> and ERROR lines
//! crash: prints READY, runs one access_token; at refresh step <step> (before_call,
//!        after_response, after_write) prints AT <step> and blocks until killed
//! ```
//!
//! Tokens never reach stdout: only their SHA-256 digests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // reason: a test helper binary; failing loudly is right

use async_trait::async_trait;
use calconnect::crypto::{Keyring, SealingKey};
use calconnect::store::{ConnectionId, ConnectionStore};
use calconnect::{
    Clock, SystemClock, keeper::KeeperConfig, keeper::RefreshHooks, keeper::RefreshStep,
    keeper::TokenKeeper,
};
use calconnect_testkit::keeper::{flow, http};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::sync::Arc;
use std::time::Duration;

/// Prints `AT <step>` at the chosen step and never returns.
#[derive(Debug)]
struct BlockAt(RefreshStep);

#[async_trait]
impl RefreshHooks for BlockAt {
    async fn at(&self, step: RefreshStep, _connection: ConnectionId) {
        if step == self.0 {
            say(&format!("AT {}", step.as_str()));
            std::future::pending::<()>().await;
        }
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").unwrap();
    out.flush().unwrap();
}

fn step(name: &str) -> RefreshStep {
    match name {
        "before_call" => RefreshStep::BeforeCall,
        "after_response" => RefreshStep::AfterResponse,
        "after_write" => RefreshStep::AfterWrite,
        other => panic!("unknown step {other}"),
    }
}

async fn open_store(database: &str, clock: Arc<dyn Clock>) -> Arc<dyn ConnectionStore> {
    if database.starts_with("postgres://") || database.starts_with("postgresql://") {
        let url = SecretString::from(database);
        Arc::new(
            calconnect_sql::PostgresStore::connect(&url, clock)
                .await
                .unwrap(),
        )
    } else {
        Arc::new(
            calconnect_sql::SqliteStore::open(std::path::Path::new(database), clock)
                .await
                .unwrap(),
        )
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, mode, database, sandbox_url, id, rest @ ..] = args.as_slice() else {
        panic!(
            "usage: keeper-child <storm|crash> <database> <sandbox-url> <connection-id> [callers|step]"
        );
    };
    let id = ConnectionId::from_uuid(id.parse().unwrap());
    let key = SecretString::from(std::env::var("CALCONNECT_CHILD_KEY").unwrap());
    let keyring =
        Arc::new(Keyring::new(vec![SealingKey::parse(key.expose_secret()).unwrap()]).unwrap());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let store = open_store(database, clock.clone()).await;
    let flow = Arc::new(flow(
        sandbox_url,
        http(Duration::from_secs(10)),
        clock.clone(),
    ));
    let mut config = KeeperConfig::default();
    if mode == "crash" {
        config = config
            .to_builder()
            .hooks(Arc::new(BlockAt(step(&rest[0]))))
            .build()
            .unwrap();
    }
    let keeper = TokenKeeper::new(store, keyring, flow, clock, config);
    say("READY");
    match mode.as_str() {
        "storm" => {
            let callers: usize = rest[0].parse().unwrap();
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line).unwrap();
            assert_eq!(line.trim(), "GO");
            let tasks: Vec<_> = (0..callers)
                .map(|_| {
                    let keeper = keeper.clone();
                    tokio::spawn(async move { keeper.access_token(id).await })
                })
                .collect();
            let mut digests = HashSet::new();
            let mut ok = 0;
            for task in tasks {
                match task.await.unwrap() {
                    Ok(fresh) => {
                        ok += 1;
                        digests.insert(hex::encode(Sha256::digest(
                            fresh.access_token.expose_secret().as_bytes(),
                        )));
                    }
                    Err(e) => say(&format!("ERROR {e}")),
                }
            }
            let digest = digests.iter().next().cloned().unwrap_or_default();
            say(&format!(
                "RESULT ok={ok} distinct={} digest={digest}",
                digests.len()
            ));
        }
        "crash" => match keeper.access_token(id).await {
            Ok(_) => say("DONE"),
            Err(e) => say(&format!("ERROR {e}")),
        },
        other => panic!("unknown mode {other}"),
    }
}
