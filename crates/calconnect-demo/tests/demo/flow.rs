use crate::helpers::*;
use reqwest::StatusCode;

#[tokio::test]
async fn connect_shows_the_grid_then_revoke_offers_reconnect() {
    let app = start().await;
    let b = browser();
    let home = sign_in(&app, &b, "ann").await;
    assert!(home.html.contains("Connect Cal.com"), "{}", home.html);
    // The users the text names are those the sandbox's sign-in page offers.
    for user in app.demo.sandbox().users() {
        let named = format!("<b>{} ({})</b>", user.name, user.username);
        assert!(home.html.contains(&named), "{named}: {}", home.html);
    }
    assert!(home.html.contains("data-testid=\"no-connections\""));

    let landed = connect(&app, &b, 1, "allow").await;
    assert_eq!(landed.status, StatusCode::OK);
    assert!(landed.url.contains("/connections/"), "{}", landed.url);
    let html = &landed.html;
    assert!(html.contains("data-testid=\"weekly-grid\""), "{html}");
    // Alice's seeded default schedule: Mon–Thu 09:00–17:00, Fri 09:00–13:00, Europe/London.
    assert!(html.contains("data-day=\"Monday\" data-start=\"540\" data-end=\"1020\""));
    assert!(html.contains("data-day=\"Friday\" data-start=\"540\" data-end=\"780\""));
    assert!(!html.contains("data-day=\"Saturday\""));
    assert!(html.contains("Europe/London"));
    assert!(html.contains("Alice Anderson"));
    assert!(html.contains("data-testid=\"status\">active<"));
    assert!(html.contains("SCHEDULE_READ"));
    assert!(
        html.contains("data-testid=\"bookings\""),
        "upcoming bookings"
    );
    assert!(html.contains("30 min meeting"));
    assert!(html.contains("<span id=\"countdown\""));
    // Times in Alice's zone (the grid's), readable: the broker's microseconds stay out of sight.
    assert!(
        html.contains("Times in Europe/London, the Cal.com user's time zone."),
        "{html}"
    );
    let raw_date_as_text = html.match_indices('>').any(|(i, _)| {
        let t = html.as_bytes().get(i + 1..i + 6).unwrap_or_default();
        t.len() == 5 && t[..4].iter().all(u8::is_ascii_digit) && t[4] == b'-'
    });
    assert!(!raw_date_as_text, "a raw timestamp as text: {html}");
    assert!(!html.contains("reconnect-offer"));

    let id = landed.url.rsplit('/').next().unwrap().to_owned();
    let refreshes = app.demo.sandbox().token_calls("refresh_token", "ok");
    let refreshed = page(
        b.post(app.url(&format!("/connections/{id}/refresh")))
            .form(&[("csrf", csrf(html))])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(refreshed.html.contains("data-notice=\"refreshed\""));
    assert_eq!(
        app.demo.sandbox().token_calls("refresh_token", "ok"),
        refreshes + 1,
        "refresh now refreshes, even with a fresh token"
    );
    assert!(refreshed.html.contains("data-testid=\"weekly-grid\""));

    // Expire: Cal.com's clock jumps, the proxy gets a 401, the broker refreshes and retries.
    let expired = page(
        b.post(app.url(&format!("/connections/{id}/demo/expire")))
            .form(&[("csrf", csrf(html))])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(expired.html.contains("data-notice=\"expired\""));
    assert!(
        expired.html.contains("data-testid=\"status\">active<"),
        "{}",
        expired.html
    );
    assert!(expired.html.contains("data-testid=\"weekly-grid\""));
    assert!(app.demo.sandbox().token_calls("refresh_token", "ok") >= 1);

    // Revoke: the next refresh gets invalid_grant; the page offers to reconnect.
    let revoked = page(
        b.post(app.url(&format!("/connections/{id}/demo/revoke")))
            .form(&[("csrf", csrf(&expired.html))])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(
        revoked.html.contains("data-testid=\"reconnect-offer\""),
        "{}",
        revoked.html
    );
    assert!(revoked.html.contains("needs_reauth"));

    // Reconnecting brings it back (same Cal.com user: same connection, re-authorized).
    let again = connect(&app, &b, 1, "allow").await;
    assert!(again.url.ends_with(&id), "{} vs {id}", again.url);
    assert!(again.html.contains("data-testid=\"status\">active<"));
    app.demo.shutdown().await;
}

#[tokio::test]
async fn denying_consent_is_a_friendly_page() {
    let app = start().await;
    let b = browser();
    sign_in(&app, &b, "ben").await;
    let denied = connect(&app, &b, 2, "deny").await;
    assert_eq!(denied.status, StatusCode::OK);
    assert!(
        denied.html.contains("data-outcome=\"access_denied\""),
        "{}",
        denied.html
    );
    assert!(denied.html.contains("You declined access at Cal.com"));
    let home = page(b.get(app.url("/")).send().await.unwrap()).await;
    assert!(home.html.contains("data-testid=\"no-connections\""));
    app.demo.shutdown().await;
}

#[tokio::test]
async fn disconnect_and_data_kept_between_runs() {
    let dir = tempfile::tempdir().unwrap();
    let demo = calconnect_demo::Demo::start(calconnect_demo::DemoOptions::ephemeral(dir.path()))
        .await
        .unwrap();
    assert!(demo.key_created());
    let app = Running { demo, dir };
    let b = browser();
    sign_in(&app, &b, "cleo").await;
    let landed = connect(&app, &b, 2, "allow").await;
    assert!(landed.html.contains("Bob Brown"), "{}", landed.html);
    // Move Cal.com's clock (the broker refreshes on the 401): the restart must keep it.
    let id = landed.url.rsplit('/').next().unwrap().to_owned();
    let expired = page(
        b.post(app.url(&format!("/connections/{id}/demo/expire")))
            .form(&[("csrf", csrf(&landed.html))])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(
        expired.html.contains("data-testid=\"status\">active<"),
        "{}",
        expired.html
    );
    let cal_time = app.demo.sandbox().now();
    let Running { demo, dir } = app;
    let api_key = std::fs::read_to_string(dir.path().join("app-api-key")).unwrap();
    demo.shutdown().await;

    let demo = calconnect_demo::Demo::start(calconnect_demo::DemoOptions::ephemeral(dir.path()))
        .await
        .unwrap();
    assert!(!demo.key_created());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("app-api-key")).unwrap(),
        api_key,
        "the API key is reused"
    );
    let app = Running { demo, dir };
    let b = browser();
    let home = sign_in(&app, &b, "cleo").await;
    assert!(
        home.html.contains("data-testid=\"connection-link\""),
        "{}",
        home.html
    );
    let link_start = home.html.find("href=\"/connections/").unwrap() + 6;
    let link = &home.html[link_start..link_start + 13 + 36];
    let conn = page(b.get(app.url(link)).send().await.unwrap()).await;
    // The sandbox signs with the key kept in the data folder: the old access token still works.
    assert!(
        conn.html.contains("data-testid=\"weekly-grid\""),
        "{}",
        conn.html
    );
    assert!(
        app.demo.sandbox().now() >= cal_time,
        "Cal.com's clock is where it was"
    );
    // And it kept the grant: the connection refreshes (a sandbox that forgot would refuse it).
    let refreshed = page(
        b.post(app.url(&format!("{link}/refresh")))
            .form(&[("csrf", csrf(&conn.html))])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(
        refreshed.html.contains("data-notice=\"refreshed\""),
        "{}",
        refreshed.html
    );
    assert!(refreshed.html.contains("data-testid=\"status\">active<"));
    // Disconnecting asks first: the button is a link to a page with the real (POST) button.
    assert!(
        refreshed.html.contains(&format!(
            "href=\"{link}/disconnect\" data-testid=\"disconnect\""
        )),
        "{}",
        refreshed.html
    );
    let confirm = page(
        b.get(app.url(&format!("{link}/disconnect")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert!(
        confirm.html.contains("data-testid=\"confirm-disconnect\""),
        "{}",
        confirm.html
    );
    assert!(
        confirm
            .html
            .contains(&format!("action=\"{link}/disconnect\""))
    );
    let still = page(b.get(app.url("/")).send().await.unwrap()).await;
    assert!(
        still.html.contains("data-testid=\"connection-link\""),
        "asking is not disconnecting"
    );
    let gone = page(
        b.post(app.url(&format!("{link}/disconnect")))
            .form(&[("csrf", csrf(&confirm.html))])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(gone.html.contains("data-notice=\"disconnected\""));
    assert!(gone.html.contains("data-testid=\"no-connections\""));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        for f in [
            "keys",
            "app-api-key",
            "admin-password",
            "sandbox-signing-key",
            "sandbox-state.json",
        ] {
            let mode = std::fs::metadata(app.dir.path().join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
    }
    app.demo.shutdown().await;
}

#[tokio::test]
async fn an_outage_keeps_the_connection_active() {
    let app = start().await;
    let b = browser();
    sign_in(&app, &b, "hal").await;
    let landed = connect(&app, &b, 1, "allow").await;
    let id = landed.url.rsplit('/').next().unwrap().to_owned();
    let post = |action: &str, html: &str| {
        b.post(app.url(&format!("/connections/{id}/demo/{action}")))
            .form(&[("csrf", csrf(html))])
            .send()
    };
    let outage = page(post("outage", &landed.html).await.unwrap()).await;
    assert!(outage.html.contains("data-notice=\"outage\""));
    // The notice says Cal.com's clock passed the token: so does the countdown (the broker's
    // record, on its own clock, is still ahead).
    assert!(
        outage
            .html
            .contains("data-testid=\"countdown\" data-state=\"expired-at-cal\">expired<"),
        "{}",
        outage.html
    );
    assert!(!outage.html.contains("<span id=\"countdown\""));
    // Cal.com does not answer, yet times stay in Alice's zone (remembered from `/v2/me`).
    assert!(
        outage.html.contains("GMT</time>") || outage.html.contains("BST</time>"),
        "{}",
        outage.html
    );
    // The token ran out while Cal.com's token endpoint fails: the refresh fails transiently.
    let expired = outage;
    assert!(
        expired.html.contains("data-testid=\"status\">active<"),
        "{}",
        expired.html
    );
    assert!(
        expired.html.contains("Cal.com is unavailable right now"),
        "{}",
        expired.html
    );
    assert!(!expired.html.contains("reconnect-offer"));
    assert!(
        app.demo
            .sandbox()
            .token_calls("refresh_token", "fault:server_error")
            >= 1
    );
    let recovered = page(post("recover", &expired.html).await.unwrap()).await;
    assert!(recovered.html.contains("data-notice=\"recovered\""));
    assert!(app.demo.sandbox().faults().is_empty());
    // Once the broker has refreshed, the countdown counts again.
    let refreshed = page(
        b.post(app.url(&format!("/connections/{id}/refresh")))
            .form(&[("csrf", csrf(&recovered.html))])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(
        refreshed.html.contains("data-notice=\"refreshed\""),
        "{}",
        refreshed.html
    );
    assert!(refreshed.html.contains("<span id=\"countdown\""));
    assert!(!refreshed.html.contains("expired-at-cal"));
    app.demo.shutdown().await;
}

/// "Refresh now" says what happened: a refresh Cal.com did not answer is not called a refresh,
/// and one Cal.com refused offers to reconnect.
#[tokio::test]
async fn refresh_now_reports_the_real_outcome() {
    let app = start().await;
    let b = browser();
    sign_in(&app, &b, "ann").await;
    let landed = connect(&app, &b, 1, "allow").await;
    let id = landed.url.rsplit('/').next().unwrap().to_owned();
    let press = async |html: &str| {
        page(
            b.post(app.url(&format!("/connections/{id}/refresh")))
                .form(&[("csrf", csrf(html))])
                .send()
                .await
                .unwrap(),
        )
        .await
    };

    // Cal.com's token endpoint answers 503 to every attempt.
    let sb = app.demo.sandbox();
    sb.inject_fault(
        calconnect_sandbox::FaultKind::ServerError { status: 503 },
        50,
    )
    .unwrap();
    let deferred = press(&landed.html).await;
    let html = &deferred.html;
    assert!(html.contains("data-notice=\"refresh-deferred\""), "{html}");
    assert!(!html.contains("data-notice=\"refreshed\""));
    assert!(!html.contains("Cal.com issued a new access token"));
    assert!(html.contains("data-testid=\"status\">active<"), "{html}");
    assert_eq!(sb.token_calls("refresh_token", "ok"), 0);

    // Cal.com forgets the grant: the refresh is refused and the page offers to reconnect.
    sb.clear_faults();
    sb.revoke_grant(
        calconnect_sandbox::CONFIDENTIAL_CLIENT_ID,
        calconnect_sandbox::Owner::User(1),
    );
    let refused = press(html).await;
    assert!(
        refused.html.contains("data-notice=\"refresh-refused\""),
        "{}",
        refused.html
    );
    assert!(refused.html.contains("data-testid=\"reconnect-offer\""));
}
