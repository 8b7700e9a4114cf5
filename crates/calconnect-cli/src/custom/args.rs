//! The flags of `--profile custom`, and how they (or the issuer's discovery document) become a
//! [`CustomSpec`].

use super::secret::{SecretArgs, SecretSource};
use super::{AuthMethod, CustomSpec, Delimiter, url_policy};
use crate::exit::CliError;
use calconnect::discovery::{DiscoveryError, discover};
use calconnect::{ClientSecret, http::HttpClient};

fn parse_on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("`{s}`: use on or off")),
    }
}

/// Flags that only `--profile custom` reads.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CustomArgs {
    /// Issuer identifier (with --profile custom): the endpoints are read from its discovery
    /// document (/.well-known/openid-configuration, RFC 8414) instead of --authorize-url and
    /// --token-url.
    #[arg(long, value_name = "URL")]
    pub issuer: Option<String>,
    /// RFC 7009 revocation endpoint (custom): `connections delete` revokes the tokens there, and a
    /// login that cannot tell whose account it got revokes what it received.
    #[arg(long, value_name = "URL")]
    pub revocation_url: Option<String>,
    /// OpenID Connect userinfo endpoint (custom): names the account (its `sub`, or
    /// --identity-claim).
    #[arg(long, value_name = "URL")]
    pub userinfo_url: Option<String>,
    /// RFC 7662 introspection endpoint (custom): names the account when there is no userinfo
    /// endpoint.
    #[arg(long, value_name = "URL")]
    pub introspection_url: Option<String>,
    /// Where the account's name is (custom): a claim name (`sub`, `email`) or a JSON pointer
    /// (`/data/id`) into the userinfo or introspection answer; without those endpoints, the claim
    /// of the ID token (or a JWT access token) to read. Without any of the three, the connection
    /// is named by --name.
    #[arg(long, value_name = "CLAIM")]
    pub identity_claim: Option<String>,
    /// API root for `calconnect api` (custom), e.g. https://api.example.com/v1.
    #[arg(long, value_name = "URL")]
    pub api_base: Option<String>,
    /// Client authentication (custom): none (a public client), client_secret_post or
    /// client_secret_basic. Default: none without a secret, client_secret_basic with one (or
    /// what the discovery document lists).
    #[arg(long, value_name = "METHOD", value_parser = AuthMethod::parse)]
    pub auth_method: Option<AuthMethod>,
    /// PKCE S256 (custom): on (default) or off. Public clients always use it.
    #[arg(long, value_name = "on|off", value_parser = parse_on_off)]
    pub pkce: Option<bool>,
    /// How the provider separates scopes (custom): space (default, RFC 6749) or comma.
    #[arg(long, value_name = "space|comma", value_parser = Delimiter::parse)]
    pub scope_delimiter: Option<Delimiter>,
    #[command(flatten)]
    pub secret: SecretArgs,
}

impl CustomArgs {
    /// The custom-only flags given, by name (the secret flags excepted).
    pub fn given(&self) -> Vec<&'static str> {
        [
            ("--issuer", self.issuer.is_some()),
            ("--revocation-url", self.revocation_url.is_some()),
            ("--userinfo-url", self.userinfo_url.is_some()),
            ("--introspection-url", self.introspection_url.is_some()),
            ("--identity-claim", self.identity_claim.is_some()),
            ("--api-base", self.api_base.is_some()),
            ("--auth-method", self.auth_method.is_some()),
            ("--pkce", self.pkce.is_some()),
            ("--scope-delimiter", self.scope_delimiter.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, given)| given.then_some(name))
        .collect()
    }
}

/// A resolved custom provider and the client secret read for it (sealed by the caller).
#[derive(Debug)]
pub struct Resolved {
    pub spec: CustomSpec,
    pub secret: Option<(ClientSecret, SecretSource)>,
}

