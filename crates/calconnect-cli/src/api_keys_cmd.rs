//! `calconnect api-keys create|list|revoke`: the broker's API keys, on the broker's database.
//! Only the database settings are read: the client, keys and webhook settings need not be set.

use crate::serve_cmd::load_database;
use anyhow::Context as _;
use calconnect::{Clock as _, SystemClock};
use secrecy::ExposeSecret as _;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, clap::Args)]
pub struct ApiKeysArgs {
    /// The broker's configuration file (only its database_url is used); CALCONNECT_DATABASE_URL
    /// overrides it.
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
    /// List keys (id, name, prefix, status, created).
    List {
        /// One JSON array: id, name, prefix, status, created_at, revoked_at and last_used_at
        /// (RFC 3339; last use to within a minute).
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by id.
    Revoke {
        /// The key's id (from `list`).
        id: String,
    },
}

pub async fn run(args: ApiKeysArgs) -> anyhow::Result<()> {
    let database = load_database(args.config.as_deref())?;
    let clock = Arc::new(SystemClock);
    let now_ms = clock.now().unix_timestamp() * 1000;
    let (_store, db) = calconnect_broker::open_storage(&database, clock)
        .await
        .with_context(|| {
            format!(
                "cannot open the broker's database ({}; database_url, CALCONNECT_DATABASE_URL)",
                database.describe()
            )
        })?;
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
        ApiKeysCommand::List { json } => {
            let keys = calconnect_broker::api_keys::list(&db).await?;
            if json {
                let listed: Vec<serde_json::Value> = keys
                    .iter()
                    .map(|k| {
                        serde_json::json!({
                            "id": k.id,
                            "name": k.name,
                            "prefix": k.prefix,
                            "status": status(k),
                            "created_at": rfc3339_ms(k.created_at_ms),
                            "revoked_at": k.revoked_at_ms.map(rfc3339_ms),
                            "last_used_at": k.last_used_at_ms.map(rfc3339_ms),
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&listed)?);
                return Ok(());
            }
            println!(
                "{:<38} {:<20} {:<12} {:<8} {:<24} {:<24}",
                "ID", "NAME", "PREFIX", "STATUS", "CREATED", "LAST USED"
            );
            for k in &keys {
                println!(
                    "{:<38} {:<20} {:<12} {:<8} {:<24} {:<24}",
                    k.id,
                    k.name,
                    k.prefix,
                    status(k),
                    rfc3339_ms(k.created_at_ms),
                    k.last_used_at_ms
                        .map_or_else(|| "never".to_owned(), rfc3339_ms)
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

fn status(key: &calconnect_broker::api_keys::ApiKeyInfo) -> &'static str {
    if key.revoked_at_ms.is_some() {
        "revoked"
    } else {
        "active"
    }
}

/// Unix milliseconds as RFC 3339 (UTC, whole seconds).
fn rfc3339_ms(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}
