//! Metrics: one pipeline. Everything goes through the `metrics` facade — the broker's own
//! counters and histograms here, the token keeper's `calconnect_keeper_*` in the library — and
//! one Prometheus exporter renders them at `/metrics`, with the gauge of connections by status
//! read at scrape time by one `GROUP BY` query ([`calconnect::store::ConnectionStore::count_by_status`]).
//! Labels are fixed words (outcomes, statuses, status classes); never ids, URLs or secrets.
//!
//! The exporter is installed as the process's recorder by the first broker; a program that
//! embeds the broker and installs its own recorder first gets the metrics in its recorder
//! instead, and `/metrics` then shows only the connection gauge.

use calconnect::store::StatusCounts;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;

/// Latency buckets (seconds) of every histogram.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

/// The process-wide Prometheus exporter, installed on first use; `None` when the embedding
/// program installed another recorder.
pub fn recorder() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets(&BUCKETS)
                .ok()?
                .install_recorder()
                .ok()?;
            describe();
            Some(handle)
        })
        .as_ref()
}

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Whether [`recorder`] ran: the process's recorder is then the one for good.
fn recorder_settled() -> bool {
    HANDLE.get().is_some()
}

fn describe() {
    ::metrics::describe_counter!(FLOWS, "Finished connect flows by outcome");
    ::metrics::describe_counter!(TOKENS, "Access-token and refresh requests by outcome");
    ::metrics::describe_histogram!(
        TOKEN_SECONDS,
        ::metrics::Unit::Seconds,
        "Access-token request latency"
    );
    ::metrics::describe_counter!(PROXY, "Proxied requests by status class");
    ::metrics::describe_histogram!(
        PROXY_SECONDS,
        ::metrics::Unit::Seconds,
        "Proxied request latency"
    );
    ::metrics::describe_counter!(WEBHOOKS, "Webhook delivery attempts by outcome");
}

const FLOWS: &str = "calconnect_connect_flows_total";
const TOKENS: &str = "calconnect_token_requests_total";
const TOKEN_SECONDS: &str = "calconnect_token_request_seconds";
const PROXY: &str = "calconnect_proxy_requests_total";
const PROXY_SECONDS: &str = "calconnect_proxy_request_seconds";
const WEBHOOKS: &str = "calconnect_webhook_deliveries_total";
const CONNECTIONS: &str = "calconnect_connections";

/// The proxy's counters and histogram, registered once: the facade's macros build the key and
/// look it up in the recorder's registry on every call, a thousand instructions of a proxied
/// request (issue 15). Only once the process's recorder is settled ([`recorder`] called: ours
/// installed, or the embedding program's found), so that no handle is kept from the facade's
/// no-op recorder of before.
struct ProxyHandles {
    /// By [`ProxyHandles::CLASSES`].
    requests: [::metrics::Counter; 6],
    seconds: ::metrics::Histogram,
}

impl ProxyHandles {
    /// The `status` labels, as `proxy::class` makes them, and `error`.
    const CLASSES: [&'static str; 6] = ["2xx", "3xx", "429", "4xx", "5xx", "error"];

    fn get() -> Option<&'static Self> {
        static HANDLES: OnceLock<ProxyHandles> = OnceLock::new();
        if let Some(handles) = HANDLES.get() {
            return Some(handles);
        }
        recorder_settled().then(|| {
            HANDLES.get_or_init(|| Self {
                requests: Self::CLASSES.map(|class| ::metrics::counter!(PROXY, "status" => class)),
                seconds: ::metrics::histogram!(PROXY_SECONDS),
            })
        })
    }

    /// Counts a request of `class`; a class not in [`ProxyHandles::CLASSES`] is registered as
    /// it comes (none is today).
    fn count(&self, class: &'static str) {
        match Self::CLASSES.iter().position(|c| *c == class) {
            Some(i) => self.requests[i].increment(1),
            None => ::metrics::counter!(PROXY, "status" => class).increment(1),
        }
    }
}

/// The broker's metric points, as methods so that call sites stay one line.
#[derive(Debug, Default)]
pub struct Metrics;

impl Metrics {
    /// A finished connect flow, by outcome.
    pub fn flow(&self, outcome: &'static str) {
        ::metrics::counter!(FLOWS, "outcome" => outcome).increment(1);
    }

    /// An access-token or refresh request, by outcome (`ok`, `needs_reauth`, `not_found`, `error`).
    pub fn token(&self, outcome: &'static str, elapsed: Duration) {
        ::metrics::counter!(TOKENS, "outcome" => outcome).increment(1);
        ::metrics::histogram!(TOKEN_SECONDS).record(elapsed.as_secs_f64());
    }

    /// A proxied request, by status class (`2xx`, `4xx`, ...) or `error`.
    pub fn proxy(&self, class: &'static str, elapsed: Duration) {
        match ProxyHandles::get() {
            Some(handles) => {
                handles.count(class);
                handles.seconds.record(elapsed.as_secs_f64());
            }
            None => {
                ::metrics::counter!(PROXY, "status" => class).increment(1);
                ::metrics::histogram!(PROXY_SECONDS).record(elapsed.as_secs_f64());
            }
        }
    }

    /// A webhook delivery attempt, by outcome.
    pub fn webhook(&self, outcome: &'static str) {
        ::metrics::counter!(WEBHOOKS, "outcome" => outcome).increment(1);
    }

    /// The Prometheus text: everything recorded, then the gauge of `connections` by status.
    /// The gauge is this broker's store read just now, written here rather than recorded, so
    /// that several brokers in one process (tests, an embedding program) each show their own.
    pub fn render(&self, connections: &StatusCounts) -> String {
        let mut out = recorder().map(PrometheusHandle::render).unwrap_or_default();
        out.push_str("# HELP calconnect_connections Stored connections by status\n");
        out.push_str("# TYPE calconnect_connections gauge\n");
        for (status, n) in connections.iter() {
            out.push_str(&format!(
                "{CONNECTIONS}{{status=\"{}\"}} {n}\n",
                status.as_str()
            ));
        }
        out
    }
}
