//! `cargo bench -p calconnect-testkit --bench keeper`: the token keeper's cached hot path (ns
//! per call on one thread, and per call with tasks contending on two worker threads) and the
//! wall time of a 1,000-caller storm on one expired connection (one refresh against the local
//! sandbox, memory store).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // reason: a benchmark binary; failing loudly is right

use calconnect::store::{ConnectionStore, MemoryStore};
use calconnect::{Clock, SystemClock, keeper::KeeperConfig};
use calconnect_testkit::keeper::{self, KeeperParts, refreshes};
use calconnect_testkit::{bench, fixtures};
use criterion::{Criterion, black_box, criterion_group, criterion_main};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn keeper_benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (sandbox, parts) = rt.block_on(async {
        let sandbox = keeper::sandbox(None).await;
        // The storm makes one real-clock refresh per iteration from 127.0.0.1: more than the
        // token endpoint's per-IP 120 per minute.
        sandbox.set_ip_rate_limit(u32::MAX);
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let store: Arc<dyn ConnectionStore> = Arc::new(MemoryStore::new(clock.clone()));
        let parts = KeeperParts {
            store,
            keyring: Arc::new(fixtures::keyring("k1")),
            flow: Arc::new(keeper::flow(
                sandbox.base_url().as_str(),
                keeper::http(Duration::from_secs(10)),
                clock.clone(),
            )),
            clock,
        };
        (sandbox, parts)
    });
    let id = rt.block_on(parts.connect(&sandbox, 1));
    let keeper = parts.keeper(KeeperConfig::default());
    rt.block_on(keeper.access_token(id)).unwrap();

    let mut group = c.benchmark_group("keeper");
    group.bench_function("cached_access_token/1_thread", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(keeper.access_token(id).await.unwrap());
                }
                start.elapsed()
            })
        });
    });
    for tasks in [8usize, 64] {
        group.bench_function(
            format!("cached_access_token/{tasks}_tasks_2_threads"),
            |b| {
                b.iter_custom(|iters| {
                    let per_task = iters.div_ceil(tasks as u64);
                    rt.block_on(async {
                        let start = Instant::now();
                        let handles: Vec<_> = (0..tasks)
                            .map(|_| {
                                let keeper = keeper.clone();
                                tokio::spawn(async move {
                                    for _ in 0..per_task {
                                        black_box(keeper.access_token(id).await.unwrap());
                                    }
                                })
                            })
                            .collect();
                        for h in handles {
                            h.await.unwrap();
                        }
                        // Time per call, all tasks together.
                        start
                            .elapsed()
                            .mul_f64(iters as f64 / (per_task * tasks as u64) as f64)
                    })
                });
            },
        );
    }
    group.sample_size(10);
    group.bench_function("storm_1000_callers_one_expired_connection", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                rt.block_on(async {
                    parts
                        .expire_at(id, SystemClock.now() - time::Duration::minutes(1))
                        .await;
                    keeper.forget(id);
                    let before = refreshes(&sandbox);
                    let start = Instant::now();
                    let handles: Vec<_> = (0..1000)
                        .map(|_| {
                            let keeper = keeper.clone();
                            tokio::spawn(async move { keeper.access_token(id).await })
                        })
                        .collect();
                    for h in handles {
                        h.await.unwrap().unwrap();
                    }
                    total += start.elapsed();
                    assert_eq!(refreshes(&sandbox), before + 1);
                });
            }
            total
        });
    });
    group.finish();
}

criterion_group! { name = benches; config = bench::criterion(); targets = keeper_benches }
criterion_main!(benches);
