//! Operations endpoints: `/healthz` (the process answers), `/readyz` (store reachable, migrations
//! applied, the keys open the stored tokens), `/metrics` (Prometheus).

use crate::checks::StoredData;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret as _;
use serde_json::json;

pub(crate) async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    let store_ok = state.store.count_connections().await.is_ok();
    let migrations_ok = state.db.ready().await;
    // A keyring that cannot open the stored tokens (a key missing after a rotation elsewhere)
    // would fail every token request: take the instance out of rotation.
    let keys_ok = matches!(
        crate::checks::stored_data_opens(&*state.store, &state.config.keyring).await,
        Ok(StoredData::Empty | StoredData::Opens { .. })
    );
    let ready = store_ok && migrations_ok && keys_ok;
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "store": store_ok,
        "migrations": migrations_ok,
        "keys": keys_ok,
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// `/metrics`: one `GROUP BY` for the connection gauge, then the exporter's text. With
/// `metrics.token` set, only requests with `Authorization: Bearer <token>` get them.
pub(crate) async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(expected) = &state.config.metrics.token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        let same: bool =
            subtle::ConstantTimeEq::ct_eq(given.as_bytes(), expected.expose_secret().as_bytes())
                .into();
        if !same {
            return crate::error::ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "send the metrics token as `Authorization: Bearer <token>` (metrics.token)",
            )
            .into_response();
        }
    }
    let counts = match state.store.count_by_status().await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "metrics: cannot count connections");
            calconnect::store::StatusCounts::default()
        }
    };
    let mut response = state.metrics.render(&counts).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}
