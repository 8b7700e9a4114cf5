//! `POST /v2/auth/oauth2/token` (`docs/calcom.md` §3.1–§3.5): JSON or form bodies, the input
//! pipe of `token.input.pipe.ts` (§3.2, exact texts), then the shared service (§3.4).
//!
//! The pipe (`apps/api/v2/src/modules/auth/oauth2/inputs/token.input.pipe.ts`) picks the input
//! class by whether the body *has* a `client_secret` key, then validates it with class-validator
//! (`whitelist + forbidNonWhitelisted`) against `inputs/exchange.input.ts` or
//! `inputs/refresh.input.ts`. The merged confidential exchange input declares exactly
//! `client_id, grant_type, code, redirect_uri, client_secret`, so a confidential client's
//! `code_verifier` is refused with `code_verifier property is wrong,property code_verifier should
//! not exist ` and a confidential code issued with a `code_challenge` can never be exchanged here
//! (the service burns it, then asks for the verifier the pipe forbids). Such a client exchanges at
//! the legacy web endpoint instead, which passes `code_verifier` to the service (`docs/calcom.md`
//! §3.3 "The input pipe", §3.7 "PKCE and client types").

use super::errors::{TokenError, no_store};
use super::faults;
use super::grants::{self, ExchangeRequest, Minted};
use crate::api::PeerIp;
use crate::api::envelope::ApiError;
use crate::api::ratelimit;
use crate::state::{Shared, TokenEndpoint};
use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
#[cfg(test)]
use serde_json::json;
use serde_json::{Map, Value};
use std::sync::Arc;

/// The v2 token endpoint: Nest's global throttler guard (per client IP, the request has no
/// bearer; see [`crate::api::ratelimit`]), then the input pipe, then the service. Every answer
/// that passed the guard carries its `X-RateLimit-*-Default` headers.
pub(crate) async fn token(
    State(shared): State<Arc<Shared>>,
    OriginalUri(uri): OriginalUri,
    PeerIp(peer): PeerIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (parsed, order) = parse_body(&headers, &body);
    let grant = grant_label(parsed.as_ref());
    let endpoint = TokenEndpoint::V2;
    let rate = faults::guarded(faults::pending(&shared, endpoint).as_ref())
        .then(|| ratelimit::check(&shared, &headers, peer));
    if let Some(r) = rate.filter(|r| r.blocked) {
        shared.count_token_call(endpoint, grant, "rate_limited");
        return crate::api::render(&shared, &uri, Err(ApiError::throttled()), Some(r));
    }
    let fault = faults::FaultRequest {
        uri: &uri,
        headers: &headers,
        peer,
    };
    let mut resp = match faults::apply(&shared, endpoint, grant, &fault).await {
        Some(resp) => resp,
        None => {
            let pkce_for_all = shared.settings().pkce_required_for_all;
            let result = pipe(parsed, &order, pkce_for_all).and_then(|input| run(&shared, &input));
            // Tokens are handed out only once they are kept (a state file, when configured).
            shared.saved().await;
            let outcome = match &result {
                Ok(_) => "ok".to_owned(),
                Err(e) => e.outcome(),
            };
            shared.count_token_call(endpoint, grant, &outcome);
            match result {
                Ok(m) => success(&m, true),
                Err(e) => e.v2_response(),
            }
        }
    };
    if let Some(r) = rate {
        crate::api::rate_headers(resp.headers_mut(), r);
    }
    resp
}

/// The success body (§3.5): bare, `token_type` lowercase, `scope` space-joined (omitted by the
/// legacy endpoints).
pub(crate) fn success(m: &Minted, with_scope: bool) -> Response {
    /// Field order as Cal.com's DTO writes it.
    #[derive(serde::Serialize)]
    struct Body<'a> {
        access_token: &'a str,
        token_type: &'static str,
        refresh_token: &'a str,
        expires_in: i64,
        #[serde(skip_serializing_if = "Option::is_none")]
        scope: Option<&'a str>,
    }
    let body = Body {
        access_token: &m.access_token,
        token_type: "bearer",
        refresh_token: &m.refresh_token,
        expires_in: m.expires_in,
        scope: with_scope.then_some(m.scope.as_str()),
    };
    no_store(StatusCode::OK, body)
}

