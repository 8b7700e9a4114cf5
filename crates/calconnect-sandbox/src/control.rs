//! placeholder: the control surface under `/_sandbox/`
use crate::state::Shared;
use axum::Router;
use std::sync::Arc;

pub fn router() -> Router<Arc<Shared>> {
    Router::new()
}
