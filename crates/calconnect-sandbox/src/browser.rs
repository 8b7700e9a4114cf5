//! A scripted browser for the sandbox's own pages (feature `browser`): sign in as a seeded user,
//! open an authorize URL, press "Allow" or "Go back", and return where the sandbox redirects.
//!
//! Tests, `calconnect doctor --synthetic` and demos use it instead of each scraping the consent
//! form themselves. It knows only the sandbox's HTML (hidden inputs, the `action` button), not
//! any client crate, so a client bug cannot hide in it.

use reqwest::redirect::Policy;
use std::time::Duration;
use url::Url;

/// The person's choice on the consent page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// "Allow".
    Allow,
    /// "Go back" (Cal.com redirects with `error=access_denied`).
    Deny,
}

impl Decision {
    fn action(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
        }
    }
}

/// What went wrong while walking the pages. Names the step; never contains a URL (authorize
/// URLs carry `state` and PKCE challenges).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrowserError {
    #[error("{step}: the sandbox did not answer ({kind})")]
    Transport {
        step: &'static str,
        kind: &'static str,
    },
    #[error("{step}: unexpected HTTP {status}")]
    Status { step: &'static str, status: u16 },
    #[error("the consent page has no form (is this the sandbox?)")]
    NoForm,
}

/// A cookie-keeping HTTP client that never follows redirects.
#[derive(Debug, Clone)]
pub struct SandboxBrowser {
    http: reqwest::Client,
    base: Url,
}

fn transport(step: &'static str, e: &reqwest::Error) -> BrowserError {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection refused"
    } else {
        "transport error"
    };
    BrowserError::Transport { step, kind }
}

impl SandboxBrowser {
    /// A browser for the sandbox at `base` (`http://127.0.0.1:<port>/`).
    ///
    /// # Errors
    /// The HTTP client cannot be built (no TLS backend).
    pub fn new(base: &Url) -> Result<Self, BrowserError> {
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(Policy::none())
            .timeout(Duration::from_secs(15))
            .build()
            .map_err(|e| transport("building the browser", &e))?;
        Ok(Self {
            http,
            base: base.clone(),
        })
    }

    /// Signs in as the seeded user `user_id` (the sandbox has no passwords).
    ///
    /// # Errors
    /// The sandbox does not answer or does not accept the user.
    pub async fn sign_in(&self, user_id: i64) -> Result<(), BrowserError> {
        let mut url = self.base.clone();
        url.set_path("/auth/login");
        let resp = self
            .http
            .post(url)
            .form(&[
                ("user_id", user_id.to_string().as_str()),
                ("callbackUrl", "/_sandbox/"),
            ])
            .send()
            .await
            .map_err(|e| transport("signing in", &e))?;
        if !resp.status().is_redirection() {
            return Err(BrowserError::Status {
                step: "signing in",
                status: resp.status().as_u16(),
            });
        }
        Ok(())
    }

    /// Opens `authorize_url` and answers the consent page with `decision` (and, with
    /// `show_account_selector=true`, the `account` value such as `team/acme`). A trusted client
    /// or an error skips the page. Returns the redirect's `Location`.
    ///
    /// # Errors
    /// The sandbox does not answer, shows an error page instead of redirecting, or the page has
    /// no consent form.
    pub async fn authorize(
        &self,
        authorize_url: &str,
        decision: Decision,
        account: Option<&str>,
    ) -> Result<String, BrowserError> {
        let page = self
            .http
            .get(authorize_url)
            .send()
            .await
            .map_err(|e| transport("opening the authorize URL", &e))?;
        if page.status().is_redirection() {
            return location(&page, "opening the authorize URL");
        }
        if page.status() != reqwest::StatusCode::OK {
            return Err(BrowserError::Status {
                step: "opening the authorize URL",
                status: page.status().as_u16(),
            });
        }
        let html = page
            .text()
            .await
            .map_err(|e| transport("reading the consent page", &e))?;
        let mut form = hidden_inputs(&html);
        if form.is_empty() {
            return Err(BrowserError::NoForm);
        }
        if let Some(account) = account {
            form.retain(|(k, _)| k != "account");
            form.push(("account".into(), account.into()));
        }
        form.push(("action".into(), decision.action().into()));
        let mut post = self.base.clone();
        post.set_path("/auth/oauth2/authorize");
        let submitted = self
            .http
            .post(post)
            .form(&form)
            .send()
            .await
            .map_err(|e| transport("submitting consent", &e))?;
        location(&submitted, "submitting consent")
    }

    /// Signs in as `user_id` and allows `authorize_url`: the common case in one call.
    ///
    /// # Errors
    /// As [`SandboxBrowser::sign_in`] and [`SandboxBrowser::authorize`].
    pub async fn sign_in_and_allow(
        &self,
        user_id: i64,
        authorize_url: &str,
    ) -> Result<String, BrowserError> {
        self.sign_in(user_id).await?;
        self.authorize(authorize_url, Decision::Allow, None).await
    }
}

fn location(resp: &reqwest::Response, step: &'static str) -> Result<String, BrowserError> {
    resp.headers()
        .get(reqwest::header::LOCATION)
        .and_then(|l| l.to_str().ok())
        .map(str::to_owned)
        .ok_or(BrowserError::Status {
            step,
            status: resp.status().as_u16(),
        })
}

/// The hidden inputs of the consent form, HTML entities decoded.
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
