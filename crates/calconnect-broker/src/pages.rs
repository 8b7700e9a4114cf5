//! The few HTML pages the end user's browser may see (a finished flow without `return_to`, or a
//! flow that cannot go on). Plain, escaped, never cached.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

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

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let html = format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
             <meta name=\"viewport\" content=\"width=device-width\"></head>\
             <body data-outcome=\"{outcome}\" style=\"font-family:sans-serif;max-width:40em;margin:4em auto\">\
             <h1>{title}</h1><p>{text}</p></body></html>",
            title = escape(self.title),
            outcome = self.outcome,
            text = escape(&self.text),
        );
        let mut response = (self.status, Html(html)).into_response();
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}
