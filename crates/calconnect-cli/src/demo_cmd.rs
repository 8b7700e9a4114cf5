//! `calconnect demo`: the sandbox, the broker and the example app in one process, on embedded
//! SQLite in a data folder that is kept between runs. Prints the address to open.

use anyhow::Context as _;
use calconnect_demo::{Demo, DemoOptions};
use secrecy::ExposeSecret as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Data folder (SQLite database, demo key, API key, admin password). Default:
    /// $XDG_DATA_HOME/calconnect/demo or ~/.local/share/calconnect/demo.
    #[arg(long, env = "CALCONNECT_DEMO_DIR")]
    data_dir: Option<PathBuf>,
    /// Port of the example app (the address to open).
    #[arg(long, default_value_t = 3000)]
    port: u16,
    /// Port of the broker.
    #[arg(long, default_value_t = 8080)]
    broker_port: u16,
    /// Port of the sandbox (the local Cal.com).
    #[arg(long, default_value_t = 5555)]
    sandbox_port: u16,
}

fn default_data_dir() -> PathBuf {
    let from = |var: &str| {
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    from("XDG_DATA_HOME")
        .or_else(|| from("HOME").map(|h| h.join(".local").join("share")))
        .map_or_else(
            || PathBuf::from("calconnect-demo"),
            |d| d.join("calconnect").join("demo"),
        )
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let options = DemoOptions {
        data_dir: args.data_dir.unwrap_or_else(default_data_dir),
        app_listen: SocketAddr::new(ip, args.port),
        broker_listen: SocketAddr::new(ip, args.broker_port),
        sandbox_listen: SocketAddr::new(ip, args.sandbox_port),
    };
    let demo = Demo::start(options).await.context("calconnect demo")?;
    // Handlers are installed before "open …" is printed, so an early Ctrl-C still stops cleanly.
    let stop = stop_signal()?;
    let dir = demo.data_dir().display().to_string();
    if demo.key_created() {
        println!("WARNING: generated a sealing key FOR THIS DEMO ONLY at {dir}/keys (mode 0600).");
    } else {
        println!(
            "WARNING: tokens are sealed with the demo's own key ({dir}/keys): for the demo only."
        );
    }
    println!("  data      {dir} (kept between runs; delete it to start over)");
    let users: Vec<String> = demo
        .sandbox()
        .users()
        .into_iter()
        .map(|u| u.username)
        .collect();
    println!(
        "  Cal.com   {} (local sandbox; sign in as {})",
        demo.sandbox_url().trim_end_matches('/'),
        users.join(", ")
    );
    println!("  broker    {}", demo.broker_url());
    println!(
        "  operator  {}/admin (user admin, password {})",
        demo.app_url(),
        demo.admin_password().expose_secret()
    );
    println!();
    println!("open {}", demo.app_url());
    println!("(Ctrl-C to stop)");
    stop.await;
    eprintln!("stopping…");
    demo.shutdown().await;
    Ok(())
}

/// A future that resolves on Ctrl-C (SIGINT) or SIGTERM; the handlers are registered now.
#[cfg(unix)]
fn stop_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt()).context("installing the Ctrl-C handler")?;
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    })
}

/// A future that resolves on Ctrl-C.
#[cfg(not(unix))]
fn stop_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
