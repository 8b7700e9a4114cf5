//! [`AuthorizationFlow::identify`]: asking the identity source whose account a token set is for
//! (docs/architecture.md §3.8).

use super::{
    AccountIdentity, Identified, IdentifyError, IdentitySource, JsonPointer, MAX_IDENTITY_CHARS,
    SubjectSource,
};
use crate::claims::unverified_payload;
use crate::endpoint::EndpointUrl;
use crate::errors::{ProtocolError, TransientError};
use crate::flow::AuthorizationFlow;
use crate::http::{PreparedRequest, RawResponse, TransportErrorKind};
use crate::me::MeError;
use crate::secret::AccessToken;
use crate::store::CalOwner;
use crate::token_request::{Revocation, revocation_request};
use crate::token_response::TokenSet;
use http::header::{ACCEPT, AUTHORIZATION};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use serde_json::Value;

impl AuthorizationFlow {
    /// Names the account of `tokens` with the profile's identity strategy
    /// ([`IdentitySource`]). For Cal.com: the claims, else `GET /v2/me`; with `profile_lookup`,
    /// `/v2/me` is asked even when the claims name the account, to get the profile (if that
    /// fails, the claims alone identify the account and [`Identified::user`] is `None`).
    ///
    /// # Errors
    /// [`IdentifyError`].
    #[tracing::instrument(name = "calconnect.identify", skip_all)]
    pub async fn identify(
        &self,
        tokens: &TokenSet,
        profile_lookup: bool,
    ) -> Result<Identified, IdentifyError> {
        let subject = |source, value: Option<String>, what, pointer: &JsonPointer| {
            checked(value)
                .map(|value| Identified {
                    account: AccountIdentity::Subject { source, value },
                    user: None,
                })
                .ok_or_else(|| IdentifyError::MissingValue {
                    answer: what,
                    pointer: pointer.clone(),
                })
        };
        match &self.profile().identity {
            IdentitySource::CalCom => self.identify_cal_com(tokens, profile_lookup).await,
            IdentitySource::Label(label) => Ok(Identified {
                account: AccountIdentity::Label(label.clone()),
                user: None,
            }),
            IdentitySource::Claims { pointer } => {
                let payload = tokens
                    .id_token
                    .as_ref()
                    .and_then(|t| unverified_payload(t.expose_secret()))
                    .or_else(|| unverified_payload(tokens.access_token.expose_secret()))
                    .ok_or(IdentifyError::NoClaims)?;
                let value = pointer.read(&Value::Object(payload));
                subject(SubjectSource::Claims, value, "token claims", pointer)
            }
            IdentitySource::Userinfo { url, pointer } => {
                let answer = self.userinfo(url, &tokens.access_token).await?;
                let value = pointer.read(&answer);
                subject(SubjectSource::Userinfo, value, "userinfo answer", pointer)
            }
            IdentitySource::Introspection { url, pointer } => {
                let answer = self.introspect(url, &tokens.access_token).await?;
                if answer.get("active") != Some(&Value::Bool(true)) {
                    return Err(IdentifyError::Inactive);
                }
                let value = pointer.read(&answer);
                subject(
                    SubjectSource::Introspection,
                    value,
                    "introspection answer",
                    pointer,
                )
            }
        }
    }

    async fn identify_cal_com(
        &self,
        tokens: &TokenSet,
        profile_lookup: bool,
    ) -> Result<Identified, IdentifyError> {
        let claimed = tokens.identity;
        let user = if claimed.is_none() || profile_lookup {
            match self.me(&tokens.access_token).await {
                Ok(user) => Some(user),
                Err(MeError::NotSupported) if claimed.is_some() => None,
                // The claims name the account: the profile is a nicety, not a reason to refuse
                // the connection.
                Err(e) if claimed.is_some() => {
                    tracing::info!(error = %e, "the profile lookup failed; connecting without it");
                    None
                }
                Err(e) => return Err(IdentifyError::Me(e)),
            }
        } else {
            None
        };
        // Claims first: for a team token `/v2/me` answers with the team owner's profile.
        let owner = match (claimed, &user) {
            (Some(owner), _) => owner,
            (None, Some(user)) => CalOwner::User(user.id),
            (None, None) => return Err(IdentifyError::Me(MeError::NotSupported)),
        };
        Ok(Identified {
            account: AccountIdentity::Cal(owner),
            user,
        })
    }

