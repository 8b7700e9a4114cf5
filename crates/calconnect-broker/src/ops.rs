//! Operations endpoints: `/healthz` (the process answers), `/readyz` (store reachable, migrations
//! applied), `/metrics` (Prometheus).

use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use calconnect::store::ConnectionStatus;
use serde_json::json;

pub(crate) async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    let store_ok = state.store.count_connections().await.is_ok();
    let migrations_ok = state.db.ready().await;
    let body = json!({
        "status": if store_ok && migrations_ok { "ready" } else { "not_ready" },
        "store": store_ok,
        "migrations": migrations_ok,
    });
    let status = if store_ok && migrations_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// At most this many connections are scanned to count them by status.
const STATUS_SCAN_LIMIT: usize = 100_000;

pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    let mut counts = [
        (ConnectionStatus::Active.as_str(), 0u64),
        (ConnectionStatus::NeedsReauth.as_str(), 0),
        (ConnectionStatus::RefreshLost.as_str(), 0),
    ];
    let mut after = None;
    let mut seen = 0usize;
    while seen < STATUS_SCAN_LIMIT {
        let Ok(page) = state.store.list_connections(after, 1000).await else {
            break;
        };
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        seen += page.len();
        for c in &page {
            if let Some(slot) = counts.iter_mut().find(|(s, _)| *s == c.status.as_str()) {
                slot.1 += 1;
            }
        }
        if page.len() < 1000 {
            break;
        }
    }
    let mut text = state.metrics.render(&counts);
    if let Some(handle) = crate::metrics::keeper_recorder() {
        text.push_str(&handle.render());
    }
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}