/// The grant label used by the call counters.
pub(crate) fn grant_label(body: Option<&Value>) -> &'static str {
    match body
        .and_then(|b| b.get("grant_type"))
        .and_then(Value::as_str)
    {
        Some("authorization_code") => "authorization_code",
        Some("refresh_token") => "refresh_token",
        _ => "unknown",
    }
}

/// The request body as Nest sees it: JSON as parsed (`None` if it does not parse), a form as an
/// object of strings (a repeated key becomes an array, as the `qs` parser does), anything else
/// `{}`. Also returns the object's keys in body order (for the order of validator messages).
fn parse_body(headers: &HeaderMap, body: &[u8]) -> (Option<Value>, Vec<String>) {
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if ctype.starts_with("application/json") || ctype.contains("+json") {
        if body.iter().all(u8::is_ascii_whitespace) {
            return (Some(Value::Object(Map::new())), Vec::new());
        }
        let order = serde_json::from_slice::<KeyOrder>(body)
            .map(|k| k.0)
            .unwrap_or_default();
        return (serde_json::from_slice(body).ok(), order);
    }
    if ctype.starts_with("application/x-www-form-urlencoded") {
        let mut map = Map::new();
        let mut order = Vec::new();
        for (k, v) in form_urlencoded::parse(body) {
            let v = Value::String(v.into_owned());
            match map.get_mut(k.as_ref()) {
                Some(Value::Array(a)) => a.push(v),
                Some(existing) => {
                    let first = existing.take();
                    *existing = Value::Array(vec![first, v]);
                }
                None => {
                    order.push(k.clone().into_owned());
                    map.insert(k.into_owned(), v);
                }
            }
        }
        return (Some(Value::Object(map)), order);
    }
    (Some(Value::Object(Map::new())), Vec::new())
}

/// The keys of a top-level JSON object in body order (serde_json's `Map` sorts them).
struct KeyOrder(Vec<String>);

impl<'de> serde::Deserialize<'de> for KeyOrder {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Keys;
        impl<'de> serde::de::Visitor<'de> for Keys {
            type Value = KeyOrder;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<KeyOrder, A::Error> {
                let mut keys: Vec<String> = Vec::new();
                while let Some(k) = m.next_key::<String>()? {
                    m.next_value::<serde::de::IgnoredAny>()?;
                    if !keys.contains(&k) {
                        keys.push(k);
                    }
                }
                Ok(KeyOrder(keys))
            }
        }
        d.deserialize_map(Keys)
    }
}

/// A body that passed the pipe.
#[derive(Debug)]
enum TokenInput {
    Exchange {
        client_id: String,
        code: String,
        redirect_uri: String,
        client_secret: Option<String>,
        code_verifier: Option<String>,
    },
    Refresh {
        client_id: String,
        refresh_token: String,
        client_secret: Option<String>,
    },
}

/// A property of one of the four input classes (`exchange.input.ts`, `refresh.input.ts`).
struct Prop {
    name: &'static str,
    optional: bool,
}

const fn req(name: &'static str) -> Prop {
    Prop {
        name,
        optional: false,
    }
}
const fn opt(name: &'static str) -> Prop {
    Prop {
        name,
        optional: true,
    }
}

/// `OAuth2ExchangeConfidentialInput` as every merged `exchange.input.ts` declares it: exactly
/// these five fields, `client_secret` required (`@IsString()` without `@IsOptional()`). With
/// `whitelist + forbidNonWhitelisted` a `code_verifier` is an unknown property, so a confidential
/// client cannot send one to the v2 endpoint (`docs/calcom.md` §3.2 "Request fields").
const EXCHANGE_CONFIDENTIAL: [Prop; 5] = [
    req("client_id"),
    req("grant_type"),
    req("code"),
    req("redirect_uri"),
    req("client_secret"),
];
/// The unmerged "PKCE for every client" branch (`exchange.input.ts@0f1f5341`, used when
/// `Settings::pkce_required_for_all` is on): secret and verifier both optional.
const EXCHANGE_CONFIDENTIAL_PKCE_FOR_ALL: [Prop; 6] = [
    req("client_id"),
    req("grant_type"),
    req("code"),
    req("redirect_uri"),
    opt("client_secret"),
    opt("code_verifier"),
];
const EXCHANGE_PUBLIC: [Prop; 5] = [
    req("client_id"),
    req("grant_type"),
    req("code"),
    req("redirect_uri"),
    req("code_verifier"),
];
/// `OAuth2RefreshConfidentialInput` (`refresh.input.ts`): `client_secret` required.
const REFRESH_CONFIDENTIAL: [Prop; 4] = [
    req("client_id"),
    req("grant_type"),
    req("refresh_token"),
    req("client_secret"),
];
/// The unmerged branch's refresh input (`refresh.input.ts@0f1f5341`): secret optional.
const REFRESH_CONFIDENTIAL_PKCE_FOR_ALL: [Prop; 4] = [
    req("client_id"),
    req("grant_type"),
    req("refresh_token"),
    opt("client_secret"),
];
const REFRESH_PUBLIC: [Prop; 3] = [req("client_id"), req("grant_type"), req("refresh_token")];

