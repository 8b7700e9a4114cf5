//! `calconnect api-keys create|list|revoke`: the broker's API keys, on the broker's database.

use crate::serve_cmd::load_config;
use anyhow::Context as _;
use calconnect::{Clock as _, SystemClock};
use secrecy::ExposeSecret as _;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, clap::Args)]
pub struct ApiKeysArgs {
    /// The broker's configuration file (for the database URL); CALCONNECT_* variables apply.
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: ApiKeysCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ApiKeysCommand {
    /// Create a key. It is printed once on standard output; only its hash is stored.
    Create {
        /// A name to recognise the key by (e.g. the app's name).
        #[arg(long, default_value = "default")]
        name: String,
    },
    /// List keys (id, name, prefix, created, revoked).
    List,
    /// Revoke a key by id.
    Revoke {
        /// The key's id (from `list`).
        id: String,
    },
}

pub async fn run(args: ApiKeysArgs) -> anyhow::Result<()> {
    let config = load_config(args.config.as_deref())?;
    let clock = Arc::new(SystemClock);
    let now_ms = clock.now().unix_timestamp() * 1000;
    let (_store, db) = calconnect_broker::open_storage(&config.database, clock)
        .await
        .context("cannot open the broker's database")?;
    match args.command {
        ApiKeysCommand::Create { name } => {
            let created =
                calconnect_broker::api_keys::create(&db, &name, now_ms, &mut rand::rngs::OsRng)
                    .await?;
            eprintln!(
                "created API key {} ({}); it is shown only now:",
                created.info.id, created.info.name
            );
            println!("{}", created.key.expose_secret());
        }
        ApiKeysCommand::List => {
            println!(
                "{:<38} {:<20} {:<12} {:<10}",
                "ID", "NAME", "PREFIX", "STATUS"
            );
            for k in calconnect_broker::api_keys::list(&db).await? {
                let status = if k.revoked_at_ms.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                println!(
                    "{:<38} {:<20} {:<12} {:<10}",
                    k.id, k.name, k.prefix, status
                );
            }
        }
        ApiKeysCommand::Revoke { id } => {
            if calconnect_broker::api_keys::revoke(&db, &id, now_ms).await? {
                eprintln!("revoked {id}");
            } else {
                anyhow::bail!("no active API key with id {id}: see `calconnect api-keys list`");
            }
        }
    }
    Ok(())
}
