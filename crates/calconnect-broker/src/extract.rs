//! Extractors whose rejections are [`ApiError`]s (JSON `{error: {code, message}}`), not axum's
//! plain-text bodies.

use crate::error::ApiError;
use axum::extract::{FromRequest, FromRequestParts};

/// `Json<T>` with an [`ApiError`] rejection.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// `Query<T>` with an [`ApiError`] rejection.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// `Path<T>` with an [`ApiError`] rejection.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);
