//! `calconnect connections delete`: revoke at the provider, then delete here, and say what
//! happened (the library's [`Connector::disconnect`], RFC 7009).

use crate::exit::CliError;
use crate::fresh::{chain, flow_for};
use crate::local::{self, Home, ProviderSpec, Record};
use calconnect::connect::Connector;
use calconnect::disconnect::{DisconnectError, Disconnected, TokensRevoked};
use calconnect::store::{Connection, ConnectionStore};
use calconnect::{SystemClock, http::HttpClient, http::HttpConfig};
use std::sync::Arc;

const REASON: &str = "deleted with `calconnect connections delete`";

/// Revokes `c`'s tokens (refresh token first) where its provider can, and deletes it unless a
/// revocation failed. Returns what the provider was told and whether it was deleted.
pub async fn disconnect(
    home: &Home,
    store: Arc<dyn ConnectionStore>,
    c: &Connection,
    record: &Record,
) -> Result<(TokensRevoked, bool), CliError> {
    let revocable =
        matches!(&record.provider, ProviderSpec::Custom(spec) if spec.revocation_url.is_some());
    if !revocable {
        // Nothing to tell the provider (Cal.com has no revocation endpoint, docs/calcom.md §4):
        // the tokens need not even be opened.
        store
            .delete_connection(c.id, REASON)
            .await
            .map_err(|e| CliError::other(format!("cannot delete: {e}")))?;
        return Ok((TokensRevoked::NotSupported, true));
    }
    let keyring = local::load_keyring(home, false)?;
    let http = HttpClient::new(HttpConfig::default())
        .map_err(|e| CliError::other(format!("cannot build the HTTP client: {e}")))?;
    let flow = flow_for(record, http, Some(&keyring))?;
    let connector = Connector::new(flow, store, Arc::new(keyring), Arc::new(SystemClock));
    connector
        .disconnect(c.id, REASON, false)
        .await
        .map(|Disconnected { revocation, deleted, .. }| (revocation, deleted))
        .map_err(|e| match e {
            DisconnectError::Unreadable { .. } => CliError::other(format!(
                "{}; put back the key file that sealed them, or pass --local-only to delete the connection here only",
                chain(&e)
            )),
            other => CliError::other(format!("cannot delete: {}", chain(&other))),
        })
}

/// What `connections delete` says after deleting connection `id`.
pub fn describe(id: &str, record: &Record, revocation: &TokensRevoked) -> String {
    match (&record.provider, revocation) {
        (ProviderSpec::Custom(spec), TokensRevoked::NotSupported) => format!(
            "Deleted connection {id}. No revocation endpoint is known for {} (log in with --revocation-url to have one), so its tokens stay valid there until they expire.",
            spec.host()
        ),
        (ProviderSpec::Custom(spec), revoked) => format!(
            "Revoked at {}: {revoked}. Deleted connection {id}.",
            spec.host()
        ),
        (_, _) => format!(
            "Deleted connection {id}. Its access token stays valid at Cal.com until it expires (Cal.com cannot revoke it)."
        ),
    }
}
