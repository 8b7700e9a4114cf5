//! The app confirms who finished a connect flow: a link made for one demo user and finished in
//! another browser (another user signed in, or nobody) is undone, and the page says so.

use crate::helpers::*;
use reqwest::StatusCode;

fn assert_no_connections(home: &Page) {
    assert!(
        home.html.contains("data-testid=\"no-connections\""),
        "{}",
        home.html
    );
}

#[tokio::test]
async fn a_link_finished_in_another_users_browser_is_undone() {
    let app = start().await;
    let ann = browser();
    sign_in(&app, &ann, "ann").await;
    let bob = browser();
    sign_in(&app, &bob, "bob").await;

    // Ann asks for a link, and it is finished in Bob's browser with Bob's Cal.com account.
    let link = connect_link(&app, &ann).await;
    let landed = finish_link(&app, &bob, &link, 2, "allow").await;
    assert_eq!(landed.status, StatusCode::FORBIDDEN, "{}", landed.html);
    assert!(landed.url.contains("/connected?"), "{}", landed.url);
    let html = &landed.html;
    assert!(
        html.contains("data-outcome=\"someone_elses_link\""),
        "{html}"
    );
    assert!(html.contains("This connect link was made for someone else"));
    assert!(
        html.contains("you are signed in to Acme Planner as bob"),
        "{html}"
    );
    assert!(html.contains("has been disconnected again"), "{html}");
    assert!(
        !html
            .split(|c: char| !c.is_ascii_alphanumeric())
            .any(|w| w == "ann"),
        "the other user is not named: {html}"
    );

    // Nobody keeps the connection: not Ann (whose link it was), not Bob.
    assert_no_connections(&page(ann.get(app.url("/")).send().await.unwrap()).await);
    assert_no_connections(&page(bob.get(app.url("/")).send().await.unwrap()).await);

    // Opening the page again changes nothing: the result counts once.
    let again = page(bob.get(&landed.url).send().await.unwrap()).await;
    assert!(
        again.html.contains("data-outcome=\"result_used\""),
        "{}",
        again.html
    );

    // Ann's own link, finished by Ann, still connects her.
    let mine = connect(&app, &ann, 1, "allow").await;
    assert!(mine.url.contains("/connections/"), "{}", mine.url);
    assert!(mine.html.contains("data-testid=\"status\">active<"));
    app.demo.shutdown().await;
}

#[tokio::test]
async fn a_link_finished_where_nobody_is_signed_in_is_undone() {
    let app = start().await;
    let ann = browser();
    sign_in(&app, &ann, "ann").await;
    let link = connect_link(&app, &ann).await;
    let stranger = browser();
    let landed = finish_link(&app, &stranger, &link, 1, "allow").await;
    assert_eq!(landed.status, StatusCode::FORBIDDEN, "{}", landed.html);
    assert!(
        landed.html.contains("data-outcome=\"someone_elses_link\""),
        "{}",
        landed.html
    );
    assert!(
        landed
            .html
            .contains("nobody is signed in to Acme Planner in this browser"),
        "{}",
        landed.html
    );
    assert!(landed.html.contains("has been disconnected again"));
    assert_no_connections(&page(ann.get(app.url("/")).send().await.unwrap()).await);

    // A declined link in the wrong browser: nothing to undo, and the page says that too.
    let link = connect_link(&app, &ann).await;
    let declined = finish_link(&app, &stranger, &link, 1, "deny").await;
    assert!(
        declined
            .html
            .contains("data-outcome=\"someone_elses_link\""),
        "{}",
        declined.html
    );
    assert!(declined.html.contains("Nothing was connected."));
    app.demo.shutdown().await;
}
