//! The conformance suite against the in-memory store.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use calconnect_testkit::MemoryBackend;

async fn backend() -> Option<MemoryBackend> {
    Some(MemoryBackend::default())
}

calconnect_testkit::conformance_tests!(backend());

#[tokio::test]
async fn store_level_flow_runs_on_memory() {
    use calconnect_testkit::TestBackend as _;
    let backend = MemoryBackend::default();
    let (_c, clock) = calconnect_testkit::fixtures::mock_clock();
    let store = backend.open(clock).await;
    let ring = calconnect_testkit::fixtures::keyring("k1");
    calconnect_testkit::conformance::store_level_flow(store.as_ref(), &ring).await;
}
