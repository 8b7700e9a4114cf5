//! Storms across keepers that share only a database: two OS processes on one PostgreSQL
//! database, and two keepers (two connection pools) on one SQLite file. The sandbox runs here;
//! its counters prove there was exactly one refresh.

use calconnect::crypto::Keyring;
use calconnect::store::{ConnectionId, ConnectionStore};
use calconnect::{Clock, SystemClock};
use calconnect_sandbox::Sandbox;
use calconnect_testkit::fixtures;
use calconnect_testkit::keeper::{self, KeeperParts, invalid_grants, refreshes, usable};
use calconnect_testkit::postgres::TestDatabase;
use futures::future::join_all;
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashSet;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration as StdDuration;
use time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// A real-clock sandbox and a store both this process and children can open.
pub struct SharedEnv {
    pub sandbox: Sandbox,
    pub parts: KeeperParts,
    pub key: SecretString,
    pub database: String,
    _db: Option<TestDatabase>,
    _dir: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for SharedEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedEnv")
    }
}

async fn shared_env(
    store: Arc<dyn ConnectionStore>,
    database: String,
    db: Option<TestDatabase>,
    dir: Option<tempfile::TempDir>,
    clock: Arc<dyn Clock>,
) -> SharedEnv {
    let sandbox = keeper::sandbox(None).await;
    let key = fixtures::key("k1");
    let text = key.to_text();
    let keyring = Arc::new(Keyring::new(vec![key]).unwrap());
    let flow = Arc::new(keeper::flow(
        sandbox.base_url().as_str(),
        keeper::http(StdDuration::from_secs(10)),
        clock.clone(),
    ));
    SharedEnv {
        sandbox,
        parts: KeeperParts {
            store,
            keyring,
            flow,
            clock,
        },
        key: text,
        database,
        _db: db,
        _dir: dir,
    }
}

/// On this test's PostgreSQL database (`None`: skipped, per the testkit's rules).
pub async fn postgres_env(clock: Arc<dyn Clock>) -> Option<SharedEnv> {
    let db = TestDatabase::create().await?;
    let url = db.url().to_owned();
    let store =
        calconnect_sql::PostgresStore::connect(&SecretString::from(url.clone()), clock.clone())
            .await
            .unwrap();
    Some(shared_env(Arc::new(store), url, Some(db), None, clock).await)
}

/// On a fresh SQLite file.
pub async fn sqlite_env(clock: Arc<dyn Clock>) -> SharedEnv {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keeper.db");
    let store = calconnect_sql::SqliteStore::open(&path, clock.clone())
        .await
        .unwrap();
    let database = path.to_str().unwrap().to_owned();
    shared_env(Arc::new(store), database, None, Some(dir), clock).await
}

impl SharedEnv {
    pub fn url(&self) -> String {
        self.sandbox.base_url().as_str().to_owned()
    }

    /// Another handle on the same database and sandbox, with its own clock (as a restarted
    /// process would open).
    pub async fn reopen(&self, clock: Arc<dyn Clock>) -> KeeperParts {
        let store: Arc<dyn ConnectionStore> = if self.database.starts_with("postgres") {
            let url = SecretString::from(self.database.clone());
            Arc::new(
                calconnect_sql::PostgresStore::connect(&url, clock.clone())
                    .await
                    .unwrap(),
            )
        } else {
            Arc::new(
                calconnect_sql::SqliteStore::open(
                    std::path::Path::new(&self.database),
                    clock.clone(),
                )
                .await
                .unwrap(),
            )
        };
        KeeperParts {
            store,
            keyring: self.parts.keyring.clone(),
            flow: Arc::new(keeper::flow(
                &self.url(),
                keeper::http(StdDuration::from_secs(10)),
                clock.clone(),
            )),
            clock,
        }
    }

