//! The demo's webhook receiver takes a delivery only when one `v1` matches its secret and `t` is
//! within five minutes of now (the README's "Webhooks" section); the broker's real deliveries
//! pass.

use crate::helpers::*;
use calconnect::Clock as _;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use secrecy::ExposeSecret as _;
use sha2::Sha256;
use std::time::Duration;

const BODY: &str = r#"{"id":"evt_1","type":"connection.created","data":{"connection_id":"c-1"}}"#;

fn v1(secret: &str, t: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{BODY}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn the_receiver_takes_only_fresh_deliveries_signed_with_its_secret() {
    let app = start().await;
    let secret = app.demo.webhook_secret().expose_secret().to_owned();
    let other = "another-secret-0123456789abcdef";
    let now = calconnect::SystemClock.now().unix_timestamp();
    let http = browser_no_redirects();
    let send = |signature: Option<String>| {
        let mut r = http
            .post(app.url("/webhooks/calconnect"))
            .header("content-type", "application/json")
            .header("calconnect-event-type", "connection.created")
            .body(BODY);
        if let Some(s) = signature {
            r = r.header("calconnect-signature", s);
        }
        r.send()
    };
    let old = now - 301;
    let ahead = now + 301;
    let recent = now - 240;
    let cases = [
        (None, StatusCode::UNAUTHORIZED),
        (Some(format!("t={now}")), StatusCode::UNAUTHORIZED),
        (
            Some(format!("t={now},v1={}", v1(other, now))),
            StatusCode::UNAUTHORIZED,
        ),
        (
            Some(format!("t={old},v1={}", v1(&secret, old))),
            StatusCode::UNAUTHORIZED,
        ),
        (
            Some(format!("t={ahead},v1={}", v1(&secret, ahead))),
            StatusCode::UNAUTHORIZED,
        ),
        (
            Some(format!("t={now},v1={}", v1(&secret, old))),
            StatusCode::UNAUTHORIZED,
        ),
        // During a rotation: the broker signs with the new secret and this one.
        (
            Some(format!(
                "t={now},v1={},v1={}",
                v1(other, now),
                v1(&secret, now)
            )),
            StatusCode::NO_CONTENT,
        ),
        (
            Some(format!("t={recent},v1={}", v1(&secret, recent))),
            StatusCode::NO_CONTENT,
        ),
    ];
    for (signature, expected) in cases {
        let shown = format!("{signature:?}");
        let r = send(signature).await.unwrap();
        assert_eq!(r.status(), expected, "{shown}");
    }
    app.demo.shutdown().await;
}

#[tokio::test]
async fn the_brokers_deliveries_pass_and_show_on_the_home_page() {
    let app = start().await;
    let b = browser();
    sign_in(&app, &b, "gus").await;
    let landed = connect(&app, &b, 1, "allow").await;
    let id = landed.url.rsplit('/').next().unwrap().to_owned();
    // The delivery is asynchronous: look until it shows (bounded).
    let home = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let home = page(b.get(app.url("/")).send().await.unwrap()).await;
            if home.html.contains("data-testid=\"webhooks\"") {
                return home;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the connection.created webhook reaches the app");
    assert!(
        home.html.contains(&format!(
            "<code>connection.created</code> for <code>{id}</code>"
        )),
        "{}",
        home.html
    );
    app.demo.shutdown().await;
}
