//! The example app's client of the broker's JSON API (what an app in any language would write):
//! connect sessions, connections, fresh access tokens, and the proxy to Cal.com API v2.

use calconnect::{http::HttpClientError, http::HttpConfig};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::time::Duration;

/// A connection as the broker's API shows it (the fields the app uses).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Conn {
    pub(crate) id: String,
    pub(crate) end_user_id: String,
    pub(crate) cal_identity: Identity,
    /// Who holds the Cal.com account, as Cal.com last said (null until it has).
    #[serde(default)]
    pub(crate) cal_profile: Option<Profile>,
    pub(crate) scopes: Vec<String>,
    pub(crate) status: String,
    pub(crate) status_reason: String,
    pub(crate) access_token_expires_at: Option<String>,
    pub(crate) last_refreshed_at: String,
    pub(crate) created_at: String,
}

impl Conn {
    /// Who the account is, for a list: `Alice Anderson (@alice)`, else the Cal.com id.
    pub(crate) fn account_label(&self) -> String {
        let id = || {
            format!(
                "Cal.com {} {}",
                self.cal_identity.kind, self.cal_identity.id
            )
        };
        let Some(p) = &self.cal_profile else {
            return id();
        };
        match (p.name.as_deref().or(p.email.as_deref()), &p.username) {
            (Some(name), Some(username)) => format!("{name} (@{username})"),
            (Some(name), None) => name.to_owned(),
            (None, Some(username)) => format!("@{username}"),
            (None, None) => id(),
        }
    }
}

/// `{name, email, username}` from Cal.com's `/v2/me`, as the broker keeps it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Profile {
    #[serde(default)]
    pub(crate) name: Option<String>,
    #[serde(default)]
    pub(crate) email: Option<String>,
    #[serde(default)]
    pub(crate) username: Option<String>,
}

/// `{kind, id}`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Identity {
    pub(crate) kind: String,
    pub(crate) id: i64,
}

/// One webhook delivery of the broker's log (the fields the dashboard shows).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Delivery {
    #[serde(default)]
    pub(crate) event_type: String,
    #[serde(default)]
    pub(crate) status: String,
    #[serde(default)]
    pub(crate) attempts: i64,
    #[serde(default)]
    pub(crate) last_status_code: Option<i64>,
    #[serde(default)]
    pub(crate) endpoint: String,
}

/// How a connect flow ended, as the broker tells it once to the app's backend
/// (`GET /api/v1/connect-sessions/{id}?result=…`).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct SessionResult {
    /// The app's user the session was made for.
    pub(crate) end_user_id: String,
    /// `created`, `updated`, `access_denied` or `error`.
    pub(crate) outcome: String,
    #[serde(default)]
    pub(crate) connection_id: Option<String>,
    #[serde(default)]
    pub(crate) error: Option<String>,
}

/// Cal.com API v2's success envelope, `{"status":"success","data":…}` (`docs/calcom.md` §5).
#[derive(Debug, Deserialize)]
struct Envelope<T> {
    data: T,
}

/// A failed call: the broker's error code (or `unreachable`) and status.
#[derive(Debug, Clone)]
pub(crate) struct CallError {
    pub(crate) status: u16,
    pub(crate) code: String,
}

impl CallError {
    fn unreachable(e: reqwest::Error) -> Self {
        tracing::warn!(error = %e.without_url(), "broker unreachable");
        Self {
            status: 0,
            code: "unreachable".into(),
        }
    }
}

/// The broker's API.
#[derive(Clone)]
pub(crate) struct BrokerApi {
    base: String,
    key: SecretString,
    http: reqwest::Client,
}