    async fn userinfo(
        &self,
        url: &EndpointUrl,
        token: &AccessToken,
    ) -> Result<Value, IdentifyError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            ACCEPT,
            HeaderValue::from_static("application/json, application/jwt"),
        );
        let mut bearer = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
            .map_err(|_| IdentifyError::Protocol(ProtocolError::MissingAccessToken))?;
        bearer.set_sensitive(true);
        headers.insert(AUTHORIZATION, bearer);
        let request = PreparedRequest {
            method: Method::GET,
            url: url.as_url().clone(),
            headers,
            body: None,
        };
        let response = self.send_identity(request).await?;
        answer_json(&response, "userinfo")
    }

    async fn introspect(
        &self,
        url: &EndpointUrl,
        token: &AccessToken,
    ) -> Result<Value, IdentifyError> {
        // RFC 7662 §2.1: the same `token` / `token_type_hint` form and client authentication as
        // revocation (RFC 7009 §2.1).
        let request = revocation_request(
            url,
            self.profile().client_auth,
            self.client(),
            &Revocation {
                token: token.expose_secret(),
                hint: "access_token",
            },
        );
        let response = self.send_identity(request).await?;
        answer_json(&response, "introspection")
    }

    async fn send_identity(&self, request: PreparedRequest) -> Result<RawResponse, IdentifyError> {
        self.http().send(request).await.map_err(|e| match e.kind() {
            TransportErrorKind::TooLarge { limit } => {
                IdentifyError::Protocol(ProtocolError::Oversized { limit })
            }
            _ => IdentifyError::Transient(TransientError::Transport(e)),
        })
    }
}

/// A 2xx JSON object answer (or a JWT's payload, for a signed userinfo answer).
fn answer_json(response: &RawResponse, endpoint: &'static str) -> Result<Value, IdentifyError> {
    let status = response.status;
    if response.is_html() {
        return Err(IdentifyError::Transient(TransientError::HtmlErrorPage {
            status: status.as_u16(),
        }));
    }
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        return Err(IdentifyError::Transient(TransientError::ServerError {
            status: status.as_u16(),
            error: None,
        }));
    }
    if !status.is_success() {
        return Err(IdentifyError::Refused {
            endpoint,
            status: status.as_u16(),
        });
    }
    let malformed = || {
        IdentifyError::Protocol(ProtocolError::MalformedBody {
            status: status.as_u16(),
        })
    };
    match serde_json::from_slice::<Value>(&response.body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(malformed()),
        Err(_) => std::str::from_utf8(&response.body)
            .ok()
            .and_then(|text| unverified_payload(text.trim()))
            .map(Value::Object)
            .ok_or_else(malformed),
    }
}

/// An account name as kept: 1 to 255 characters, no control characters.
fn checked(value: Option<String>) -> Option<String> {
    value.filter(|v| {
        !v.is_empty() && v.chars().count() <= MAX_IDENTITY_CHARS && !v.chars().any(char::is_control)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_names_are_checked() {
        assert_eq!(checked(Some("ok".into())).as_deref(), Some("ok"));
        assert_eq!(checked(Some(String::new())), None);
        assert_eq!(checked(Some("a\u{7}".into())), None);
    }

    #[test]
    fn answers() {
        let response = |status: u16, content_type: &str, body: &str| RawResponse {
            status: StatusCode::from_u16(status).unwrap(),
            headers: {
                let mut h = HeaderMap::new();
                h.insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_str(content_type).unwrap(),
                );
                h
            },
            body: secrecy::zeroize::Zeroizing::new(body.as_bytes().to_vec()),
        };
        let ok = answer_json(
            &response(200, "application/json", r#"{"sub":"x"}"#),
            "userinfo",
        );
        assert_eq!(ok.unwrap()["sub"], "x");
        let jwt = format!(
            "eyJhbGciOiJSUzI1NiJ9.{}.c2ln",
            base64::Engine::encode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                r#"{"sub":"y"}"#
            )
        );
        let signed = answer_json(&response(200, "application/jwt", &jwt), "userinfo");
        assert_eq!(signed.unwrap()["sub"], "y");
        assert!(matches!(
            answer_json(&response(401, "application/json", "{}"), "userinfo"),
            Err(IdentifyError::Refused {
                endpoint: "userinfo",
                status: 401
            })
        ));
        assert!(matches!(
            answer_json(&response(503, "text/plain", "down"), "userinfo"),
            Err(IdentifyError::Transient(_))
        ));
        assert!(matches!(
            answer_json(&response(200, "application/json", "[1]"), "userinfo"),
            Err(IdentifyError::Protocol(_))
        ));
    }
}