/// `OAuth2TokenInputPipe.transform` (§3.2), with its exact error texts.
///
/// `pkce_for_all` selects the input classes of the unmerged "PKCE for every client" branch.
fn pipe(
    body: Option<Value>,
    order: &[String],
    pkce_for_all: bool,
) -> Result<TokenInput, TokenError> {
    // `if (!value)` catches JavaScript's falsy bodies, `typeof value !== "object"` the other
    // primitives. An array is an object to JavaScript: it goes on and, having no `client_id`,
    // fails the next check.
    let obj = match body {
        None => return Err(TokenError::pipe("body", "Body is required")),
        Some(v) if is_falsy(&v) => return Err(TokenError::pipe("body", "Body is required")),
        Some(Value::Object(o)) => o,
        Some(Value::Array(_)) => Map::new(),
        Some(_) => return Err(TokenError::pipe("body", "Body should be an object")),
    };
    match obj.get("client_id") {
        Some(Value::String(s)) if !s.is_empty() => {}
        _ => {
            return Err(TokenError::pipe(
                "client_id_required",
                "client_id is required",
            ));
        }
    }
    let confidential = obj.contains_key("client_secret");
    let grant = obj.get("grant_type").and_then(Value::as_str);
    let schema: &[Prop] = match (grant, confidential, pkce_for_all) {
        (Some("authorization_code"), true, false) => &EXCHANGE_CONFIDENTIAL,
        (Some("authorization_code"), true, true) => &EXCHANGE_CONFIDENTIAL_PKCE_FOR_ALL,
        (Some("authorization_code"), false, _) => &EXCHANGE_PUBLIC,
        (Some("refresh_token"), true, false) => &REFRESH_CONFIDENTIAL,
        (Some("refresh_token"), true, true) => &REFRESH_CONFIDENTIAL_PKCE_FOR_ALL,
        (Some("refresh_token"), false, _) => &REFRESH_PUBLIC,
        _ => {
            return Err(TokenError::pipe(
                "invalid_grant_type",
                "grant_type must be 'authorization_code' or 'refresh_token'",
            ));
        }
    };
    validate(&obj, order, schema)?;
    let s = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_owned);
    let client_id = s("client_id").unwrap_or_default();
    Ok(
        if obj.get("grant_type").and_then(Value::as_str) == Some("authorization_code") {
            TokenInput::Exchange {
                client_id,
                code: s("code").unwrap_or_default(),
                redirect_uri: s("redirect_uri").unwrap_or_default(),
                client_secret: s("client_secret"),
                code_verifier: s("code_verifier"),
            }
        } else {
            TokenInput::Refresh {
                client_id,
                refresh_token: s("refresh_token").unwrap_or_default(),
                client_secret: s("client_secret"),
            }
        },
    )
}

/// JavaScript's falsy JSON values: `null`, `false`, `0` and `""`.
fn is_falsy(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(_) | Value::Object(_) => false,
    }
}

