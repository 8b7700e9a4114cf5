//! The connector with a custom provider (issue 16) against npm `oidc-provider`
//! (docs/interop.md): accounts named by userinfo, introspection or ID-token claims, one
//! connection per account whatever the source, a label when there is no identity, tokens revoked
//! when the identity step fails, disconnecting with revocation, and discovery.

use super::interop::launcher::OidcProvider;
use super::interop::{browse, clients, flow_for, start_provider};
use calconnect::connect::{CompleteError, ConnectOutcome, Connected, Connector};
use calconnect::crypto::{KeyId, Keyring, SealingKey};
use calconnect::discovery::discover;
use calconnect::store::{CalOwner, ConnectionStore, EndUserId, MemoryStore};
use calconnect::{
    AccountIdentity, AuthorizationFlow, AuthorizeOptions, Callback, ClientAuthMethod, EndpointUrl,
    IdentifyError, IdentitySource, JsonPointer, SystemClock, UrlPolicy, http::HttpClient,
    http::HttpConfig,
};
use rand::rngs::OsRng;
use std::sync::Arc;

fn url(provider: &OidcProvider, path: &str) -> EndpointUrl {
    EndpointUrl::parse(
        &format!("{}{path}", provider.issuer),
        UrlPolicy::allow_insecure_loopback_http(),
    )
    .unwrap()
}

/// `flow`'s client at `flow`'s provider, identified by `identity`.
fn identified_by(flow: &AuthorizationFlow, identity: IdentitySource) -> AuthorizationFlow {
    AuthorizationFlow::new(
        flow.profile().clone().with_identity(identity),
        flow.client().clone(),
        HttpClient::new(HttpConfig::default()).unwrap(),
        Arc::new(SystemClock),
    )
}

fn connector(flow: AuthorizationFlow, store: Arc<MemoryStore>) -> Connector {
    let keyring = Keyring::new(vec![SealingKey::generate(
        KeyId::new("k1").unwrap(),
        &mut OsRng,
    )])
    .unwrap();
    Connector::new(flow, store, Arc::new(keyring), Arc::new(SystemClock))
}

/// Authorizes (the browser plays along) and completes with the connector.
async fn connect(connector: &Connector) -> Result<Connected, CompleteError> {
    let options = AuthorizeOptions::new(["openid", "offline_access"]).unwrap();
    let (authorize_url, pending) = connector.flow().start(&options, &mut OsRng);
    let redirect = browse(authorize_url.as_str()).await;
    let verified = pending
        .verify(
            Callback::from_redirect_url(&redirect).unwrap(),
            &SystemClock,
        )
        .unwrap();
    connector
        .complete(
            verified,
            EndUserId::new("cli").unwrap(),
            options.scopes(),
            &mut OsRng,
        )
        .await
}

