//! Server-rendered pages in Cal.com's look (neutral greys, black primary button, rounded card):
//! inline CSS, no JavaScript. The markup is `maud`, checked at compile time, and every value
//! spliced into it is escaped by default; each page takes a typed view of what it shows.
//!
//! Text content goes through [`Text`], which also writes `'` as `&#39;` (the pages have always
//! done so, and tests pin the consent list and the error messages byte for byte). Attribute
//! values are double-quoted, so maud's own escaping is enough there.

use super::scopes::ScopeGroup;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use maud::{DOCTYPE, Markup, PreEscaped, Render, html};

const CSS: &str = "
*{box-sizing:border-box}
body{margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center;
 background:#f3f4f6;color:#111827;font:14px/1.5 -apple-system,BlinkMacSystemFont,'Segoe UI',Inter,Roboto,sans-serif}
.card{background:#fff;border:1px solid #e5e7eb;border-radius:12px;max-width:480px;width:100%;
 margin:24px;padding:32px 36px 20px;box-shadow:0 1px 2px rgba(0,0,0,.04)}
.logos{display:flex;justify-content:center;align-items:center;gap:12px;margin-bottom:8px}
.logo{width:56px;height:56px;border-radius:50%;background:#f3f4f6;border:1px solid #e5e7eb;display:flex;
 align-items:center;justify-content:center;font-weight:700;font-size:20px;color:#374151;overflow:hidden}
.logo img{width:100%;height:100%;object-fit:cover}
.cal{background:#111827;color:#fff;font-size:15px}
h1{font-size:22px;line-height:1.3;text-align:center;font-weight:700;margin:12px 8px 20px;letter-spacing:-.01em}
h2{font-size:13px;font-weight:600;margin:16px 0 6px;color:#374151}
ul.perms{list-style:none;padding:0;margin:0 0 8px}
ul.perms li{position:relative;padding-left:22px;margin:6px 0;color:#374151}
ul.perms li:before{content:'\\2713';position:absolute;left:0;color:#111827;font-weight:700}
.muted{color:#6b7280;font-size:13px}
.lead{font-weight:600;font-size:15px;margin:20px 0 4px}
.info{background:#f9fafb;border-radius:8px;padding:12px;margin:20px 0;font-size:13px;color:#4b5563}
.row{display:flex;justify-content:flex-end;gap:8px;border-top:1px solid #e5e7eb;margin:20px -36px 0;padding:16px 36px 0}
button,.btn{font:inherit;font-weight:600;border-radius:8px;padding:8px 16px;cursor:pointer;border:1px solid transparent;text-decoration:none}
.primary{background:#111827;color:#fff}
.primary:hover{background:#1f2937}
.minimal{background:transparent;color:#111827}
.minimal:hover{background:#f3f4f6}
.user{display:flex;width:100%;align-items:center;gap:12px;text-align:left;background:#fff;border:1px solid #e5e7eb;
 border-radius:8px;padding:10px 12px;margin:8px 0}
.user:hover{border-color:#111827}
.avatar{width:32px;height:32px;border-radius:50%;background:#e5e7eb;display:flex;align-items:center;justify-content:center;font-weight:700}
select{font:inherit;width:100%;padding:8px;border:1px solid #d1d5db;border-radius:8px;background:#fff}
label{font-weight:500;display:block;margin-bottom:4px}
code{background:#f3f4f6;color:#1f2937;border-radius:4px;padding:1px 4px}
a{color:#111827}
table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:4px 6px;border-bottom:1px solid #f3f4f6;vertical-align:top}
";

/// Text content: maud's escaping (`&`, `<`, `>`, `"`) and `'` as `&#39;`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Text<'a>(pub(crate) &'a str);

impl Render for Text<'_> {
    fn render_to(&self, buffer: &mut String) {
        for (i, piece) in self.0.split('\'').enumerate() {
            if i > 0 {
                buffer.push_str("&#39;");
            }
            piece.render_to(buffer);
        }
    }
}

/// A full page around `body`, never cached, never framed.
pub(crate) fn page(status: StatusCode, title: &str, body: Markup) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width,initial-scale=1";
                title { (Text(title)) " | Cal.com sandbox" }
                style { (PreEscaped(CSS)) }
            }
            body { (body) }
        }
    };
    let mut resp = (status, Html(markup.into_string())).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.headers_mut()
        .insert("x-frame-options", HeaderValue::from_static("DENY"));
    resp
}

/// The Cal.com logo circle every card starts with.
fn cal_logo() -> Markup {
    html! { div.logos { div.logo.cal { "Cal" } } }
}

/// A page for errors that never redirect (client not found, redirect_uri mismatch, status,
/// scope required): the message, as Cal.com's page shows it.
pub(crate) fn error_page(status: StatusCode, message: &str) -> Response {
    let body = html! {
        div.card {
            (cal_logo())
            h1 { "Authorization error" }
            p style="text-align:center" { (Text(message)) }
        }
    };
    page(status, "Authorization error", body)
}

/// One signed-in identity the login page offers.
#[derive(Debug)]
pub(crate) struct LoginChoice<'a> {
    pub id: i64,
    pub name: &'a str,
    pub username: &'a str,
    pub email: &'a str,
}

/// The first letter of a name, upper-cased, for an avatar.
fn initial(name: &str) -> String {
    name.chars()
        .next()
        .unwrap_or('?')
        .to_uppercase()
        .to_string()
}

/// The sandbox sign-in: pick a seeded user, no passwords.
pub(crate) fn login_page(users: &[LoginChoice<'_>], callback_url: &str) -> Response {
    let body = html! {
        div.card {
            (cal_logo())
            h1 { "Sign in to Cal.com" }
            p.muted style="text-align:center" {
                "This is the calconnect sandbox: pick a user to sign in as. There are no passwords."
            }
            @for u in users {
                form method="post" action="/auth/login" {
                    input type="hidden" name="callbackUrl" value=(callback_url);
                    input type="hidden" name="user_id" value=(u.id);
                    button.user type="submit" {
                        span.avatar { (Text(&initial(u.name))) }
                        span {
                            strong { (Text(u.name)) }
                            br;
                            span.muted { (Text(u.username)) " · " (Text(u.email)) }
                        }
                    }
                }
            }
        }
    };
    page(StatusCode::OK, "Sign in", body)
}

/// Everything the consent page shows.
#[derive(Debug)]
pub(crate) struct Consent<'a> {
    pub client_name: &'a str,
    pub logo_url: Option<&'a str>,
    pub groups: Vec<ScopeGroup>,
    pub user_name: &'a str,
    pub user_email: &'a str,
    /// `(value, label)`: `"user"` for the personal account, `team/<slug>` for teams.
    pub accounts: Option<Vec<(String, String)>>,
    /// Hidden fields carrying the authorization request.
    pub hidden: Vec<(&'static str, String)>,
    pub csrf: String,
    /// Where "switch account" goes.
    pub switch_url: String,
}

/// The consent page: "`<client>` would like access to your Cal.com account", the permissions in
/// plain words, the account (or account/team selector) and "Go back" / "Allow".
pub(crate) fn consent_page(c: &Consent<'_>) -> Response {
    let name = Text(c.client_name);
    let body = html! {
        form.card method="post" action="/auth/oauth2/authorize" {
            input type="hidden" name="csrf_token" value=(c.csrf);
            @for (k, v) in &c.hidden {
                input type="hidden" name=(k) value=(v);
            }
            div.logos {
                div.logo {
                    @match c.logo_url {
                        Some(url) => { img src=(url) alt=""; }
                        None => { (Text(&initial(c.client_name))) }
                    }
                }
                div.logo.cal { "Cal" }
            }
            h1 { (name) " would like access to your Cal.com account" }
            @match &c.accounts {
                Some(options) => {
                    label for="account" { "Select account or team" }
                    select #account name="account" {
                        @for (value, label) in options {
                            option value=(value) { (Text(label)) }
                        }
                    }
                }
                None => {
                    input type="hidden" name="account" value="user";
                    p.muted {
                        "Signed in as " strong { (Text(c.user_name)) } " (" (Text(c.user_email)) ") · "
                        a href=(c.switch_url) { "Switch account" }
                    }
                }
            }
            p.lead { "Allow " (name) " to:" }
            @for g in &c.groups {
                @if let Some(h) = g.heading {
                    h2 { (Text(h)) }
                }
                ul.perms {
                    @for item in &g.items {
                        li { (Text(item)) }
                    }
                }
            }
            div.info {
                strong { "Allow " (name) " to do this?" }
                br;
                "By clicking allow, you allow this app to use your information in accordance with \
                 their terms of service and privacy policy. You can remove access in the Cal.com \
                 App Store."
            }
            div.row {
                button.minimal type="submit" name="action" value="deny" { "Go back" }
                button.primary type="submit" name="action" value="allow" data-testid="allow-button" { "Allow" }
            }
        }
    };
    page(
        StatusCode::OK,
        &format!("{} would like access", c.client_name),
        body,
    )
}

/// One registered client, as the control page lists it.
#[derive(Debug)]
pub(crate) struct ClientRow {
    pub client_id: String,
    pub name: String,
    pub client_type: String,
    /// The review status, with ", trusted" for trusted clients.
    pub status: String,
    pub redirect_uris: String,
}

/// One seeded user, as the control page lists it.
#[derive(Debug)]
pub(crate) struct UserRow {
    pub id: i64,
    pub username: String,
    pub email: String,
}

/// One token-endpoint counter, as the control page lists it.
#[derive(Debug)]
pub(crate) struct CallRow {
    pub endpoint: String,
    pub grant: String,
    pub outcome: String,
    pub count: u64,
}

/// Everything the control page shows.
#[derive(Debug)]
pub(crate) struct ControlView {
    /// Sandbox time, RFC 3339.
    pub now: String,
    /// How far sandbox time is ahead of real time, in seconds.
    pub offset_seconds: i64,
    pub clients: Vec<ClientRow>,
    pub users: Vec<UserRow>,
    /// The settings as JSON.
    pub settings: String,
    /// The armed faults as JSON.
    pub faults: String,
    pub calls: Vec<CallRow>,
}

impl ControlView {
    /// A snapshot of the sandbox's state.
    pub(crate) fn of(shared: &crate::state::Shared) -> Self {
        let settings = shared.settings();
        let db = shared.db();
        let clients = db
            .clients
            .values()
            .map(|c| ClientRow {
                client_id: c.client_id.clone(),
                name: c.name.clone(),
                client_type: format!("{:?}", c.client_type),
                status: format!("{:?}{}", c.status, if c.trusted { ", trusted" } else { "" }),
                redirect_uris: c.redirect_uris.join(" "),
            })
            .collect();
        let users = db
            .users
            .values()
            .map(|u| UserRow {
                id: u.id,
                username: u.username.clone(),
                email: u.email.clone(),
            })
            .collect();
        let calls = db
            .token_calls
            .iter()
            .map(|((endpoint, grant, outcome), n)| CallRow {
                endpoint: format!("{endpoint:?}"),
                grant: grant.clone(),
                outcome: outcome.clone(),
                count: *n,
            })
            .collect();
        let faults = serde_json::to_string(&db.faults).unwrap_or_default();
        drop(db);
        Self {
            now: shared
                .clock
                .now()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            offset_seconds: shared.clock.offset().whole_seconds(),
            clients,
            users,
            settings: serde_json::to_string(&crate::control::SettingsView::of(&settings))
                .unwrap_or_default(),
            faults,
            calls,
        }
    }
}

/// The control surface's index page: what is seeded, what is armed, and how to drive it.
pub(crate) fn control_index(shared: &crate::state::Shared) -> Response {
    control_page(&ControlView::of(shared))
}

fn control_page(v: &ControlView) -> Response {
    let body = html! {
        div.card style="max-width:920px" {
            h1 { "calconnect sandbox controls" }
            p.muted {
                "JSON endpoints under " code { "/_sandbox/" } "; the same operations exist on the "
                code { "Sandbox" } " handle. Sandbox time: " code { (v.now) }
                " (offset " (v.offset_seconds) " s)."
            }
            h2 { "Clients" }
            table {
                tr { th { "client_id" } th { "name" } th { "type" } th { "status" } th { "redirect URIs" } }
                @for c in &v.clients {
                    tr {
                        td { code { (Text(&c.client_id)) } }
                        td { (Text(&c.name)) }
                        td { (c.client_type) }
                        td { (c.status) }
                        td { (Text(&c.redirect_uris)) }
                    }
                }
            }
            h2 { "Users" }
            table {
                tr { th { "id" } th { "username" } th { "email" } }
                @for u in &v.users {
                    tr { td { (u.id) } td { (Text(&u.username)) } td { (Text(&u.email)) } }
                }
            }
            h2 { "Settings" }
            p { code { (v.settings) } }
            h2 { "Armed faults" }
            p { code { (v.faults) } }
            h2 { "Token-endpoint calls" }
            table {
                tr { th { "endpoint" } th { "grant" } th { "outcome" } th { "count" } }
                @for c in &v.calls {
                    tr { td { (c.endpoint) } td { (Text(&c.grant)) } td { (Text(&c.outcome)) } td { (c.count) } }
                }
            }
            h2 { "Controls" }
            table {
                tr { td { code { "POST clock/advance" } } td { code { r#"{"seconds":600}"# } } }
                tr {
                    td { code { "POST grants/revoke" } }
                    td { code { r#"{"client_id":"calconnect-demo","user_id":1}"# } " (or " code { "team_id" } ")" }
                }
                tr { td { code { "POST clients/<id>/status" } } td { code { r#"{"status":"REJECTED"}"# } } }
                tr {
                    td { code { "GET|POST settings" } }
                    td {
                        code { r#"{"pkce_required_for_all":true,"refresh_token_ttl_seconds":31536000}"# }
                        "; rate limits as at Cal.com, 120 per minute per bearer token ("
                        code { "rate_limit" }
                        ") and 120 per minute per client IP for requests without one, the v2 token \
                         endpoint included ("
                        code { "ip_rate_limit" } "): " code { r#"{"ip_rate_limit":10000}"# }
                    }
                }
                tr {
                    td { code { "GET|POST|DELETE faults" } }
                    td {
                        code { r#"{"kind":"server_error","status":503,"count":2}"# } ", "
                        code { r#"{"kind":"delay","ms":2000}"# } ", "
                        code { r#"{"kind":"rate_limited"}"# } " (v2: Cal.com's throttler 429, a "
                        code { "ThrottlerException" } " envelope, no " code { "Retry-After" } "), "
                        code { r#"{"kind":"drop"}"# } ", "
                        code { r#"{"kind":"not_found","for_seconds":60}"# } ", "
                        code { r#"{"kind":"encryption_key_missing"}"# } "; optional "
                        code { r#""target":"any|v2|legacy""# }
                    }
                }
                tr { td { code { "GET|DELETE token-calls" } } td { code { "?grant=refresh_token&outcome=ok" } } }
                tr {
                    td { code { "GET codes" } ", " code { "GET codes/latest" } ", " code { "GET tokens" } }
                    td { code { "?client_id=&user_id=" } }
                }
                tr { td { code { "GET authorizations" } } td { "consent records" } }
            }
        }
    };
    page(StatusCode::OK, "Sandbox controls", body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_escapes_markup_quotes_and_apostrophes() {
        let m = html! { p { (Text(r#"<script>"x"</script> & Bob's"#)) } };
        assert_eq!(
            m.into_string(),
            "<p>&lt;script&gt;&quot;x&quot;&lt;/script&gt; &amp; Bob&#39;s</p>"
        );
    }
}
