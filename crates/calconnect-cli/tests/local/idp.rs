//! npm `oidc-provider` (docs/interop.md) for the `--profile custom` tests: started with the CLI's
//! loopback redirect URI registered, its test switches and counters, and introspection as the
//! test's own check of what the server thinks of a token.

#[path = "../../../calconnect/tests/interop/launcher.rs"]
mod launcher;

use crate::helpers::{Login, Out, follow};
pub use launcher::OidcProvider;
use launcher::{interop_dir, start_provider_in};
use std::path::Path;

pub const PUBLIC_ID: &str = "public";
pub const POST_ID: &str = "conf-post";
pub const POST_SECRET: &str = "conf-post-secret-0123456789abcdef";
pub const BASIC_ID: &str = "conf-basic";
pub const BASIC_SECRET: &str = "conf basic:secret/0123456789abcdef";
pub const SCOPES: &str = "openid offline_access";

/// The server, accepting `http://127.0.0.1:<port>/callback`, issuing access tokens that live
/// `ttl_secs`; `None` (the test skips) without Node.js, unless CALCONNECT_REQUIRE_ALL=1.
pub async fn idp(port: u16, ttl_secs: u64) -> Option<OidcProvider> {
    start_provider_in(
        &interop_dir(env!("CARGO_MANIFEST_DIR")),
        &[
            ("REDIRECT_URIS", format!("http://127.0.0.1:{port}/callback")),
            ("ACCESS_TOKEN_TTL", ttl_secs.to_string()),
        ],
    )
    .await
}

/// One test's home folder, loopback port, server (access tokens living `ttl_secs`) and its
/// endpoint flags; `None` when the server cannot run here (see [`idp`]).
pub async fn setup(ttl_secs: u64) -> Option<(tempfile::TempDir, u16, OidcProvider, Vec<String>)> {
    let home = tempfile::tempdir().unwrap();
    let port = crate::helpers::free_port();
    let idp = idp(port, ttl_secs).await?;
    let urls = endpoints(&idp);
    Some((home, port, idp, urls))
}

/// `127.0.0.1:<port>`, as the CLI names the provider.
pub fn host(idp: &OidcProvider) -> String {
    idp.issuer.trim_start_matches("http://").to_owned()
}

#[allow(clippy::disallowed_methods)] // reason: a test's own HTTP client, checking the server
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The server's counters (`/__test/stats`).
pub async fn stats(idp: &OidcProvider) -> serde_json::Value {
    http()
        .get(format!("{}/__test/stats", idp.issuer))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Flips a test switch (`deny`, `drop-token`).
pub async fn switch(idp: &OidcProvider, name: &str) {
    let r = http()
        .post(format!("{}/__test/{name}", idp.issuer))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// Whether the server says `token` is active (RFC 7662, asked as the confidential client).
pub async fn active(idp: &OidcProvider, token: &str) -> bool {
    let body: serde_json::Value = http()
        .post(format!("{}/token/introspection", idp.issuer))
        .form(&[
            ("token", token),
            ("client_id", POST_ID),
            ("client_secret", POST_SECRET),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["active"] == true
}

/// Plays the browser from the authorize URL the CLI printed to the redirect to the CLI.
pub async fn browse(login: &mut Login, port: u16) -> String {
    let url = login.authorize_url();
    launcher::browse(&url, &format!("http://127.0.0.1:{port}/callback")).await
}

/// `--authorize-url`, `--token-url` and `--revocation-url` of the server, as flags.
pub fn endpoints(idp: &OidcProvider) -> Vec<String> {
    let i = &idp.issuer;
    [
        "--authorize-url".to_owned(),
        format!("{i}/auth"),
        "--token-url".to_owned(),
        format!("{i}/token"),
        "--revocation-url".to_owned(),
        format!("{i}/token/revocation"),
        "--api-base".to_owned(),
        format!("{i}/api"),
    ]
    .into()
}

/// `endpoints` followed by `rest`.
pub fn with<'a>(endpoints: &'a [String], rest: &[&'a str]) -> Vec<&'a str> {
    endpoints
        .iter()
        .map(String::as_str)
        .chain(rest.iter().copied())
        .collect()
}

/// Starts `calconnect login --profile custom` on `port` with `args`, waiting up to `timeout`.
pub fn spawn_custom(
    home: &Path,
    port: u16,
    timeout: &str,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: Option<&str>,
) -> Login {
    let port_text = port.to_string();
    let mut all = vec![
        "--profile",
        "custom",
        "--port",
        &port_text,
        "--no-browser",
        "--timeout",
        timeout,
    ];
    all.extend_from_slice(args);
    Login::spawn_with(home, &all, env, stdin)
}

/// A whole `calconnect login --profile custom …`: the browser plays along, and the CLI's page
/// must say the outcome; returns the CLI's output.
pub async fn custom_login(
    home: &Path,
    port: u16,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: Option<&str>,
) -> Out {
    let mut login = spawn_custom(home, port, "60s", args, env, stdin);
    let redirect = browse(&mut login, port).await;
    let (status, page) = follow(&redirect).await;
    let out = login.finish().await;
    assert_eq!(status == 200, out.code == 0, "{page}\n{out:?}");
    out
}

/// Every file under `home`, as bytes (the key, the database and its WAL, the JSON files).
pub fn files(home: &Path) -> Vec<(String, Vec<u8>)> {
    std::fs::read_dir(home)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.path().is_file())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// Fails if `secret` is in any output or any file under `home`.
pub fn assert_nowhere(secret: &str, home: &Path, outs: &[&Out]) {
    for out in outs {
        assert!(
            !out.stdout.contains(secret) && !out.stderr.contains(secret),
            "the secret is in an output: {out:?}"
        );
    }
    for (name, bytes) in files(home) {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "the secret is in clear in {name}"
        );
    }
}

/// No Cal.com wording for a provider that is not Cal.com.
pub fn assert_no_cal_com(out: &Out) {
    assert!(
        !out.stdout.contains("Cal.com") && !out.stderr.contains("Cal.com"),
        "Cal.com wording for a custom provider: {out:?}"
    );
}