/// Builds the spec from the flags; with `--issuer`, from the discovery document first
/// (explicit URL flags win). `wants_openid`: the scopes ask for `openid`, so a discovered
/// userinfo endpoint can name the account.
pub async fn resolve(
    authorize_url: Option<&str>,
    token_url: Option<&str>,
    args: &CustomArgs,
    wants_openid: bool,
    http: &HttpClient,
) -> Result<Resolved, CliError> {
    let secret = args.secret.read()?;
    let named_identity = args.userinfo_url.is_some() || args.introspection_url.is_some();
    let mut spec = match &args.issuer {
        Some(issuer) => {
            let m = discover(http, issuer, url_policy())
                .await
                .map_err(|e| discovery_error(&e))?;
            let method = args
                .auth_method
                .unwrap_or_else(|| AuthMethod::from(m.default_auth_method(secret.is_some())));
            if !m.supports_auth_method(method.as_str()) {
                eprintln!(
                    "warning: the provider's discovery document does not list {} among its token_endpoint_auth_methods_supported",
                    method.as_str()
                );
            }
            if args.pkce != Some(false)
                && !m.code_challenge_methods.is_empty()
                && !m.code_challenge_methods.iter().any(|c| c == "S256")
            {
                eprintln!(
                    "warning: the provider does not list PKCE S256 among its code_challenge_methods_supported"
                );
            }
            let provider = m.custom_provider(method.library());
            CustomSpec {
                authorize_url: provider.authorize_url,
                token_url: provider.token_url,
                issuer: Some(m.issuer.clone()).filter(|_| provider.issuer.is_some()),
                revocation_url: provider.revocation_url,
                userinfo_url: m
                    .userinfo_endpoint
                    .filter(|_| wants_openid && !named_identity && args.identity_claim.is_none())
                    .map(|u| u.as_str().to_owned()),
                introspection_url: None,
                identity_claim: None,
                api_base: None,
                auth_method: method,
                pkce: true,
                scope_delimiter: Delimiter::Space,
                client_secret: None,
            }
        }
        None => {
            let (Some(authorize_url), Some(token_url)) = (authorize_url, token_url) else {
                return Err(CliError::usage(
                    "--profile custom needs --issuer URL (discovery), or --authorize-url URL and --token-url URL",
                ));
            };
            CustomSpec {
                authorize_url: authorize_url.to_owned(),
                token_url: token_url.to_owned(),
                issuer: None,
                revocation_url: None,
                userinfo_url: None,
                introspection_url: None,
                identity_claim: None,
                api_base: None,
                auth_method: args.auth_method.unwrap_or(if secret.is_some() {
                    AuthMethod::ClientSecretBasic
                } else {
                    AuthMethod::None
                }),
                pkce: true,
                scope_delimiter: Delimiter::Space,
                client_secret: None,
            }
        }
    };
    if let Some(url) = authorize_url {
        spec.authorize_url = url.to_owned();
    }
    if let Some(url) = token_url {
        spec.token_url = url.to_owned();
    }
    let set = |field: &mut Option<String>, value: &Option<String>| {
        if value.is_some() {
            field.clone_from(value);
        }
    };
    set(&mut spec.revocation_url, &args.revocation_url);
    set(&mut spec.userinfo_url, &args.userinfo_url);
    set(&mut spec.introspection_url, &args.introspection_url);
    set(&mut spec.identity_claim, &args.identity_claim);
    set(&mut spec.api_base, &args.api_base);
    spec.pkce = args.pkce.unwrap_or(true);
    spec.scope_delimiter = args.scope_delimiter.unwrap_or_default();
    check(&spec, secret.as_ref().map(|(_, s)| *s))?;
    Ok(Resolved { spec, secret })
}

/// The client authentication, the secret and PKCE must fit together.
pub fn check(spec: &CustomSpec, secret: Option<SecretSource>) -> Result<(), CliError> {
    match (spec.auth_method, secret) {
        (AuthMethod::None, Some(source)) => Err(CliError::usage(format!(
            "--auth-method none sends no client secret, but one was given ({}): drop it, or pass --auth-method client_secret_post or client_secret_basic",
            source.describe()
        ))),
        (method @ (AuthMethod::ClientSecretPost | AuthMethod::ClientSecretBasic), None) => {
            Err(CliError::usage(format!(
                "--auth-method {} needs the client secret: pass --client-secret-file PATH or --client-secret-stdin, or set {}",
                method.as_str(),
                super::secret::SECRET_ENV
            )))
        }
        (AuthMethod::None, None) if !spec.pkce => Err(CliError::usage(
            "a public client (--auth-method none) always uses PKCE: drop --pkce off",
        )),
        _ => Ok(()),
    }
}

impl From<calconnect::ClientAuthMethod> for AuthMethod {
    fn from(m: calconnect::ClientAuthMethod) -> Self {
        match m {
            calconnect::ClientAuthMethod::ClientSecretPost => Self::ClientSecretPost,
            calconnect::ClientAuthMethod::ClientSecretBasic => Self::ClientSecretBasic,
            _ => Self::None,
        }
    }
}

fn discovery_error(e: &DiscoveryError) -> CliError {
    let text = crate::fresh::chain(e);
    match e {
        DiscoveryError::Transient(_) => CliError::other(format!(
            "{text}; check the issuer URL and your network, or give --authorize-url and --token-url"
        )),
        _ => CliError::usage(text),
    }
}