    /// Connects `user` with an already expired access token; zeroes the counters.
    pub async fn expired_connection(&self, user: i64) -> ConnectionId {
        let id = self.parts.connect(&self.sandbox, user).await;
        self.parts
            .expire_at(id, SystemClock.now() - Duration::minutes(1))
            .await;
        self.sandbox.reset_token_calls();
        id
    }

    /// Starts `keeper-child <mode> <db> <sandbox> <id> <arg>` and waits for its READY.
    pub async fn child(&self, mode: &str, id: ConnectionId, arg: &str) -> ChildProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_keeper-child"))
            .args([mode, &self.database, &self.url(), &id.to_string(), arg])
            .env("CALCONNECT_CHILD_KEY", self.key.expose_secret())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut process = ChildProcess { child, lines };
        process.expect("READY").await;
        process
    }
}

pub struct ChildProcess {
    pub child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl std::fmt::Debug for ChildProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChildProcess")
    }
}

impl ChildProcess {
    /// Reads lines until one starts with `prefix` (60 s at most); returns it. ERROR lines fail.
    pub async fn expect(&mut self, prefix: &str) -> String {
        let read = async {
            loop {
                let line = self.lines.next_line().await.unwrap();
                let Some(line) = line else {
                    panic!("the child ended before printing {prefix}");
                };
                assert!(!line.starts_with("ERROR"), "child: {line}");
                if line.starts_with(prefix) {
                    return line;
                }
            }
        };
        tokio::time::timeout(StdDuration::from_secs(60), read)
            .await
            .unwrap_or_else(|_| panic!("no {prefix} from the child within 60 s"))
    }

    pub async fn say(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
        stdin.flush().await.unwrap();
    }
}

fn field<'a>(line: &'a str, name: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {name} in {line}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_postgres_database_refresh_once() {
    let Some(env) = postgres_env(Arc::new(SystemClock)).await else {
        return;
    };
    let id = env.expired_connection(1).await;
    let mut a = env.child("storm", id, "500").await;
    let mut b = env.child("storm", id, "500").await;
    a.say("GO").await;
    b.say("GO").await;
    let ra = a.expect("RESULT").await;
    let rb = b.expect("RESULT").await;
    for r in [&ra, &rb] {
        assert_eq!(field(r, "ok"), "500", "{r}");
        assert_eq!(field(r, "distinct"), "1", "{r}");
    }
    assert_eq!(
        field(&ra, "digest"),
        field(&rb, "digest"),
        "both processes got the same token"
    );
    assert_eq!(
        refreshes(&env.sandbox),
        1,
        "{:?}",
        env.sandbox.token_call_counts()
    );
    assert_eq!(invalid_grants(&env.sandbox), 0);
    let (stored, _) = env.parts.open_tokens(id).await;
    assert!(usable(&env.url(), &stored).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_keepers_on_one_sqlite_file_refresh_once() {
    let env = sqlite_env(Arc::new(SystemClock)).await;
    let id = env.expired_connection(1).await;
    // A second keeper with its own pool on the same file, as another process would have.
    let second_store = calconnect_sql::SqliteStore::open(
        std::path::Path::new(&env.database),
        Arc::new(SystemClock),
    )
    .await
    .unwrap();
    let second = KeeperParts {
        store: Arc::new(second_store),
        ..env.parts.clone()
    };
    let keepers = [
        env.parts.keeper(super::config()),
        second.keeper(super::config()),
    ];
    let calls = (0..1000).map(|i| {
        let keeper = keepers[i % 2].clone();
        tokio::spawn(async move { keeper.access_token(id).await })
    });
    let tokens: HashSet<String> = join_all(calls)
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap().access_token.expose_secret().to_owned())
        .collect();
    assert_eq!(tokens.len(), 1);
    assert_eq!(
        refreshes(&env.sandbox),
        1,
        "{:?}",
        env.sandbox.token_call_counts()
    );
    assert_eq!(invalid_grants(&env.sandbox), 0);
}
