//! A demo on port 0 in a temp folder, and a cookie-keeping client that walks the pages like a
//! browser without JavaScript (the sandbox's consent page through `SandboxBrowser`).
#![allow(dead_code)]

use calconnect_demo::{Demo, DemoOptions};
use calconnect_sandbox::browser::{Decision, SandboxBrowser};
use reqwest::StatusCode;
use reqwest::cookie::Jar;
use std::sync::Arc;

pub struct Running {
    pub demo: Demo,
    pub dir: tempfile::TempDir,
}

pub async fn start() -> Running {
    let dir = tempfile::tempdir().unwrap();
    let demo = Demo::start(DemoOptions::ephemeral(dir.path()))
        .await
        .unwrap();
    Running { demo, dir }
}

impl Running {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.demo.app_url())
    }
}

/// A browser: one cookie jar, redirects followed (it derefs to that client); `manual` shares the
/// jar and does not follow redirects.
pub struct Browser {
    follow: reqwest::Client,
    pub manual: reqwest::Client,
}

impl std::ops::Deref for Browser {
    type Target = reqwest::Client;

    fn deref(&self) -> &reqwest::Client {
        &self.follow
    }
}

#[allow(
    clippy::disallowed_methods,
    reason = "a test browser needs a cookie jar, which calconnect's hardened client never keeps"
)]
fn client(jar: &Arc<Jar>, follow: bool) -> reqwest::Client {
    let policy = if follow {
        reqwest::redirect::Policy::default()
    } else {
        reqwest::redirect::Policy::none()
    };
    reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(policy)
        .build()
        .unwrap()
}

/// A browser: cookies on, redirects followed.
pub fn browser() -> Browser {
    let jar = Arc::new(Jar::default());
    Browser {
        follow: client(&jar, true),
        manual: client(&jar, false),
    }
}

/// A browser that does not follow redirects.
pub fn browser_no_redirects() -> reqwest::Client {
    client(&Arc::new(Jar::default()), false)
}

pub struct Page {
    pub status: StatusCode,
    pub url: String,
    pub html: String,
}

pub async fn page(r: reqwest::Response) -> Page {
    Page {
        status: r.status(),
        url: r.url().to_string(),
        html: r.text().await.unwrap(),
    }
}

pub fn csrf(html: &str) -> String {
    let start = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    html[start..start + 64].to_owned()
}

pub fn location(r: &reqwest::Response) -> String {
    r.headers()["location"].to_str().unwrap().to_owned()
}

/// Signs `name` in to the app; returns the home page.
pub async fn sign_in(app: &Running, b: &reqwest::Client, name: &str) -> Page {
    page(
        b.post(app.url("/signin"))
            .form(&[("name", name)])
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// From the home page: Connect Cal.com; at the sandbox (through `SandboxBrowser`) sign in as
/// `cal_user` and answer the consent page (which must show) with `action`; then back to the app
/// like a browser. Returns the page the browser lands on.
pub async fn connect(app: &Running, b: &Browser, cal_user: i64, action: &str) -> Page {
    let link = connect_link(app, b).await;
    finish_link(app, b, &link, cal_user, action).await
}

/// From the home page: Connect Cal.com; returns the broker's connect link the app sent `b` to.
pub async fn connect_link(app: &Running, b: &Browser) -> String {
    let home = page(b.get(app.url("/")).send().await.unwrap()).await;
    let to_broker = b
        .manual
        .post(app.url("/connect"))
        .form(&[("csrf", csrf(&home.html))])
        .send()
        .await
        .unwrap();
    assert_eq!(to_broker.status(), StatusCode::SEE_OTHER);
    location(&to_broker)
}

/// Opens the connect link `link` in `b` and finishes the flow there: at the sandbox sign in as
/// `cal_user` and answer with `action`, then back to the app. Returns the page `b` lands on.
pub async fn finish_link(
    app: &Running,
    b: &Browser,
    link: &str,
    cal_user: i64,
    action: &str,
) -> Page {
    // The broker's 303 to Cal.com sets its binding cookie in this browser.
    let to_cal = b.manual.get(link).send().await.unwrap();
    assert_eq!(to_cal.status(), StatusCode::SEE_OTHER);
    let sandbox = app.demo.sandbox();
    let person = SandboxBrowser::new(sandbox.base_url()).unwrap();
    person.sign_in(cal_user).await.unwrap();
    let decision: Decision = action.parse().unwrap();
    let callback = person
        .consent(&location(&to_cal), decision, None)
        .await
        .unwrap_or_else(|e| panic!("consent page: {e}"));
    page(b.get(callback).send().await.unwrap()).await
}
