//! `calconnect doctor` for a custom provider, in its own words (docs/architecture.md §3.8): the
//! discovery document, the token endpoint with the client's own authentication, and the
//! revocation, userinfo and introspection endpoints it is configured with. Harmless probes
//! only: an unknown grant type, an unknown token, no token. Never prints the client secret.

use crate::custom::{AuthMethod, CustomSpec, wording};
use crate::doctor_cmd::{Outcome, clock_outcome};
use crate::local::{self, Home, ProviderSpec};
use calconnect::{ClientSecret, ProviderProfile, RedirectUri};
use serde_json::Value;

fn ok(s: impl Into<String>) -> Outcome {
    Outcome::Ok(s.into())
}

fn fail(problem: impl Into<String>, fix: impl Into<String>) -> Outcome {
    Outcome::Fail(problem.into(), fix.into())
}

/// What the probes need.
pub struct Probe<'a> {
    pub http: &'a reqwest::Client,
    pub spec: &'a CustomSpec,
    pub client_id: &'a str,
    /// The client secret, when the client is confidential and it could be read.
    pub secret: Option<&'a ClientSecret>,
    /// Where the secret came from, for messages.
    pub secret_source: Option<&'a str>,
}

impl Probe<'_> {
    /// A POST with the client's authentication (RFC 6749 §2.3.1: Basic with the
    /// form-urlencoded id and secret, or both in the body).
    fn post(&self, url: &str, fields: &[(&str, &str)]) -> reqwest::RequestBuilder {
        let encode =
            |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let mut body: Vec<(String, String)> = fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let request = self.http.post(url).header("accept", "application/json");
        match (self.spec.auth_method, self.secret) {
            (AuthMethod::ClientSecretBasic, Some(secret)) => {
                let request = request
                    .basic_auth(encode(self.client_id), Some(encode(secret.expose_secret())));
                request.form(&body)
            }
            (AuthMethod::ClientSecretPost, Some(secret)) => {
                body.push(("client_id".into(), self.client_id.to_owned()));
                body.push(("client_secret".into(), secret.expose_secret().to_owned()));
                request.form(&body)
            }
            _ => {
                body.push(("client_id".into(), self.client_id.to_owned()));
                request.form(&body)
            }
        }
    }

    fn who(&self) -> String {
        format!(
            "client `{}` with {}",
            self.client_id,
            wording::authentication(self.spec, self.secret_source)
        )
    }

    fn fix_client(&self) -> String {
        "check --client-id, the client secret and --auth-method (as registered at the provider)"
            .to_owned()
    }
}

fn unreachable(url: &str, e: &reqwest::Error) -> Outcome {
    let why = if e.is_timeout() {
        "timed out"
    } else {
        "connection failed"
    };
    fail(
        format!("cannot reach {url} ({why})"),
        "check the URL and your network (or a proxy)",
    )
}

async fn answer(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The discovery document, when the spec came from one (`--issuer`).
pub async fn discovery(probe: &Probe<'_>) -> Option<Outcome> {
    let issuer = probe.spec.issuer.as_deref()?;
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    Some(match probe.http.get(&url).send().await {
        Err(e) => unreachable(&url, &e),
        Ok(r) => match answer(r).await {
            (200, doc) if doc["issuer"] == issuer => ok(format!("{url} names the issuer {issuer}")),
            (200, doc) => fail(
                format!("{url} names the issuer {}, not {issuer}", doc["issuer"]),
                "log in again with --issuer exactly as the provider names itself",
            ),
            (status, _) => fail(
                format!("{url} answered HTTP {status}"),
                "check --issuer, or give --authorize-url and --token-url instead",
            ),
        },
    })
}

/// The token endpoint: an unknown grant type with the client's authentication. An RFC 6749
/// server checks the client first, so `400 unsupported_grant_type` also says the client
/// authentication was accepted; `401 invalid_client` that it was not. Returns the endpoint's
/// outcome and the clock check (from its `Date` header).
pub async fn token_endpoint(probe: &Probe<'_>) -> (Outcome, Outcome) {
    let url = &probe.spec.token_url;
    let response = match probe
        .post(url, &[("grant_type", "calconnect_doctor_probe")])
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => return (unreachable(url, &e), unreachable(url, &e)),
    };
    let clock = clock_outcome(response.headers().get(http::header::DATE));
    let endpoint = match answer(response).await {
        (400, body)
            if body["error"] == "unsupported_grant_type"
                || body["error"] == "invalid_request"
                || body["error"] == "invalid_grant" =>
        {
            ok(format!(
                "{url} answers like an OAuth 2.0 token endpoint (400 {} for an unknown grant type) and accepted {}",
                body["error"].as_str().unwrap_or(""),
                probe.who()
            ))
        }
        (400 | 401, body)
            if body["error"] == "invalid_client" || body["error"] == "unauthorized_client" =>
        {
            fail(
                format!(
                    "{url} does not accept {} ({})",
                    probe.who(),
                    body["error"].as_str().unwrap_or("")
                ),
                probe.fix_client(),
            )
        }
        (status, body) => fail(
            format!(
                "{url} answered HTTP {status}{}",
                body["error"]
                    .as_str()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_else(|| " without an OAuth error".into())
            ),
            "check --token-url (the provider's token endpoint)",
        ),
    };
    (endpoint, clock)
}

