//! `calconnect sandbox`: a local Cal.com in the foreground.

use anyhow::Context as _;
use calconnect_sandbox::{
    CONFIDENTIAL_CLIENT_ID, ClientType, PUBLIC_CLIENT_ID, Sandbox, Seed, seed::ClientStatus,
};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct SandboxArgs {
    /// Address to listen on.
    #[arg(
        long,
        default_value = "127.0.0.1:5555",
        env = "CALCONNECT_SANDBOX_LISTEN"
    )]
    listen: SocketAddr,
    /// Seed file (TOML or JSON) replacing the built-in clients, users and data.
    #[arg(long)]
    seed: Option<PathBuf>,
    /// Client id of the confidential client (renames the seeded one).
    #[arg(long)]
    client_id: Option<String>,
    /// Secret of the confidential client (replaces the seeded one).
    #[arg(long)]
    client_secret: Option<String>,
    /// Extra redirect URI registered for the confidential client (repeatable; exact match).
    #[arg(long = "redirect-uri")]
    redirect_uris: Vec<String>,
    /// Extra redirect URI registered for the public client (repeatable; exact match).
    #[arg(long = "public-redirect-uri")]
    public_redirect_uris: Vec<String>,
    /// Review status of the confidential client: pending, approved or rejected.
    #[arg(long, value_parser = parse_status)]
    client_status: Option<ClientStatus>,
    /// Access-token lifetime in seconds (Cal.com: 1800).
    #[arg(long, default_value_t = 1800)]
    access_token_ttl: i64,
    /// Refresh-token lifetime in days (Cal.com: 30).
    #[arg(long, default_value_t = 30)]
    refresh_token_ttl_days: i64,
    /// API v2 requests per access token per minute (Cal.com gives third-party tokens 120).
    #[arg(long, default_value_t = 120)]
    rate_limit: u32,
    /// Requests per client IP per minute without a bearer token, the v2 token endpoint included
    /// (Cal.com: 120).
    #[arg(long, default_value_t = 120)]
    ip_rate_limit: u32,
    /// Require PKCE (S256) from every client, confidential ones too (the unmerged Cal.com
    /// branch of docs/calcom.md §3.7). Also switchable at runtime via POST /_sandbox/settings.
    #[arg(long)]
    pkce_required_for_all: bool,
}

fn parse_status(s: &str) -> Result<ClientStatus, String> {
    match s.to_ascii_lowercase().as_str() {
        "pending" => Ok(ClientStatus::Pending),
        "approved" => Ok(ClientStatus::Approved),
        "rejected" => Ok(ClientStatus::Rejected),
        _ => Err(format!(
            "unknown status {s:?}; use pending, approved or rejected"
        )),
    }
}

pub async fn run(args: SandboxArgs) -> anyhow::Result<()> {
    let mut seed = match &args.seed {
        Some(path) => Seed::from_file(path)?,
        None => Seed::default(),
    };
    let confidential = seed
        .clients
        .iter_mut()
        .find(|c| c.client_type == ClientType::Confidential)
        .context("the seed has no confidential client")?;
    if let Some(id) = &args.client_id {
        confidential.client_id.clone_from(id);
    }
    if let Some(secret) = &args.client_secret {
        confidential.secrets = vec![secret.clone()];
    }
    if let Some(status) = args.client_status {
        confidential.status = status;
    }
    for c in &mut seed.clients {
        let extra = match c.client_type {
            ClientType::Confidential => &args.redirect_uris,
            ClientType::Public => &args.public_redirect_uris,
        };
        for uri in extra {
            if !c.redirect_uris.contains(uri) {
                c.redirect_uris.push(uri.clone());
            }
        }
    }
    let builder = Sandbox::builder()
        .seed(seed.clone())
        .bind(args.listen)
        .access_token_ttl(time::Duration::seconds(args.access_token_ttl))
        .refresh_token_ttl(time::Duration::days(args.refresh_token_ttl_days))
        .rate_limit(args.rate_limit, time::Duration::seconds(60))
        .ip_rate_limit(args.ip_rate_limit);
    let sandbox = match builder.start().await {
        Ok(sandbox) => sandbox,
        Err(calconnect_sandbox::StartError::Bind { addr, source })
            if source.kind() == std::io::ErrorKind::AddrInUse =>
        {
            return Err(crate::exit::CliError::other(crate::port_owner::message(
                addr,
                "choose another address with --listen (CALCONNECT_SANDBOX_LISTEN), e.g. --listen 127.0.0.1:5556",
            ))
            .into());
        }
        Err(e) => return Err(e.into()),
    };
    if args.pkce_required_for_all {
        sandbox.update_settings(|s| s.pkce_required_for_all = true);
    }
    print_banner(&sandbox, &seed);
    tokio::signal::ctrl_c()
        .await
        .context("cannot wait for Ctrl-C")?;
    eprintln!("stopping the sandbox");
    sandbox.shutdown().await;
    Ok(())
}

