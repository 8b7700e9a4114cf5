//! Server-rendered pages in Cal.com's look (neutral greys, black primary button, rounded card):
//! inline CSS, no JavaScript, every interpolated value HTML-escaped.

use super::scopes::ScopeGroup;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

/// Escapes text for HTML element content and double-quoted attributes.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

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
code{background:#f3f4f6;border-radius:4px;padding:1px 4px}
a{color:#111827}
table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:4px 6px;border-bottom:1px solid #f3f4f6;vertical-align:top}
";

/// A full page around `body` (already escaped HTML).
pub(crate) fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>{} | Cal.com sandbox</title><style>{CSS}</style></head><body>{body}</body></html>",
        esc(title)
    );
    let mut resp = (status, Html(html)).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.headers_mut()
        .insert("x-frame-options", HeaderValue::from_static("DENY"));
    resp
}

/// A page for errors that never redirect (client not found, redirect_uri mismatch, status,
/// scope required): the message, as Cal.com's page shows it.
pub(crate) fn error_page(status: StatusCode, message: &str) -> Response {
    let body = format!(
        "<div class=\"card\"><div class=\"logos\"><div class=\"logo cal\">Cal</div></div>\
<h1>Authorization error</h1><p style=\"text-align:center\">{}</p></div>",
        esc(message)
    );
    page(status, "Authorization error", &body)
}

/// One signed-in identity the login page offers.
#[derive(Debug)]
pub(crate) struct LoginChoice<'a> {
    pub id: i64,
    pub name: &'a str,
    pub username: &'a str,
    pub email: &'a str,
}

fn initial(name: &str) -> String {
    esc(&name
        .chars()
        .next()
        .unwrap_or('?')
        .to_uppercase()
        .to_string())
}

