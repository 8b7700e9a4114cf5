//! `calconnect doctor --synthetic`: a full flow against the sandbox, as a browser would walk it
//! (sign in as the seed's first user, consent, callback), then the code exchange and `/v2/me`.
//! Nothing is stored, and no refresh is made: a refresh would rotate (and so kill) the refresh
//! token of a real login of the same user (docs/calcom.md §3.4).

use crate::doctor_cmd::Outcome;
use calconnect::{
    AuthorizationFlow, AuthorizeOptions, Callback, ClientConfig, ProviderProfile, SystemClock,
    UrlPolicy, http::HttpClient, http::HttpConfig,
};
use calconnect_sandbox::browser::SandboxBrowser;
use calconnect_sandbox::{DEFAULT_PUBLIC_REDIRECT_URI, PUBLIC_CLIENT_ID};
use std::sync::Arc;

const FIX: &str = "restart `calconnect sandbox` and run `calconnect doctor --synthetic` again";

pub async fn run(base: &str) -> Outcome {
    match walk(base).await {
        Ok(who) => Outcome::Ok(format!(
            "signed in, consented, exchanged the code with PKCE and read /v2/me as {who}"
        )),
        Err(step) => Outcome::Fail(
            format!("the synthetic flow failed at {step}"),
            FIX.to_owned(),
        ),
    }
}

async fn walk(base: &str) -> Result<String, String> {
    let profile = ProviderProfile::sandbox(base, UrlPolicy::allow_insecure_loopback_http())
        .map_err(|e| format!("the profile ({e})"))?;
    let client = ClientConfig::public(PUBLIC_CLIENT_ID, DEFAULT_PUBLIC_REDIRECT_URI)
        .map_err(|e| format!("the client ({e})"))?;
    let http = HttpClient::new(HttpConfig::default()).map_err(|e| format!("HTTP ({e})"))?;
    let flow = AuthorizationFlow::new(profile, client, http, Arc::new(SystemClock));
    let options = AuthorizeOptions::new(["PROFILE_READ"]).map_err(|e| e.to_string())?;
    let (url, pending) = flow.start(&options, &mut rand::rngs::OsRng);

    let base_url = url::Url::parse(base).map_err(|_| "the sandbox URL".to_owned())?;
    let browser = SandboxBrowser::new(&base_url).map_err(|e| e.to_string())?;
    let redirect = browser
        .sign_in_and_allow(1, url.as_str())
        .await
        .map_err(|e| e.to_string())?;
    let callback =
        Callback::from_redirect_url(&redirect).map_err(|e| format!("the callback ({e})"))?;
    let verified = pending
        .verify(callback, &SystemClock)
        .map_err(|e| format!("the callback ({e})"))?;
    let tokens = flow
        .exchange(verified)
        .await
        .map_err(|e| format!("the code exchange ({e})"))?;
    let me = flow
        .me(&tokens.access_token)
        .await
        .map_err(|e| format!("/v2/me ({e})"))?;
    Ok(me.username.unwrap_or_else(|| format!("user {}", me.id)))
}
