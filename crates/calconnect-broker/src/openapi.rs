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
        crate::webhooks::list,
    ),
    components(schemas(ErrorResponse, ErrorDetail)),
    modifiers(&ApiKeyScheme)
)]
pub struct ApiDoc;

pub(crate) async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
