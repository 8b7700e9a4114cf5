//! The OpenAPI 3 document at `/api/openapi.json`, generated from the handlers' annotations and
//! the request/response types (utoipa).

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

pub use crate::error::{ErrorDetail, ErrorResponse};

struct ApiKeyScheme;

impl Modify for ApiKeyScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key from `calconnect api-keys create`"))
                    .build(),
            ),
        );
    }
}

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(title = "calconnect broker", description = "Connect your users' Cal.com accounts and keep the connections alive."),
    servers((url = "/", description = "The broker that serves this document (its public_base_url)")),
    paths(
        crate::sessions::create,
        crate::sessions::get,
        crate::connections::list,
        crate::connections::get,
        crate::connections::delete,
        crate::access_token::access_token,
        crate::access_token::refresh,
        crate::proxy::proxy,
        crate::proxy::doc::post,
        crate::proxy::doc::put,
        crate::proxy::doc::patch,
        crate::proxy::doc::delete,
        crate::webhooks::list,
        crate::webhooks::manual::redeliver_handler,
        crate::webhooks::manual::test,
    ),
    components(schemas(ErrorResponse, ErrorDetail)),
    modifiers(&ApiKeyScheme)
)]
pub struct ApiDoc;

pub(crate) async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    /// Every proxied method is an operation of its own, and no two operations share an id (code
    /// generators name methods after them).
    #[test]
    fn every_proxy_method_is_documented_with_a_unique_operation_id() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        if std::env::var_os("CALCONNECT_PRINT_OPENAPI").is_some() {
            println!("{}", serde_json::to_string_pretty(&doc).unwrap());
        }
        let proxy = &doc["paths"]["/api/v1/connections/{id}/proxy/{path}"];
        for (method, id) in [
            ("get", "proxyGet"),
            ("post", "proxyPost"),
            ("put", "proxyPut"),
            ("patch", "proxyPatch"),
            ("delete", "proxyDelete"),
        ] {
            assert_eq!(proxy[method]["operationId"], id, "{method}");
        }
        let mut ids: Vec<&str> = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|item| item.as_object().unwrap().values())
            .filter_map(|op| op["operationId"].as_str())
            .collect();
        let count = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), count, "duplicate operationIds: {ids:?}");
    }
}
