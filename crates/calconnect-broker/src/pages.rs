//! The few HTML pages the end user's browser may see (a finished flow without `return_to`, or a
//! flow that cannot go on). Plain, never cached; the markup is `maud`, which escapes every value
//! spliced into it.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use maud::{DOCTYPE, html};

/// A page: status, machine outcome (also in a `data-outcome` attribute for tests and scripts),
/// title and text.
#[derive(Debug, Clone)]
pub struct Page {
    status: StatusCode,
    outcome: &'static str,
    title: &'static str,
    text: String,
}

impl Page {
    /// A page.
    pub fn new(
        status: StatusCode,
        outcome: &'static str,
        title: &'static str,
        text: impl Into<String>,
    ) -> Self {
        Self {
            status,
            outcome,
            title,
            text: text.into(),
        }
    }

    /// A page for a flow that cannot go on: start again from the app.
    pub fn start_again(outcome: &'static str, why: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            outcome,
            "This connection attempt cannot continue",
            format!(
                "{why} Nothing was connected. Go back to the application and start connecting again."
            ),
        )
    }
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let markup = html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    title { (self.title) }
                    meta name="viewport" content="width=device-width";
                }
                body data-outcome=(self.outcome) style="font-family:sans-serif;max-width:40em;margin:4em auto" {
                    h1 { (self.title) }
                    p { (self.text) }
                }
            }
        };
        let mut response = (self.status, Html(markup.into_string())).into_response();
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(page: Page) -> (StatusCode, String, String) {
        let r = page.into_response();
        let status = r.status();
        let cache = r.headers()[header::CACHE_CONTROL]
            .to_str()
            .unwrap_or_default()
            .to_owned();
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 16)
            .await
            .unwrap_or_default();
        (status, cache, String::from_utf8_lossy(&bytes).into_owned())
    }

    #[tokio::test]
    async fn text_is_escaped_and_the_outcome_is_an_attribute() {
        let page = Page::start_again(
            "callback_rejected",
            r#"Cal.com said "<script>alert('x')</script>"."#,
        );
        let (status, cache, html) = body(page).await;
        assert_eq!(
            (status, cache.as_str()),
            (StatusCode::BAD_REQUEST, "no-store")
        );
        assert!(
            html.contains(r#"<body data-outcome="callback_rejected""#),
            "{html}"
        );
        assert!(!html.contains("<script"), "{html}");
        assert!(
            html.contains("Cal.com said &quot;&lt;script&gt;alert('x')&lt;/script&gt;&quot;."),
            "{html}"
        );
        assert!(html.contains("<h1>This connection attempt cannot continue</h1>"));
    }
}