/// The sandbox sign-in: pick a seeded user, no passwords.
pub(crate) fn login_page(users: &[LoginChoice<'_>], callback_url: &str) -> Response {
    let mut list = String::new();
    for u in users {
        list.push_str(&format!(
            "<form method=\"post\" action=\"/auth/login\">\
<input type=\"hidden\" name=\"callbackUrl\" value=\"{cb}\">\
<input type=\"hidden\" name=\"user_id\" value=\"{id}\">\
<button class=\"user\" type=\"submit\"><span class=\"avatar\">{ini}</span>\
<span><strong>{name}</strong><br><span class=\"muted\">{username} · {email}</span></span></button></form>",
            cb = esc(callback_url),
            id = u.id,
            ini = initial(u.name),
            name = esc(u.name),
            username = esc(u.username),
            email = esc(u.email),
        ));
    }
    let body = format!(
        "<div class=\"card\"><div class=\"logos\"><div class=\"logo cal\">Cal</div></div>\
<h1>Sign in to Cal.com</h1><p class=\"muted\" style=\"text-align:center\">This is the calconnect \
sandbox: pick a user to sign in as. There are no passwords.</p>{list}</div>"
    );
    page(StatusCode::OK, "Sign in", &body)
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

/// The consent page: "<client> would like access to your Cal.com account", the permissions in
/// plain words, the account (or account/team selector) and "Go back" / "Allow".
pub(crate) fn consent_page(c: &Consent<'_>) -> Response {
    let logo = match c.logo_url {
        Some(url) => format!("<img src=\"{}\" alt=\"\">", esc(url)),
        None => initial(c.client_name),
    };
    let mut perms = String::new();
    for g in &c.groups {
        if let Some(h) = g.heading {
            perms.push_str(&format!("<h2>{}</h2>", esc(h)));
        }
        perms.push_str("<ul class=\"perms\">");
        for i in &g.items {
            perms.push_str(&format!("<li>{}</li>", esc(i)));
        }
        perms.push_str("</ul>");
    }
    let account = match &c.accounts {
        Some(options) => {
            let mut s = String::from(
                "<label for=\"account\">Select account or team</label><select id=\"account\" name=\"account\">",
            );
            for (value, label) in options {
                s.push_str(&format!(
                    "<option value=\"{}\">{}</option>",
                    esc(value),
                    esc(label)
                ));
            }
            s.push_str("</select>");
            s
        }
        None => format!(
            "<input type=\"hidden\" name=\"account\" value=\"user\"><p class=\"muted\">Signed in as \
<strong>{}</strong> ({}) · <a href=\"{}\">Switch account</a></p>",
            esc(c.user_name),
            esc(c.user_email),
            esc(&c.switch_url)
        ),
    };
    let mut hidden = format!(
        "<input type=\"hidden\" name=\"csrf_token\" value=\"{}\">",
        esc(&c.csrf)
    );
    for (k, v) in &c.hidden {
        hidden.push_str(&format!(
            "<input type=\"hidden\" name=\"{k}\" value=\"{}\">",
            esc(v)
        ));
    }
    let name = esc(c.client_name);
    let body = format!(
        "<form class=\"card\" method=\"post\" action=\"/auth/oauth2/authorize\">{hidden}\
<div class=\"logos\"><div class=\"logo\">{logo}</div><div class=\"logo cal\">Cal</div></div>\
<h1>{name} would like access to your Cal.com account</h1>{account}\
<p class=\"lead\">Allow {name} to:</p>{perms}\
<div class=\"info\"><strong>Allow {name} to do this?</strong><br>By clicking allow, you allow this app \
to use your information in accordance with their terms of service and privacy policy. You can \
remove access in the Cal.com App Store.</div>\
<div class=\"row\"><button class=\"minimal\" type=\"submit\" name=\"action\" value=\"deny\">Go back</button>\
<button class=\"primary\" type=\"submit\" name=\"action\" value=\"allow\" data-testid=\"allow-button\">Allow</button></div></form>"
    );
    page(
        StatusCode::OK,
        &format!("{} would like access", c.client_name),
        &body,
    )
}

/// The control surface's index page: what is seeded, what is armed, and how to drive it.
pub(crate) fn control_index(shared: &crate::state::Shared) -> Response {
    let settings = shared.settings();
    let db = shared.db();
    let mut clients = String::new();
    for c in db.clients.values() {
        clients.push_str(&format!(
            "<tr><td><code>{}</code></td><td>{}</td><td>{:?}</td><td>{:?}{}</td><td>{}</td></tr>",
            esc(&c.client_id),
            esc(&c.name),
            c.client_type,
            c.status,
            if c.trusted { ", trusted" } else { "" },
            esc(&c.redirect_uris.join(" ")),
        ));
    }
    let mut users = String::new();
    for u in db.users.values() {
        users.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            u.id,
            esc(&u.username),
            esc(&u.email)
        ));
    }
    let mut calls = String::new();
    for ((endpoint, grant, outcome), n) in &db.token_calls {
        calls.push_str(&format!(
            "<tr><td>{endpoint:?}</td><td>{}</td><td>{}</td><td>{n}</td></tr>",
            esc(grant),
            esc(outcome)
        ));
    }
    let faults = esc(&serde_json::to_string(&db.faults).unwrap_or_default());
    drop(db);
    let now = shared
        .clock
        .now()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let body = format!(
        "<div class=\"card\" style=\"max-width:920px\"><h1>calconnect sandbox controls</h1>\
<p class=\"muted\">JSON endpoints under <code>/_sandbox/</code>; the same operations exist on the \
<code>Sandbox</code> handle. Sandbox time: <code>{now}</code> (offset {off} s).</p>\
<h2>Clients</h2><table><tr><th>client_id</th><th>name</th><th>type</th><th>status</th><th>redirect URIs</th></tr>{clients}</table>\
<h2>Users</h2><table><tr><th>id</th><th>username</th><th>email</th></tr>{users}</table>\
<h2>Settings</h2><p><code>{settings}</code></p>\
<h2>Armed faults</h2><p><code>{faults}</code></p>\
<h2>Token-endpoint calls</h2><table><tr><th>endpoint</th><th>grant</th><th>outcome</th><th>count</th></tr>{calls}</table>\
<h2>Controls</h2><table>\
<tr><td><code>POST clock/advance</code></td><td><code>{{\"seconds\":600}}</code></td></tr>\
<tr><td><code>POST grants/revoke</code></td><td><code>{{\"client_id\":\"calconnect-demo\",\"user_id\":1}}</code> (or <code>team_id</code>)</td></tr>\
<tr><td><code>POST clients/&lt;id&gt;/status</code></td><td><code>{{\"status\":\"REJECTED\"}}</code></td></tr>\
<tr><td><code>GET|POST settings</code></td><td><code>{{\"pkce_required_for_all\":true,\"refresh_token_ttl_seconds\":31536000}}</code>; \
rate limits as at Cal.com, 120 per minute per bearer token (<code>rate_limit</code>) and 120 per minute per client IP for \
requests without one, the v2 token endpoint included (<code>ip_rate_limit</code>): <code>{{\"ip_rate_limit\":10000}}</code></td></tr>\
<tr><td><code>GET|POST|DELETE faults</code></td><td><code>{{\"kind\":\"server_error\",\"status\":503,\"count\":2}}</code>, \
<code>{{\"kind\":\"delay\",\"ms\":2000}}</code>, <code>{{\"kind\":\"rate_limited\"}}</code> (v2: Cal.com&#39;s throttler 429, \
a <code>ThrottlerException</code> envelope, no <code>Retry-After</code>), <code>{{\"kind\":\"drop\"}}</code>, \
<code>{{\"kind\":\"not_found\",\"for_seconds\":60}}</code>, <code>{{\"kind\":\"encryption_key_missing\"}}</code>; optional <code>\"target\":\"any|v2|legacy\"</code></td></tr>\
<tr><td><code>GET|DELETE token-calls</code></td><td><code>?grant=refresh_token&amp;outcome=ok</code></td></tr>\
<tr><td><code>GET codes</code>, <code>GET codes/latest</code>, <code>GET tokens</code></td><td><code>?client_id=&amp;user_id=</code></td></tr>\
<tr><td><code>GET authorizations</code></td><td>consent records</td></tr></table></div>",
        off = shared.clock.offset().whole_seconds(),
        settings = esc(
            &serde_json::to_string(&crate::control::SettingsView::of(&settings))
                .unwrap_or_default()
        ),
    );
    page(StatusCode::OK, "Sandbox controls", &body)
}
