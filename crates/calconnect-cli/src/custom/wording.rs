//! What went wrong with a custom provider, in its own words: no Cal.com wording, and the flags
//! that fix it (docs/architecture.md §3.8).

use super::CustomSpec;
use crate::exit::CliError;
use crate::fresh::chain;
use calconnect::connect::IdentityFailure;
use calconnect::{ExchangeError, IdentifyError};

/// How the client authenticated, for messages: `client_secret_basic with the client secret from
/// --client-secret-file`, or `no client secret (--auth-method none)`.
pub fn authentication(spec: &CustomSpec, secret_source: Option<&str>) -> String {
    match (spec.auth_method, secret_source) {
        (super::AuthMethod::None, _) => {
            "no client secret (--auth-method none, a public client)".to_owned()
        }
        (method, Some(source)) => format!(
            "the client secret from {source} sent with --auth-method {}",
            method.as_str()
        ),
        (method, None) => format!(
            "the saved client secret sent with --auth-method {}",
            method.as_str()
        ),
    }
}

/// A failed code exchange at a custom provider.
pub fn exchange_error(
    e: &ExchangeError,
    client_id: &str,
    spec: &CustomSpec,
    secret_source: Option<&str>,
) -> CliError {
    let text = chain(e);
    let refused = |code: &str| {
        CliError::auth(format!(
            "the provider refused client `{client_id}` ({code}) authenticated with {} ({text}): check the client secret and --auth-method (none, client_secret_post or client_secret_basic, as registered at the provider), then run `calconnect login` again",
            authentication(spec, secret_source)
        ))
    };
    match e {
        ExchangeError::InvalidClient { .. } => refused("invalid_client"),
        ExchangeError::UnauthorizedClient { .. } => refused("unauthorized_client"),
        x if x.is_transient() => CliError::other(format!(
            "{text}; the provider at {} may be down: try `calconnect login` again",
            spec.host()
        )),
        _ => CliError::auth(format!("{text}; run `calconnect login` again")),
    }
}

/// The account could not be identified (the tokens were revoked where possible).
pub fn identity_error(failure: &IdentityFailure) -> CliError {
    let text = chain(failure);
    if failure.error.is_transient() {
        return CliError::other(format!("{text}; try `calconnect login` again"));
    }
    let fix = match failure.error {
        IdentifyError::NoClaims | IdentifyError::MissingValue { .. } => {
            "name another claim with --identity-claim, use --userinfo-url or --introspection-url, or name the connection with --name instead"
        }
        _ => {
            "check --userinfo-url / --introspection-url, or leave them out and name the connection with --name"
        }
    };
    CliError::usage(format!("{text}; {fix}"))
}