impl BrokerApi {
    /// A client of the broker at `base` (calconnect's hardened HTTP client: timeouts, no
    /// redirects; docs/architecture.md §6.1).
    pub(crate) fn new(base: String, key: SecretString) -> Result<Self, HttpClientError> {
        let config = HttpConfig::default()
            .connect_timeout(Duration::from_secs(5))
            .total_timeout(Duration::from_secs(30));
        let http = calconnect::http::reqwest_client(&config)?;
        Ok(Self { base, key, http })
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<(u16, Value), CallError> {
        let resp = req
            .bearer_auth(self.key.expose_secret())
            .send()
            .await
            .map_err(CallError::unreachable)?;
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        Ok((status, body))
    }

    async fn ok(&self, req: reqwest::RequestBuilder) -> Result<Value, CallError> {
        let (status, body) = self.send(req).await?;
        if (200..300).contains(&status) {
            Ok(body)
        } else {
            Err(CallError {
                status,
                code: body["error"]["code"]
                    .as_str()
                    .unwrap_or("unexpected")
                    .to_owned(),
            })
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    /// A connect link for `user` that comes back to `return_to`.
    pub(crate) async fn connect_session(
        &self,
        user: &str,
        return_to: &str,
    ) -> Result<String, CallError> {
        let body = serde_json::json!({"end_user_id": user, "return_to": return_to});
        let v = self
            .ok(self.http.post(self.url("/connect-sessions")).json(&body))
            .await?;
        v["connect_url"]
            .as_str()
            .map(str::to_owned)
            .ok_or(CallError {
                status: 200,
                code: "no_connect_url".into(),
            })
    }

    /// Redeems the one-time `result` that came back with connect session `session_id` (works
    /// once; a second time is a 410).
    pub(crate) async fn redeem(
        &self,
        session_id: &str,
        result: &str,
    ) -> Result<SessionResult, CallError> {
        let v = self
            .ok(self
                .http
                .get(self.url(&format!("/connect-sessions/{}", enc(session_id))))
                .query(&[("result", result)]))
            .await?;
        serde_json::from_value(v).map_err(|_| CallError {
            status: 200,
            code: "bad_json".into(),
        })
    }

    /// `user`'s connections.
    pub(crate) async fn connections(&self, user: &str) -> Result<Vec<Conn>, CallError> {
        let v = self
            .ok(self
                .http
                .get(self.url("/connections"))
                .query(&[("end_user_id", user)]))
            .await?;
        let list = v.get("connections").cloned().unwrap_or(v);
        serde_json::from_value(list).map_err(|_| CallError {
            status: 200,
            code: "bad_json".into(),
        })
    }

    /// One connection.
    pub(crate) async fn connection(&self, id: &str) -> Result<Conn, CallError> {
        let v = self
            .ok(self
                .http
                .get(self.url(&format!("/connections/{}", enc(id)))))
            .await?;
        serde_json::from_value(v).map_err(|_| CallError {
            status: 200,
            code: "bad_json".into(),
        })
    }

    /// Deletes a connection.
    pub(crate) async fn delete(&self, id: &str) -> Result<(), CallError> {
        self.ok(self
            .http
            .delete(self.url(&format!("/connections/{}", enc(id)))))
            .await
            .map(|_| ())
    }

    /// Refreshes the connection now (the broker's `/refresh`); the new token's expiry (the app
    /// never needs the token itself here).
    pub(crate) async fn refresh_now(&self, id: &str) -> Result<String, CallError> {
        let v = self
            .ok(self
                .http
                .post(self.url(&format!("/connections/{}/refresh", enc(id)))))
            .await?;
        Ok(v["expires_at"].as_str().unwrap_or_default().to_owned())
    }

    /// `GET` a Cal.com API v2 path (relative to `/v2/`, e.g. `me`) through the broker's proxy,
    /// with `cal-api-version: api_version`; the envelope's `data` as `T` (a typed model of
    /// `calconnect::api`). An answer that does not fit `T` is a `bad_json` error.
    pub(crate) async fn cal_get<T: DeserializeOwned>(
        &self,
        id: &str,
        path_and_query: &str,
        api_version: &str,
    ) -> Result<T, CallError> {
        let v = self
            .ok(self
                .http
                .get(self.url(&format!("/connections/{}/proxy/{path_and_query}", enc(id))))
                .header("cal-api-version", api_version))
            .await?;
        serde_json::from_value::<Envelope<T>>(v)
            .map(|e| e.data)
            .map_err(|_| CallError {
                status: 200,
                code: "bad_json".into(),
            })
    }

    /// The webhook delivery log (newest first, the latest 20), of one connection or all.
    pub(crate) async fn deliveries(
        &self,
        connection_id: Option<&str>,
    ) -> Result<Vec<Delivery>, CallError> {
        #[derive(Deserialize)]
        struct List {
            #[serde(default)]
            deliveries: Vec<Delivery>,
        }
        let v = self
            .ok(self
                .http
                .get(self.url("/webhook-deliveries"))
                .query(&[("limit", "20")])
                .query(&[("connection_id", connection_id)]))
            .await?;
        serde_json::from_value::<List>(v)
            .map(|l| l.deliveries)
            .map_err(|_| CallError {
                status: 200,
                code: "bad_json".into(),
            })
    }
}

fn enc(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes()).collect()
}
