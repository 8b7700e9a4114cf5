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

/// The OpenAPI 3.1 `webhooks` section: what the broker POSTs to `webhooks.urls`. utoipa 5 has no
/// field for it, so it goes in through the document's extensions (serialized flat into the
/// document, as the section must be).
struct WebhooksSection;

impl Modify for WebhooksSection {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let header = |name: &str, description: &str| {
            serde_json::json!({
                "name": name, "in": "header", "required": true,
                "description": description, "schema": {"type": "string"},
            })
        };
        let section = serde_json::json!({
            "connectionEvent": {
                "post": {
                    "operationId": "receiveWebhookEvent",
                    "summary": "An event the broker sends to each of `webhooks.urls`",
                    "description": "Verify `calconnect-signature` over the raw body before trusting it (README, \"Webhooks\"); answer 2xx once handled, anything else is retried. Deliveries are at least once: deduplicate on the event id.",
                    "tags": ["webhooks"],
                    "security": [],
                    "parameters": [
                        header("calconnect-signature", "`t=<unix seconds>,v1=<hex HMAC-SHA256 of \"<t>.<raw body>\">`, one `v1` per configured secret"),
                        header("calconnect-event-id", "The event id, as in the body"),
                        header("calconnect-event-type", "The event type, as in the body"),
                    ],
                    "requestBody": {
                        "required": true,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/WebhookEvent"}}},
                    },
                    "responses": {
                        "2XX": {"description": "Handled: the delivery is done"},
                        "401": {"description": "The signature did not verify: the broker retries, then gives up (`failed` in the delivery log)"},
                    },
                },
            },
        });
        let extensions = openapi.extensions.get_or_insert_with(Default::default);
        extensions.insert("webhooks".to_owned(), section);
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
    components(schemas(ErrorResponse, ErrorDetail, crate::webhooks::WebhookEvent)),
    modifiers(&ApiKeyScheme, &WebhooksSection)
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
        // The webhooks section describes the event body.
        assert_eq!(
            doc["webhooks"]["connectionEvent"]["post"]["requestBody"]["content"]["application/json"]
                ["schema"]["$ref"],
            "#/components/schemas/WebhookEvent"
        );
        assert!(doc["components"]["schemas"]["WebhookEvent"].is_object());
    }
}
