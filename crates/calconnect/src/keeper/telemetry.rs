//! Metrics through the `metrics` facade. Labels are fixed words (trigger, outcome, status),
//! never connection ids (unbounded) and never tokens.

use crate::store::ConnectionStatus;
use std::time::Duration;

/// Refresh flights, by trigger and outcome (`refreshed`, `already_fresh`, `transient`,
/// `needs_reauth`, `refresh_lost`, ...).
pub const FLIGHTS_TOTAL: &str = "calconnect_keeper_refreshes_total";
/// Wall time of refresh flights, by outcome.
pub const FLIGHT_SECONDS: &str = "calconnect_keeper_refresh_duration_seconds";
/// Calls to the token endpoint, by outcome (`ok`, `dead_grant`, `transient`, `timeout`,
/// `protocol_error`).
pub const TOKEN_CALLS_TOTAL: &str = "calconnect_keeper_token_calls_total";
/// Status changes made by the keeper, by new status.
pub const STATUS_CHANGES_TOTAL: &str = "calconnect_keeper_status_changes_total";
/// Connections handled by the keep-alive sweep, by outcome.
pub const SWEEP_TOTAL: &str = "calconnect_keeper_sweep_connections_total";

/// Active connections, as last counted by the sweep's capacity check.
pub const ACTIVE_CONNECTIONS: &str = "calconnect_keeper_active_connections";
/// Idle connections the refresh budget can keep alive within the refresh window.
pub const KEEP_ALIVE_CAPACITY: &str = "calconnect_keeper_keep_alive_capacity";

/// Registers descriptions of the keeper's metrics with the installed recorder.
pub fn describe_metrics() {
    metrics::describe_counter!(
        FLIGHTS_TOTAL,
        "Token refresh flights by trigger and outcome"
    );
    metrics::describe_histogram!(
        FLIGHT_SECONDS,
        metrics::Unit::Seconds,
        "Duration of token refresh flights by outcome"
    );
    metrics::describe_counter!(TOKEN_CALLS_TOTAL, "Refresh calls to Cal.com by outcome");
    metrics::describe_counter!(
        STATUS_CHANGES_TOTAL,
        "Connection status changes by new status"
    );
    metrics::describe_counter!(SWEEP_TOTAL, "Keep-alive sweep results by outcome");
    metrics::describe_gauge!(
        ACTIVE_CONNECTIONS,
        "Active connections at the last capacity check"
    );
    metrics::describe_gauge!(
        KEEP_ALIVE_CAPACITY,
        "Idle connections the refresh budget can keep alive (above it, idle ones may lapse)"
    );
    crate::budget::describe_metrics();
}

pub(crate) fn capacity(c: &super::Capacity) {
    metrics::gauge!(ACTIVE_CONNECTIONS).set(c.active_connections as f64);
    metrics::gauge!(KEEP_ALIVE_CAPACITY).set(c.keep_alive_capacity as f64);
}

pub(crate) fn flight_finished(trigger: &'static str, outcome: &'static str, elapsed: Duration) {
    metrics::counter!(FLIGHTS_TOTAL, "trigger" => trigger, "outcome" => outcome).increment(1);
    metrics::histogram!(FLIGHT_SECONDS, "outcome" => outcome).record(elapsed.as_secs_f64());
}

pub(crate) fn token_call(outcome: &'static str) {
    metrics::counter!(TOKEN_CALLS_TOTAL, "outcome" => outcome).increment(1);
}

pub(crate) fn status_changed(status: ConnectionStatus) {
    metrics::counter!(STATUS_CHANGES_TOTAL, "status" => status.as_str()).increment(1);
}

pub(crate) fn swept(outcome: &'static str) {
    metrics::counter!(SWEEP_TOTAL, "outcome" => outcome).increment(1);
}
