//! Prometheus metrics at `/metrics`, in the text exposition format. Labels are fixed words
//! (outcomes, statuses); never ids, URLs or secrets.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// The process-wide `metrics` recorder (the token keeper's `calconnect_keeper_*` metrics),
/// installed by the first broker of the process; `None` if the embedding program installed its
/// own recorder (then it exports them itself).
pub fn keeper_recorder() -> Option<&'static metrics_exporter_prometheus::PrometheusHandle> {
    static HANDLE: std::sync::OnceLock<Option<metrics_exporter_prometheus::PrometheusHandle>> =
        std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .install_recorder()
                .ok()
        })
        .as_ref()
}

/// Latency buckets (seconds).
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                self.counts[i] += 1;
            }
        }
        self.count += 1;
        self.sum += secs;
    }
}

/// Counters by (name, label) then by the label's value, histograms by name then label: a hit
/// looks its key up by `&str` and allocates nothing (the proxy counts every request, issue 15).
#[derive(Debug, Default)]
struct Inner {
    counters: BTreeMap<(&'static str, &'static str), BTreeMap<String, u64>>,
    histograms: BTreeMap<&'static str, BTreeMap<String, Histogram>>,
}

/// The broker's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    fn inc(&self, name: &'static str, label: &'static str, value: &str) {
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let values = inner.counters.entry((name, label)).or_default();
        match values.get_mut(value) {
            Some(n) => *n += 1,
            None => {
                values.insert(value.to_owned(), 1);
            }
        }
    }

    fn observe(&self, name: &'static str, label: &str, elapsed: Duration) {
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let labels = inner.histograms.entry(name).or_default();
        let secs = elapsed.as_secs_f64();
        match labels.get_mut(label) {
            Some(h) => h.observe(secs),
            None => labels.entry(label.to_owned()).or_default().observe(secs),
        }
    }

    /// A finished connect flow, by outcome.
    pub fn flow(&self, outcome: &'static str) {
        self.inc("calconnect_connect_flows_total", "outcome", outcome);
    }

    /// An access-token request, by outcome (`fresh`, `refreshed`, `needs_reauth`, `error`).
    pub fn token(&self, outcome: &str, elapsed: Duration) {
        self.inc("calconnect_token_requests_total", "outcome", outcome);
        self.observe("calconnect_token_request_seconds", "all", elapsed);
    }

    /// A refresh at Cal.com, by outcome.
    pub fn refresh(&self, outcome: &str, elapsed: Duration) {
        self.inc("calconnect_refreshes_total", "outcome", outcome);
        self.observe("calconnect_refresh_seconds", "all", elapsed);
    }

    /// A proxied request, by status class (`2xx`, `4xx`, ...) or `error`.
    pub fn proxy(&self, class: &str, elapsed: Duration) {
        self.inc("calconnect_proxy_requests_total", "status", class);
        self.observe("calconnect_proxy_request_seconds", "all", elapsed);
    }

    /// A webhook delivery attempt, by outcome.
    pub fn webhook(&self, outcome: &str) {
        self.inc("calconnect_webhook_deliveries_total", "outcome", outcome);
    }

    /// Renders the metrics, adding the gauge of connections by status.
    pub fn render(&self, connections_by_status: &[(&str, u64)]) -> String {
        let inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out = String::new();
        let mut last = "";
        for ((name, label), values) in &inner.counters {
            for (value, n) in values {
                if *name != last {
                    let _ = writeln!(out, "# TYPE {name} counter");
                    last = name;
                }
                let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {n}");
            }
        }
        for (name, h) in inner
            .histograms
            .iter()
            .flat_map(|(name, labels)| labels.values().map(move |h| (name, h)))
        {
            let _ = writeln!(out, "# TYPE {name} histogram");
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {}", h.counts[i]);
            }
            let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "{name}_sum {}", h.sum);
            let _ = writeln!(out, "{name}_count {}", h.count);
        }
        let _ = writeln!(out, "# TYPE calconnect_connections gauge");
        for (status, n) in connections_by_status {
            let _ = writeln!(out, "calconnect_connections{{status=\"{status}\"}} {n}");
        }
        out
    }
}
