//! A scripted browser for the sandbox's own pages (feature `browser`): sign in as a seeded user,
//! open an authorize URL, press "Allow" or "Go back" (for the personal account or a team), and
//! return where the sandbox redirects — never following the redirect, so the caller can assert
//! it or take it to its own callback.
//!
//! Every test, `calconnect doctor --synthetic` and the demos walk the consent pages through it
//! instead of each scraping the consent form themselves. It knows only the sandbox's HTML (the
//! hidden inputs of `src/oauth/html.rs`, the `action` button), not any client crate, so a client
//! bug cannot hide in it.
//!
//! ```no_run
//! # async fn run(sandbox: &calconnect_sandbox::Sandbox, authorize_url: &str)
//! # -> Result<(), calconnect_sandbox::browser::BrowserError> {
//! use calconnect_sandbox::browser::{Decision, Opened, SandboxBrowser};
//! let person = SandboxBrowser::new(sandbox.base_url())?;
//! person.sign_in(1).await?;
//! // The common case: allow, and get the redirect to the client's callback.
//! let callback = person.authorize(authorize_url, Decision::Allow, None).await?;
//! // Step by step: the consent page must show; answer it for the team `acme`.
//! match person.open(authorize_url).await? {
//!     Opened::Consent(form) => {
//!         let _ = person.submit(form, Decision::Allow, Some("team/acme")).await?;
//!     }
//!     Opened::Redirect(location) => println!("no consent page: {}", location.len()),
//! }
//! # Ok(()) }
//! ```

use reqwest::StatusCode;
use reqwest::cookie::Jar;
use reqwest::redirect::Policy;
use std::sync::Arc;
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
    /// The consent form's `action` value: `allow` or `deny`.
    pub fn action(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
        }
    }
}

/// Not a consent form `action` (`allow` or `deny`).
#[derive(Debug, Clone, thiserror::Error)]
#[error("a consent decision is `allow` or `deny`")]
pub struct UnknownDecision;

impl std::str::FromStr for Decision {
    type Err = UnknownDecision;

    /// `allow` or `deny`, as the consent form's `action` field.
    fn from_str(action: &str) -> Result<Self, Self::Err> {
        [Decision::Allow, Decision::Deny]
            .into_iter()
            .find(|d| d.action() == action)
            .ok_or(UnknownDecision)
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
    /// [`SandboxBrowser::consent`] was redirected instead of shown the consent page (a trusted
    /// client, an error, or no signed-in user).
    #[error("the sandbox redirected instead of showing the consent page")]
    NoConsentPage,
}

/// What opening an authorize URL showed.
#[derive(Debug, Clone)]
pub enum Opened {
    /// A redirect (`Location`): to the client (a trusted client, or an error sent back), or to
    /// the sandbox's sign-in.
    Redirect(String),
    /// The consent page, with its form.
    Consent(ConsentForm),
}

/// The consent page's form: the fields it carries back (hidden inputs, HTML entities decoded).
#[derive(Debug, Clone)]
pub struct ConsentForm {
    fields: Vec<(String, String)>,
}

impl ConsentForm {
    /// Every field, in page order.
    pub fn fields(&self) -> &[(String, String)] {
        &self.fields
    }

    /// The value of the field `name` (e.g. `csrf_token`, `state`).
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
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
    /// A browser for the sandbox at `base` (`http://127.0.0.1:<port>/`), with its own cookies.
    ///
    /// # Errors
    /// The HTTP client cannot be built (no TLS backend).
    pub fn new(base: &Url) -> Result<Self, BrowserError> {
        Self::with_cookie_jar(base, Arc::new(Jar::default()))
    }

    /// A browser whose cookies live in `jar`: share it with another client to play one person
    /// across several services (or add a sandbox session cookie to act as a signed-in browser).
    ///
    /// # Errors
    /// The HTTP client cannot be built (no TLS backend).
    pub fn with_cookie_jar(base: &Url, jar: Arc<Jar>) -> Result<Self, BrowserError> {
        // The sandbox depends on no client crate (docs/architecture.md §2.2), so it cannot use
        // calconnect's client builder; this client only ever talks to the local sandbox.
        #[allow(
            clippy::disallowed_methods,
            reason = "the scripted browser keeps cookies; see above"
        )]
        let builder = reqwest::Client::builder();
        let http = builder
            .cookie_provider(jar)
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

    /// Opens `authorize_url`: the consent page's form, or the redirect the sandbox answered
    /// with (303 See Other, not followed).
    ///
    /// # Errors
    /// The sandbox does not answer, answers with an error page, or the page has no form.
    pub async fn open(&self, authorize_url: &str) -> Result<Opened, BrowserError> {
        const STEP: &str = "opening the authorize URL";
        let page = self
            .http
            .get(authorize_url)
            .send()
            .await
            .map_err(|e| transport(STEP, &e))?;
        if page.status().is_redirection() {
            return see_other(&page, STEP).map(Opened::Redirect);
        }
        if page.status() != StatusCode::OK {
            return Err(BrowserError::Status {
                step: STEP,
                status: page.status().as_u16(),
            });
        }
        let html = page
            .text()
            .await
            .map_err(|e| transport("reading the consent page", &e))?;
        let fields = hidden_inputs(&html);
        if fields.is_empty() {
            return Err(BrowserError::NoForm);
        }
        Ok(Opened::Consent(ConsentForm { fields }))
    }

    /// Submits the consent form with `decision` and, where given, the `account` (`user` or
    /// `team/<slug>`, as the account selector offers with `show_account_selector=true`).
    /// Returns the redirect's `Location` (303 See Other, not followed).
    ///
    /// # Errors
    /// The sandbox does not answer or does not redirect (an error page).
    pub async fn submit(
        &self,
        form: ConsentForm,
        decision: Decision,
        account: Option<&str>,
    ) -> Result<String, BrowserError> {
        const STEP: &str = "submitting consent";
        let mut fields = form.fields;
        if let Some(account) = account {
            fields.retain(|(k, _)| k != "account");
            fields.push(("account".into(), account.into()));
        }
        fields.push(("action".into(), decision.action().into()));
        let mut post = self.base.clone();
        post.set_path("/auth/oauth2/authorize");
        let submitted = self
            .http
            .post(post)
            .form(&fields)
            .send()
            .await
            .map_err(|e| transport(STEP, &e))?;
        see_other(&submitted, STEP)
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
        match self.open(authorize_url).await? {
            Opened::Redirect(location) => Ok(location),
            Opened::Consent(form) => self.submit(form, decision, account).await,
        }
    }

    /// Like [`SandboxBrowser::authorize`], but the consent page must show: for tests of a flow
    /// that asks the person.
    ///
    /// # Errors
    /// As [`SandboxBrowser::authorize`], and [`BrowserError::NoConsentPage`] when the sandbox
    /// redirected at once.
    pub async fn consent(
        &self,
        authorize_url: &str,
        decision: Decision,
        account: Option<&str>,
    ) -> Result<String, BrowserError> {
        let Opened::Consent(form) = self.open(authorize_url).await? else {
            return Err(BrowserError::NoConsentPage);
        };
        self.submit(form, decision, account).await
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

/// The `Location` of the sandbox's 303 See Other (its only redirect status).
fn see_other(resp: &reqwest::Response, step: &'static str) -> Result<String, BrowserError> {
    let status = resp.status();
    resp.headers()
        .get(reqwest::header::LOCATION)
        .and_then(|l| l.to_str().ok())
        .filter(|_| status == StatusCode::SEE_OTHER)
        .map(str::to_owned)
        .ok_or(BrowserError::Status {
            step,
            status: status.as_u16(),
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