fn print_banner(sandbox: &Sandbox, seed: &Seed) {
    println!("calconnect sandbox: a local Cal.com, for development only\n");
    println!("  authorize (consent page)  {}", sandbox.authorize_url());
    println!("  token endpoint (v2)       {}", sandbox.token_url());
    println!("  legacy token endpoints    {}", sandbox.legacy_token_url());
    println!(
        "                            {}",
        sandbox.legacy_refresh_url()
    );
    println!("  API v2                    {}", sandbox.api_url());
    println!("  control surface           {}", sandbox.control_url());
    if sandbox.settings().pkce_required_for_all {
        println!("\nPKCE (S256) is required from every client, confidential ones too.");
    }
    println!("\nclients:");
    for c in &seed.clients {
        let kind = match c.client_type {
            ClientType::Confidential => "confidential",
            ClientType::Public => "public",
        };
        let marker = if c.client_id == CONFIDENTIAL_CLIENT_ID || c.client_id == PUBLIC_CLIENT_ID {
            "*"
        } else {
            " "
        };
        println!(
            "{marker} {} ({kind}, {:?}{})",
            c.client_id,
            c.status,
            if c.trusted { ", trusted" } else { "" }
        );
        // The sandbox's own, local test credentials: printing them is the point of this command.
        for s in &c.secrets {
            println!("      client_secret  {s}");
        }
        println!("      redirect_uris  {}", c.redirect_uris.join(" "));
        if !c.scopes.is_empty() {
            println!("      scopes         {}", c.scopes.join(","));
        }
    }
    println!("\nusers (sign in by picking one; no passwords):");
    for u in &seed.users {
        println!("  {} <{}> id {}", u.username, u.email, u.id);
    }
    println!("\nExample: open this in a browser to walk the sign-in and consent pages:");
    if let Some(c) = seed
        .clients
        .iter()
        .find(|c| c.client_type == ClientType::Confidential)
    {
        let mut url = sandbox.authorize_url();
        url.query_pairs_mut()
            .append_pair("client_id", &c.client_id)
            .append_pair(
                "redirect_uri",
                c.redirect_uris.first().map_or("", String::as_str),
            )
            .append_pair("response_type", "code")
            .append_pair("scope", "PROFILE_READ,SCHEDULE_READ")
            .append_pair("state", "try-me");
        if sandbox.settings().pkce_required_for_all {
            // RFC 7636 Appendix B: verifier dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk.
            url.query_pairs_mut()
                .append_pair(
                    "code_challenge",
                    "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                )
                .append_pair("code_challenge_method", "S256");
        }
        println!("  {url}");
        print_next_steps(sandbox, c);
    }
    println!("\nPress Ctrl-C to stop.");
}

/// What happens after the example link, and how to use the sandbox for real: the link's
/// redirect URI is the client's first registered one, where nothing may listen yet.
fn print_next_steps(sandbox: &Sandbox, client: &calconnect_sandbox::seed::SeedClient) {
    let redirect_uri = client.redirect_uris.first().map_or("", String::as_str);
    let pkce = sandbox.settings().pkce_required_for_all;
    let base = sandbox.base_url().as_str().trim_end_matches('/');
    println!("\nWhat happens next:");
    println!(
        "  After Allow, the browser goes to {redirect_uri}?code=…&state=try-me. Unless your app\n  listens there, the browser shows a connection error: that is expected, the code is in\n  its address bar (single use, valid 10 minutes). Exchange it:"
    );
    let secret = client.secrets.first().map_or("", String::as_str);
    let verifier = if pkce {
        // RFC 7636 Appendix B: the verifier of the challenge in the link.
        r#","code_verifier":"dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk""#
    } else {
        ""
    };
    println!(
        "    curl -s {} -H 'content-type: application/json' \\\n      -d '{{\"grant_type\":\"authorization_code\",\"client_id\":\"{}\",\"client_secret\":\"{secret}\",\"redirect_uri\":\"{redirect_uri}\",\"code\":\"PASTE-THE-CODE\"{verifier}}}'",
        sandbox.token_url(),
        client.client_id,
    );
    println!(
        "  then call the API with the access_token: curl -H \"Authorization: Bearer ACCESS_TOKEN\" {}/me",
        sandbox.api_url().as_str().trim_end_matches('/')
    );
    println!("\nOr let calconnect do it:");
    println!(
        "  calconnect login --profile sandbox --sandbox-url {base}   # a token in this terminal"
    );
    if let Some(public_base) = redirect_uri.strip_suffix("/oauth/callback") {
        println!(
            "  the broker, on {public_base} (this client's redirect URI is its callback): a broker.toml with\n    public_base_url = \"{public_base}\"\n    [provider]\n    kind = \"sandbox\"\n    web_url = \"{base}\"\n    [client]\n    id = \"{}\"\n    scopes = [\"PROFILE_READ\", \"SCHEDULE_READ\"]\n    [keys]\n    file = \"keys\"\n  then: calconnect keys generate --out keys && CALCONNECT_CLIENT_SECRET={secret} calconnect serve -c broker.toml",
            client.client_id
        );
    }
    println!("  calconnect demo   # the sandbox, the broker and an example app in one process");
}