/// class-validator with `whitelist + forbidNonWhitelisted`, formatted as the pipe's
/// `formatErrors`: unknown properties first (in body order), then each declared property that is
/// not a string (`@IsOptional` skips null and absent values), as
/// `"<prop> property is wrong,<constraints> "` joined with `", "`.
fn validate(obj: &Map<String, Value>, order: &[String], schema: &[Prop]) -> Result<(), TokenError> {
    let mut errors = Vec::new();
    // Body order when known; the map's own order for keys the order list lacks.
    let keys = order
        .iter()
        .filter(|k| obj.contains_key(k.as_str()))
        .chain(obj.keys().filter(|k| !order.contains(k)));
    for key in keys {
        if !schema.iter().any(|p| p.name == key) {
            errors.push(format!(
                "{key} property is wrong,property {key} should not exist "
            ));
        }
    }
    for p in schema {
        let v = obj.get(p.name);
        let skip = p.optional && matches!(v, None | Some(Value::Null));
        if !skip && !matches!(v, Some(Value::String(_))) {
            errors.push(format!(
                "{0} property is wrong,{0} must be a string ",
                p.name
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(TokenError::pipe("validation", errors.join(", ")))
    }
}

fn run(shared: &Shared, input: &TokenInput) -> Result<Minted, TokenError> {
    match input {
        TokenInput::Exchange {
            client_id,
            code,
            redirect_uri,
            client_secret,
            code_verifier,
        } => grants::exchange(
            shared,
            TokenEndpoint::V2,
            &ExchangeRequest {
                client_id,
                code,
                client_secret: client_secret.as_deref(),
                redirect_uri: Some(redirect_uri),
                code_verifier: code_verifier.as_deref(),
            },
        ),
        TokenInput::Refresh {
            client_id,
            refresh_token,
            client_secret,
        } => grants::refresh(
            shared,
            TokenEndpoint::V2,
            client_id,
            refresh_token,
            client_secret.as_deref(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: Value) -> String {
        let text = body.to_string();
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        let (parsed, order) = parse_body(&headers, text.as_bytes());
        pipe(parsed, &order, false)
            .unwrap_err()
            .description
            .into_owned()
    }

    #[test]
    fn unknown_properties_are_reported_in_body_order() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        let body = br#"{"zeta":1,"client_id":"c","grant_type":"refresh_token","refresh_token":"r","alpha":2}"#;
        let (parsed, order) = parse_body(&headers, body);
        assert_eq!(
            pipe(parsed, &order, false).unwrap_err().description,
            "zeta property is wrong,property zeta should not exist , alpha property is wrong,property alpha should not exist "
        );
    }

    #[test]
    fn pipe_texts() {
        assert_eq!(err(json!({})), "client_id is required");
        assert_eq!(err(json!([])), "client_id is required");
        assert_eq!(err(json!([{"client_id": "c"}])), "client_id is required");
        assert_eq!(err(json!(0)), "Body is required");
        assert_eq!(err(json!(false)), "Body is required");
        assert_eq!(err(json!("")), "Body is required");
        assert_eq!(err(json!(7)), "Body should be an object");
        assert_eq!(err(json!(true)), "Body should be an object");
        assert_eq!(
            err(
                json!({"client_id":"c","grant_type":"authorization_code","code":"x","redirect_uri":"u","client_secret":null})
            ),
            "client_secret property is wrong,client_secret must be a string "
        );
        assert_eq!(
            err(
                json!({"client_id":"c","grant_type":"refresh_token","refresh_token":"r","client_secret":null})
            ),
            "client_secret property is wrong,client_secret must be a string "
        );
        assert_eq!(
            err(
                json!({"client_id":"c","grant_type":"authorization_code","code":"x","redirect_uri":"u","client_secret":"s","code_verifier":"v"})
            ),
            "code_verifier property is wrong,property code_verifier should not exist "
        );
        assert_eq!(
            err(json!({"client_id":"c","grant_type":"password"})),
            "grant_type must be 'authorization_code' or 'refresh_token'"
        );
        assert_eq!(
            err(
                json!({"client_id":"c","grant_type":"refresh_token","refresh_token":"r","scope":"x"})
            ),
            "scope property is wrong,property scope should not exist "
        );
        assert_eq!(
            err(
                json!({"client_id":"c","grant_type":"authorization_code","redirect_uri":"u","code_verifier":"v"})
            ),
            "code property is wrong,code must be a string "
        );
        assert_eq!(
            err(
                json!({"client_id":"c","grant_type":"refresh_token","state":"s","refresh_token":1})
            ),
            "state property is wrong,property state should not exist , refresh_token property is wrong,refresh_token must be a string "
        );
    }
}