#[allow(clippy::disallowed_methods)] // reason: a test's own HTTP client, reading the server's counters
async fn stats(provider: &OidcProvider) -> serde_json::Value {
    reqwest::get(format!("{}/__test/stats", provider.issuer))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn userinfo_introspection_and_claims_name_one_account_for_each_client_type() {
    let Some(provider) = start_provider().await else {
        return;
    };
    for (name, client, auth) in clients() {
        let store = Arc::new(MemoryStore::new(Arc::new(SystemClock)));
        let sources = [
            IdentitySource::Userinfo {
                url: url(&provider, "/me"),
                pointer: JsonPointer::sub(),
            },
            IdentitySource::Introspection {
                url: url(&provider, "/token/introspection"),
                pointer: JsonPointer::sub(),
            },
            IdentitySource::Claims {
                pointer: JsonPointer::parse("sub").unwrap(),
            },
        ];
        let mut owners = Vec::new();
        for (i, source) in sources.into_iter().enumerate() {
            let flow = identified_by(&flow_for(&provider, client.clone(), auth), source.clone());
            let connected = connect(&connector(flow, store.clone()))
                .await
                .unwrap_or_else(|e| panic!("{name} {source:?}: {e}"));
            let AccountIdentity::Subject { value, .. } = &connected.account else {
                panic!("{name}: {:?}", connected.account)
            };
            assert_eq!(value, "interop-user", "{name} {source:?}");
            let owner = connected.connection.identity.owner;
            assert!(matches!(owner, CalOwner::User(id) if id < 0), "{owner:?}");
            owners.push(owner);
            // One account, one connection: the second and third sources update the first.
            let expected = if i == 0 {
                ConnectOutcome::Created
            } else {
                ConnectOutcome::Updated
            };
            assert_eq!(connected.outcome, expected, "{name} {source:?}");
        }
        assert!(owners.windows(2).all(|w| w[0] == w[1]), "{owners:?}");
        assert_eq!(store.count_connections().await.unwrap(), 1);
    }
}

#[tokio::test]
async fn without_an_identity_source_the_label_names_the_connection() {
    let Some(provider) = start_provider().await else {
        return;
    };
    let (_, client, auth) = clients().remove(2);
    let flow = flow_for(&provider, client, auth);
    assert_eq!(
        flow.profile().identity(),
        &IdentitySource::Label("127.0.0.1".to_owned()),
        "default: the provider's host"
    );
    let store = Arc::new(MemoryStore::new(Arc::new(SystemClock)));
    let connector = connector(flow.clone(), store.clone());
    let first = connect(&connector).await.unwrap();
    assert_eq!(first.account, AccountIdentity::Label("127.0.0.1".into()));
    assert_eq!(
        connect(&connector).await.unwrap().outcome,
        ConnectOutcome::Updated
    );
    let flow = identified_by(&flow, IdentitySource::label("work").unwrap());
    let other = connect(&self::connector(flow, store.clone()))
        .await
        .unwrap();
    assert_eq!(other.outcome, ConnectOutcome::Created);
    assert_eq!(store.count_connections().await.unwrap(), 2);
}

#[tokio::test]
async fn a_failed_identity_step_revokes_the_tokens_received() {
    let Some(provider) = start_provider().await else {
        return;
    };
    let (_, client, auth) = clients().remove(0);
    let flow = identified_by(
        &flow_for(&provider, client, auth),
        IdentitySource::Claims {
            pointer: JsonPointer::parse("email").unwrap(),
        },
    );
    let store = Arc::new(MemoryStore::new(Arc::new(SystemClock)));
    let before = stats(&provider).await;
    let err = connect(&connector(flow, store.clone())).await.unwrap_err();
    let CompleteError::Identity(failure) = &err else {
        panic!("{err:?}")
    };
    assert!(
        matches!(failure.error, IdentifyError::MissingValue { .. }),
        "{err}"
    );
    assert!(failure.discarded.all_revoked(), "{err}");
    assert!(
        err.to_string().contains("the refresh token was revoked"),
        "{err}"
    );
    let after = stats(&provider).await;
    assert_eq!(
        after["refresh_token_destroyed"].as_u64().unwrap(),
        before["refresh_token_destroyed"].as_u64().unwrap() + 1
    );
    assert_eq!(store.count_connections().await.unwrap(), 0);
}

#[tokio::test]
async fn disconnect_revokes_then_deletes() {
    let Some(provider) = start_provider().await else {
        return;
    };
    let (_, client, auth) = clients().remove(1);
    let store = Arc::new(MemoryStore::new(Arc::new(SystemClock)));
    let connector = connector(flow_for(&provider, client, auth), store.clone());
    let connected = connect(&connector).await.unwrap();
    let done = connector
        .disconnect(connected.connection.id, "test", false)
        .await
        .unwrap();
    assert!(done.deleted && done.revocation.all_revoked(), "{done:?}");
    assert_eq!(
        done.revocation.to_string(),
        "the refresh token was revoked; the access token was revoked"
    );
    assert_eq!(store.count_connections().await.unwrap(), 0);
    let stats = stats(&provider).await;
    assert!(stats["grant_revoked"].as_u64().unwrap() >= 1, "{stats}");
}

#[tokio::test]
async fn discovery_finds_every_endpoint() {
    let Some(provider) = start_provider().await else {
        return;
    };
    let http = HttpClient::new(HttpConfig::default()).unwrap();
    let policy = UrlPolicy::allow_insecure_loopback_http();
    let m = discover(&http, &provider.issuer, policy).await.unwrap();
    assert_eq!(m.issuer, provider.issuer);
    assert_eq!(m.token_endpoint, url(&provider, "/token"));
    assert_eq!(m.authorization_endpoint, url(&provider, "/auth"));
    assert_eq!(
        m.revocation_endpoint,
        Some(url(&provider, "/token/revocation"))
    );
    assert_eq!(
        m.introspection_endpoint,
        Some(url(&provider, "/token/introspection"))
    );
    assert_eq!(m.userinfo_endpoint, Some(url(&provider, "/me")));
    assert!(m.iss_in_callbacks);
    assert_eq!(
        m.default_auth_method(true),
        ClientAuthMethod::ClientSecretBasic
    );
    // A trailing slash is another issuer (RFC 8414 §3.3).
    let err = discover(&http, &format!("{}/", provider.issuer), policy)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("names the issuer"), "{err}");
}