/// A POST with the client's authentication that a working endpoint answers as `accepts` says;
/// `invalid_client` means the client (or its secret, or method) is wrong; anything else, the URL.
async fn authenticated(
    probe: &Probe<'_>,
    url: &str,
    fields: &[(&str, &str)],
    accepts: fn(u16, &Value) -> bool,
    done: &str,
    fix: &str,
) -> Outcome {
    match probe.post(url, fields).send().await {
        Err(e) => unreachable(url, &e),
        Ok(r) => match answer(r).await {
            (status, body) if accepts(status, &body) => ok(format!("{url} {done} {}", probe.who())),
            (status, body) if body["error"] == "invalid_client" => fail(
                format!("{url} does not accept {} (HTTP {status})", probe.who()),
                probe.fix_client(),
            ),
            (status, _) => fail(format!("{url} answered HTTP {status}"), fix),
        },
    }
}

/// RFC 7009: revoking an unknown token answers 200 (§2.2), so a probe with a made-up token
/// checks the endpoint and the client's authentication without harm.
pub async fn revocation(probe: &Probe<'_>) -> Option<Outcome> {
    let url = probe.spec.revocation_url.as_deref()?;
    let fields = [
        ("token", "calconnect-doctor-probe"),
        ("token_type_hint", "access_token"),
    ];
    Some(
        authenticated(
            probe,
            url,
            &fields,
            |status, _| status == 200,
            "accepts revocation requests from",
            "check --revocation-url (the provider's RFC 7009 endpoint)",
        )
        .await,
    )
}

/// A userinfo endpoint answers 401 without a token (RFC 6750 §3).
pub async fn userinfo(probe: &Probe<'_>) -> Option<Outcome> {
    let url = probe.spec.userinfo_url.as_deref()?;
    Some(match probe.http.get(url).send().await {
        Err(e) => unreachable(url, &e),
        Ok(r) => match r.status().as_u16() {
            401 => ok(format!(
                "{url} asks for a token (401), as a userinfo endpoint does"
            )),
            status => fail(
                format!(
                    "{url} answered HTTP {status} without a token (a userinfo endpoint answers 401)"
                ),
                "check --userinfo-url (the provider's OpenID Connect userinfo endpoint)",
            ),
        },
    })
}

/// RFC 7662: an unknown token introspects as `{"active": false}`.
pub async fn introspection(probe: &Probe<'_>) -> Option<Outcome> {
    let url = probe.spec.introspection_url.as_deref()?;
    Some(
        authenticated(
            probe,
            url,
            &[("token", "calconnect-doctor-probe")],
            |status, body| status == 200 && body["active"] == false,
            "introspects (an unknown token is not active) for",
            "check --introspection-url (the provider's RFC 7662 endpoint)",
        )
        .await,
    )
}

/// All the checks of a custom provider, in order: discovery (when it came from one), the clock
/// and the token endpoint, then revocation, userinfo and introspection (skipped when not
/// configured).
pub async fn checks(probe: &Probe<'_>) -> Vec<(&'static str, Outcome)> {
    let mut all = Vec::new();
    if let Some(outcome) = discovery(probe).await {
        all.push(("discovery", outcome));
    }
    let (endpoint, clock) = token_endpoint(probe).await;
    all.push(("clock", clock));
    all.push(("token endpoint", endpoint));
    for (name, outcome) in [
        ("revocation endpoint", revocation(probe).await),
        ("userinfo endpoint", userinfo(probe).await),
        ("introspection endpoint", introspection(probe).await),
    ] {
        all.push((
            name,
            outcome.unwrap_or_else(|| Outcome::Skip("none configured".into())),
        ));
    }
    all
}

/// A custom client's sealed secret, opened with the key file (none if it cannot be).
pub fn sealed_secret(spec: &ProviderSpec) -> Option<(ClientSecret, &'static str)> {
    let ProviderSpec::Custom(custom) = spec else {
        return None;
    };
    let sealed = custom.client_secret.as_ref()?;
    let keyring = local::load_keyring(&Home::locate().ok()?, false).ok()?;
    sealed
        .open(&keyring)
        .ok()
        .map(|s| (s, "the saved profile (sealed with the key file)"))
}

/// A public or confidential client, and whether its secret is there.
pub fn client_policy(profile: &ProviderProfile, custom: &CustomSpec, has_secret: bool) -> Outcome {
    let confidential = custom.auth_method != AuthMethod::None;
    if confidential && !has_secret {
        return fail(
            format!(
                "a confidential client ({}) without a readable client secret",
                custom.auth_method.as_str()
            ),
            "pass --client-secret-file PATH, --client-secret-stdin or set CALCONNECT_CLIENT_SECRET (or put back the key file that sealed it)",
        );
    }
    ok(format!(
        "{} client ({}): {}",
        if confidential {
            "confidential"
        } else {
            "public"
        },
        custom.auth_method.as_str(),
        profile.pkce_use(confidential)
    ))
}

/// RFC 8252 §7.3, §8.3: https, or http for a loopback host; no fragment; registered exactly.
pub fn redirect_uri(uri: &str) -> Outcome {
    match RedirectUri::parse(uri) {
        Err(e) => fail(
            format!("{uri}: {e}"),
            "use https://…, or http://127.0.0.1:PORT/callback for a local tool (RFC 8252), without #fragment",
        ),
        Ok(_) => ok(format!(
            "{uri}; register exactly this URI (port included) for the client at the provider"
        )),
    }
}
