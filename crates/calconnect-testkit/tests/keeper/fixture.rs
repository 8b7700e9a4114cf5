//! The keeper tests' environment: a frozen sandbox, a mock clock, a memory store.

use calconnect::store::{ConnectionStore, MemoryStore};
use calconnect::{Clock, MockClock, keeper::KeeperConfig, keeper::TokenKeeper};
use calconnect_sandbox::Sandbox;
use calconnect_testkit::fixtures;
use calconnect_testkit::keeper::{self, KeeperParts};
use std::sync::Arc;
use std::time::Duration as StdDuration;

/// A frozen sandbox, a mock clock at the same instant, a memory store.
#[allow(missing_debug_implementations)] // reason: test fixture
pub struct Env {
    pub sandbox: Arc<Sandbox>,
    pub clock: Arc<MockClock>,
    pub parts: KeeperParts,
}

pub async fn env() -> Env {
    env_with_timeout(StdDuration::from_secs(10)).await
}

pub async fn env_with_timeout(timeout: StdDuration) -> Env {
    let start = fixtures::start_time();
    let sandbox = Arc::new(keeper::sandbox(Some(start)).await);
    let clock = Arc::new(MockClock::new(start));
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    let store: Arc<dyn ConnectionStore> = Arc::new(MemoryStore::new(dyn_clock.clone()));
    let parts = KeeperParts {
        store,
        keyring: Arc::new(fixtures::keyring("k1")),
        flow: Arc::new(keeper::flow(
            sandbox.base_url().as_str(),
            keeper::http(timeout),
            dyn_clock.clone(),
        )),
        clock: dyn_clock,
    };
    Env {
        sandbox,
        clock,
        parts,
    }
}

impl Env {
    pub fn keeper(&self) -> TokenKeeper {
        self.parts.keeper(config())
    }

    pub fn url(&self) -> String {
        self.sandbox.base_url().as_str().to_owned()
    }

    /// Moves the keeper's clock and the sandbox's together.
    pub fn advance(&self, by: time::Duration) {
        self.clock.advance(by);
        self.sandbox.advance_clock(by);
    }

    /// Connects `user` and zeroes the sandbox counters.
    pub async fn connect(&self, user: i64) -> calconnect::store::ConnectionId {
        let id = self.parts.connect(&self.sandbox, user).await;
        self.sandbox.reset_token_calls();
        id
    }
}

/// Test configuration: deterministic jitter.
pub fn config() -> KeeperConfig {
    KeeperConfig::builder().jitter_seed(7).build().unwrap()
}
