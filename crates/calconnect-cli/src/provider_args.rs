//! Which provider and client the flags name (shared by `login` and `doctor`): a built-in profile
//! (cal.com, sandbox), `custom` with its endpoints, or a profile saved under a name.

use crate::custom::args::{CustomArgs, resolve};
use crate::custom::saved::{SavedProfile, SavedProfiles};
use crate::custom::secret::SecretSource;
use crate::exit::CliError;
use crate::local::{Home, ProviderSpec};
use calconnect::{ClientSecret, http::HttpClient};

/// Which provider and client.
#[derive(Debug, Clone, clap::Args)]
pub struct ProviderArgs {
    /// Provider: cal.com (default), sandbox (a local `calconnect sandbox`), custom (any OAuth 2.0
    /// server), or a profile saved with --save-as.
    #[arg(long, value_parser = parse_profile)]
    pub profile: Option<ProfileName>,
    /// OAuth client id (Cal.com and the sandbox: a PUBLIC client). Default for the sandbox:
    /// calconnect-cli.
    #[arg(long, env = "CALCONNECT_CLIENT_ID")]
    pub client_id: Option<String>,
    /// Sandbox base URL (with --profile sandbox), e.g. http://127.0.0.1:5555.
    #[arg(long, env = "CALCONNECT_SANDBOX_URL")]
    pub sandbox_url: Option<String>,
    /// Authorization endpoint (with --profile custom, unless --issuer).
    #[arg(long, value_name = "URL")]
    pub authorize_url: Option<String>,
    /// Token endpoint (with --profile custom, unless --issuer).
    #[arg(long, value_name = "URL")]
    pub token_url: Option<String>,
    #[command(flatten)]
    pub custom: CustomArgs,
}

impl ProviderArgs {
    /// Whether any provider flag was given.
    pub fn given(&self) -> bool {
        self.profile.is_some()
            || self.sandbox_url.is_some()
            || self.authorize_url.is_some()
            || self.token_url.is_some()
            || !self.custom.given().is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProfileName {
    CalCom,
    Sandbox,
    Custom,
    /// A profile saved with `--save-as`.
    Saved(String),
}

fn parse_profile(s: &str) -> Result<ProfileName, String> {
    match s.to_ascii_lowercase().as_str() {
        "cal.com" | "calcom" | "cal-com" => Ok(ProfileName::CalCom),
        "sandbox" => Ok(ProfileName::Sandbox),
        "custom" => Ok(ProfileName::Custom),
        _ => Ok(ProfileName::Saved(s.to_owned())),
    }
}

/// The provider and client the flags name.
#[derive(Debug)]
pub struct Chosen {
    pub spec: ProviderSpec,
    pub client_id: String,
    /// A client secret read now, from a flag or the environment (custom clients).
    pub secret: Option<(ClientSecret, SecretSource)>,
    /// The saved profile used, by name.
    pub saved: Option<(String, SavedProfile)>,
}

/// Resolves the flags. `wants_openid`: the requested scopes include `openid` (a discovered
/// userinfo endpoint then names the account). `http` fetches a discovery document (`--issuer`).
pub async fn choose(
    args: &ProviderArgs,
    wants_openid: bool,
    http: &HttpClient,
) -> Result<Chosen, CliError> {
    let client_id = args.client_id.clone().filter(|c| !c.trim().is_empty());
    let profile = args.profile.clone().unwrap_or(ProfileName::CalCom);
    let custom_flags = args.custom.given();
    if !matches!(profile, ProfileName::Custom) {
        let secret_given = args.custom.secret.given();
        if let Some(flag) = custom_flags
            .first()
            .copied()
            .or(secret_given.then_some("--client-secret-*"))
            .filter(|_| !matches!(profile, ProfileName::Saved(_)))
        {
            return Err(CliError::usage(format!(
                "{flag} is for --profile custom; Cal.com and the sandbox use a PUBLIC client with PKCE"
            )));
        }
    }
    let no_secret = |spec: ProviderSpec, id: String| Chosen {
        spec,
        client_id: id,
        secret: None,
        saved: None,
    };
    match profile {
        ProfileName::CalCom => {
            let id = client_id.ok_or_else(|| {
                CliError::usage(
                    "--profile cal.com needs your OAuth client id: pass --client-id ID or set CALCONNECT_CLIENT_ID (create a PUBLIC client at https://app.cal.com/settings/developer/oauth)",
                )
            })?;
            Ok(no_secret(ProviderSpec::CalCom, id))
        }
        ProfileName::Sandbox => {
            let url = args.sandbox_url.clone().ok_or_else(|| {
                CliError::usage(
                    "--profile sandbox needs --sandbox-url http://127.0.0.1:PORT (the address `calconnect sandbox` prints)",
                )
            })?;
            let url = url.trim_end_matches('/').to_owned();
            Ok(no_secret(
                ProviderSpec::Sandbox { url },
                client_id.unwrap_or_else(|| calconnect_sandbox::PUBLIC_CLIENT_ID.to_owned()),
            ))
        }
        ProfileName::Custom => {
            let resolved = resolve(
                args.authorize_url.as_deref(),
                args.token_url.as_deref(),
                &args.custom,
                wants_openid,
                http,
            )
            .await?;
            let id = client_id.ok_or_else(|| {
                CliError::usage("--profile custom needs --client-id ID (or CALCONNECT_CLIENT_ID)")
            })?;
            // Checked now, so a bad URL is a usage error before anything else happens.
            resolved.spec.profile(None)?;
            Ok(Chosen {
                spec: ProviderSpec::Custom(Box::new(resolved.spec)),
                client_id: id,
                secret: resolved.secret,
                saved: None,
            })
        }
        ProfileName::Saved(name) => saved(args, &name, &custom_flags),
    }
}

fn saved(args: &ProviderArgs, name: &str, custom_flags: &[&str]) -> Result<Chosen, CliError> {
    let home = Home::locate()?;
    let profile = SavedProfiles::load(&home)?.get(name)?.clone();
    let overridden = custom_flags
        .first()
        .copied()
        .or(args.authorize_url.as_ref().map(|_| "--authorize-url"))
        .or(args.token_url.as_ref().map(|_| "--token-url"))
        .or(args.sandbox_url.as_ref().map(|_| "--sandbox-url"))
        .or(args
            .client_id
            .as_ref()
            .filter(|id| **id != profile.client_id)
            .map(|_| "--client-id"));
    if let Some(flag) = overridden {
        return Err(CliError::usage(format!(
            "{flag} cannot change the saved profile `{name}`: log in with all the flags again and --save-as {name} to replace it"
        )));
    }
    let secret = args.custom.secret.read()?;
    if let (Some((_, source)), ProviderSpec::Custom(spec)) = (&secret, &profile.provider) {
        crate::custom::args::check(spec, Some(*source))?;
    }
    Ok(Chosen {
        spec: profile.provider.clone(),
        client_id: profile.client_id.clone(),
        secret,
        saved: Some((name.to_owned(), profile)),
    })
}
