//! A demo on port 0 in a temp folder, and a cookie-keeping client that walks the pages like a
//! browser without JavaScript.
#![allow(dead_code)]

use calconnect_demo::{Demo, DemoOptions};
use reqwest::StatusCode;

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

/// A browser: cookies on, redirects followed.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap()
}

/// A browser that does not follow redirects.
pub fn browser_no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
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

pub fn hidden_inputs(html: &str) -> Vec<(String, String)> {
    html.split("<input type=\"hidden\" name=\"")
        .skip(1)
        .filter_map(|rest| {
            let (name, rest) = rest.split_once("\" value=\"")?;
            let (value, _) = rest.split_once('"')?;
            Some((
                name.to_owned(),
                value.replace("&quot;", "\"").replace("&amp;", "&"),
            ))
        })
        .collect()
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

/// From the home page: Connect Cal.com, sign in at the sandbox as `cal_user`, answer `action`.
/// Returns the page the browser lands on.
pub async fn connect(app: &Running, b: &reqwest::Client, cal_user: i64, action: &str) -> Page {
    let home = page(b.get(app.url("/")).send().await.unwrap()).await;
    let consent_or_login = page(
        b.post(app.url("/connect"))
            .form(&[("csrf", csrf(&home.html))])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(consent_or_login.status, StatusCode::OK);
    let sandbox = app.demo.sandbox();
    let consent = if consent_or_login.url.contains("/auth/login") {
        let callback = url::Url::parse(&consent_or_login.url)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "callbackUrl")
            .map(|(_, v)| v.into_owned())
            .unwrap();
        page(
            b.post(sandbox.base_url().join("/auth/login").unwrap())
                .form(&[("user_id", cal_user.to_string()), ("callbackUrl", callback)])
                .send()
                .await
                .unwrap(),
        )
        .await
    } else {
        consent_or_login
    };
    assert_eq!(consent.status, StatusCode::OK, "{}", consent.html);
    let mut form = hidden_inputs(&consent.html);
    form.push(("action".into(), action.into()));
    page(
        b.post(sandbox.authorize_url())
            .form(&form)
            .send()
            .await
            .unwrap(),
    )
    .await
}
