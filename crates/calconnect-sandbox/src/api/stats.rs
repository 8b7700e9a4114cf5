//! Request counts by (path, status) for tests and demos: `Sandbox::api_calls` and
//! `GET /_sandbox/api/stats`.

use crate::state::Shared;
use axum::Json;
use axum::extract::State;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

/// Counters of answered API v2 requests.
#[derive(Debug, Default)]
pub struct ApiStats {
    counts: Mutex<HashMap<(String, u16), u64>>,
}

/// One row of `Sandbox::api_stats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiCallCount {
    /// Request path without the query, e.g. `/v2/schedules/101`.
    pub path: String,
    pub status: u16,
    pub count: u64,
}

impl ApiStats {
    pub(crate) fn record(&self, path: &str, status: u16) {
        let mut m = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        match m.get_mut(&(path.to_owned(), status)) {
            Some(n) => *n += 1,
            None => {
                m.insert((path.to_owned(), status), 1);
            }
        }
    }

    /// All counters, sorted by path then status.
    pub fn snapshot(&self) -> Vec<ApiCallCount> {
        let m = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let mut rows: Vec<ApiCallCount> = m
            .iter()
            .map(|((path, status), count)| ApiCallCount {
                path: path.clone(),
                status: *status,
                count: *count,
            })
            .collect();
        drop(m);
        rows.sort_by(|a, b| (&a.path, a.status).cmp(&(&b.path, b.status)));
        rows
    }

    /// Requests whose path starts with `prefix` and (if given) answered with `status`.
    pub fn count(&self, prefix: &str, status: Option<u16>) -> u64 {
        let m = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        m.iter()
            .filter(|((p, s), _)| p.starts_with(prefix) && status.is_none_or(|w| w == *s))
            .map(|(_, n)| *n)
            .sum()
    }
}

/// `GET /_sandbox/api/stats`: `{"total":N,"byStatus":{"200":N,…},"calls":[{path,status,count}]}`.
pub async fn get(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let calls = shared.api.stats.snapshot();
    let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
    for c in &calls {
        *by_status.entry(c.status.to_string()).or_default() += c.count;
    }
    let total: u64 = calls.iter().map(|c| c.count).sum();
    Json(json!({"total": total, "byStatus": by_status, "calls": calls}))
}
