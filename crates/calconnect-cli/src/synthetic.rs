//! `calconnect doctor --synthetic`: a full flow against the sandbox, as a browser would walk it
//! (sign in as the seed's first user, consent, callback), then the code exchange and `/v2/me`.
//! Nothing is stored, and no refresh is made: a refresh would rotate (and so kill) the refresh
//! token of a real login of the same user (calcom-facts.md §3.3).

use crate::doctor_cmd::Outcome;
use calconnect::{
    AuthorizationFlow, AuthorizeOptions, Callback, ClientConfig, HttpClient, HttpConfig,
    ProviderProfile, SystemClock, UrlPolicy,
};
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

    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(15))
        .build()
        .map_err(|e| format!("the browser ({e})"))?;
    let login_url = format!("{}/auth/login", base.trim_end_matches('/'));
    let login = browser
        .post(&login_url)
        .form(&[("user_id", "1"), ("callbackUrl", "/_sandbox/")])
        .send()
        .await
        .map_err(|_| "signing in (the sandbox did not answer)".to_owned())?;
    if !login.status().is_redirection() {
        return Err(format!("signing in (HTTP {})", login.status().as_u16()));
    }
    let page = browser
        .get(url.as_str())
        .send()
        .await
        .map_err(|_| "the consent page".to_owned())?;
    let redirect = if page.status().is_redirection() {
        location(&page)?
    } else {
        let html = page
            .text()
            .await
            .map_err(|_| "the consent page".to_owned())?;
        let mut form = hidden_inputs(&html);
        if form.is_empty() {
            return Err("the consent page (no form)".into());
        }
        form.push(("action".into(), "allow".into()));
        let submitted = browser
            .post(url.as_url().clone())
            .form(&form)
            .send()
            .await
            .map_err(|_| "submitting consent".to_owned())?;
        location(&submitted)?
    };
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

fn location(resp: &reqwest::Response) -> Result<String, String> {
    resp.headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| {
            format!(
                "consent (HTTP {} without a redirect)",
                resp.status().as_u16()
            )
        })
}

fn hidden_inputs(html: &str) -> Vec<(String, String)> {
    html.split("<input type=\"hidden\" name=\"")
        .skip(1)
        .filter_map(|rest| {
            let (name, rest) = rest.split_once("\" value=\"")?;
            let value = rest.split_once('"')?.0;
            Some((
                name.to_owned(),
                value
                    .replace("&quot;", "\"")
                    .replace("&lt;", "<")
                    .replace("&gt;", ">")
                    .replace("&#39;", "'")
                    .replace("&amp;", "&"),
            ))
        })
        .collect()
}
