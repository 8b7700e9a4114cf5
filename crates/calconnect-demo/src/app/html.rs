//! HTML building blocks: the page layout, POST forms with the CSRF token, friendly error pages,
//! and the response headers every page gets. Markup is `maud`: checked at compile time, and
//! every value spliced into it is escaped.

use super::session::{CsrfToken, UserName};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use maud::{DOCTYPE, Markup, PreEscaped, html};

const CSS: &str = "
*{box-sizing:border-box}body{margin:0;font:15px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#111827;background:#f9fafb}
header.top{background:#fff;border-bottom:1px solid #e5e7eb;padding:12px 24px;display:flex;flex-wrap:wrap;align-items:center;gap:8px 16px}
header.top .brand{font-weight:700}header.top .who{margin-left:auto;color:#6b7280}
main{max-width:980px;margin:24px auto;padding:0 16px}
.card{background:#fff;border:1px solid #e5e7eb;border-radius:10px;padding:20px;margin-bottom:16px}
h1{font-size:24px;margin:0 0 12px}h2{font-size:17px;margin:0 0 10px}
.btn{display:inline-block;border:1px solid #111827;background:#111827;color:#fff;border-radius:6px;padding:7px 14px;font:inherit;cursor:pointer;text-decoration:none}
.btn.secondary{background:#fff;color:#111827;border-color:#6b7280}.btn.danger{background:#b91c1c;border-color:#b91c1c}
form.inline{display:inline}
.status{display:inline-block;border-radius:999px;padding:1px 10px;font-size:13px;font-weight:600}
.status.active{background:#dcfce7;color:#166534}.status.needs_reauth,.status.refresh_lost{background:#fee2e2;color:#991b1b}
.notice{border-left:4px solid #2563eb;background:#eff6ff;padding:10px 14px;margin-bottom:16px}
.notice.bad{border-color:#b91c1c;background:#fef2f2}
table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:6px 8px;border-bottom:1px solid #f3f4f6;font-size:14px}
dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;margin:0}dt{color:#4b5563}dd{margin:0;overflow-wrap:anywhere}
.scroll{overflow-x:auto}.grid-compact{display:none}
@media (max-width:640px){header.top{padding:10px 16px}main{margin:16px auto;padding:0 10px}.card{padding:14px}
 dl{grid-template-columns:1fr}dt{margin-top:6px}.grid-wide{display:none}.grid-compact{display:block}}
.muted{color:#6b7280}.controls form{margin:0 8px 8px 0;display:inline-block}
code{background:#f3f4f6;color:#1f2937;padding:1px 4px;border-radius:4px}
";

/// The example app's name, everywhere: the page header, its texts, and the name the sandbox's
/// consent screen shows for the demo's OAuth client (`default-seed.toml`).
pub(crate) const APP_NAME: &str = "Acme Planner";

/// Who is signed in, for the page header (with the sign-out form).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Who<'a> {
    pub(crate) user: &'a UserName,
    pub(crate) csrf: &'a CsrfToken,
}

/// A whole page.
pub(crate) fn layout(title: &str, who: Option<Who<'_>>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width,initial-scale=1";
                title { (title) " · calconnect demo" }
                style { (PreEscaped(CSS)) }
            }
            body {
                header.top {
                    a.brand href="/" style="color:inherit;text-decoration:none" { (APP_NAME) }
                    span.muted { "an example app using calconnect" }
                    @if let Some(who) = who {
                        span.who { "Signed in as " b { (who.user) } }
                        (post_form("/signout", who.csrf, "Sign out", "secondary", None))
                    }
                }
                main { (body) }
            }
        }
    }
}

/// A POST form with one button (and the CSRF token); `test_id` becomes `data-testid`.
pub(crate) fn post_form(
    action: &str,
    csrf: &CsrfToken,
    label: &str,
    class: &str,
    test_id: Option<&str>,
) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            input type="hidden" name="csrf" value=(csrf.as_str());
            button class={ "btn " (class) } type="submit" data-testid=[test_id] { (label) }
        }
    }
}

/// A page response, never cached.
pub(crate) fn page(status: StatusCode, markup: Markup) -> Response {
    let mut r = (status, Html(markup.into_string())).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// A friendly error page: what happened (`outcome` also in `data-outcome`) and what to do.
pub(crate) fn problem(
    status: StatusCode,
    outcome: &str,
    title: &str,
    what: &str,
    todo: &str,
) -> Response {
    let body = html! {
        div.card data-outcome=(outcome) {
            h1 { (title) }
            p { (what) }
            p { b { "What to do:" } " " (todo) }
            p { a.btn href="/" { "Back to your connections" } }
        }
    };
    page(status, layout(title, None, body))
}

/// A 303 to `to`.
pub(crate) fn see_other(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// Headers on every response: no sniffing, no framing, no referrer, and a CSP that allows only
/// inline styles and the inline countdown script (no external resources at all).
pub(crate) async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'",
        ),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_consent_screen_names_the_app_as_the_app_does() {
        let seed = calconnect_sandbox::Seed::default();
        let client = seed
            .clients
            .iter()
            .find(|c| c.client_id == calconnect_sandbox::CONFIDENTIAL_CLIENT_ID)
            .unwrap();
        assert_eq!(client.name, APP_NAME);
    }

    #[tokio::test]
    async fn error_pages_escape_what_they_are_given() {
        let r = problem(
            StatusCode::BAD_GATEWAY,
            "broker_error",
            "A \"title\" <i>",
            "The broker answered `<script>alert('x')</script>`.",
            "Reload & retry.",
        );
        let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        let html = String::from_utf8(body.to_vec()).unwrap();
        assert!(
            !html.contains("<script>") && !html.contains("<i>"),
            "{html}"
        );
        assert!(
            html.contains("&lt;script&gt;alert('x')&lt;/script&gt;"),
            "{html}"
        );
        assert!(
            html.contains("<h1>A &quot;title&quot; &lt;i&gt;</h1>"),
            "{html}"
        );
        assert!(html.contains("Reload &amp; retry."));
        assert!(html.contains("data-outcome=\"broker_error\""));
    }
}
