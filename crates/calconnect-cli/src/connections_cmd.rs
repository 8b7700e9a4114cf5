//! `calconnect connections list|show|delete`: the connections stored on this machine. Never
//! prints a token.

use crate::exit::CliError;
use crate::local::{self, Home, Records};
use calconnect::store::{Connection, ConnectionStore};
use time::format_description::well_known::Rfc3339;

#[derive(Debug, clap::Args)]
pub struct ConnectionsArgs {
    #[command(subcommand)]
    command: ConnectionsCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ConnectionsCommand {
    /// A table of the stored connections (the default one is marked *).
    ///
    /// Examples:
    ///   calconnect connections list
    ///   calconnect connections list --json | jq '.[].id'
    #[command(verbatim_doc_comment)]
    List {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Details of one connection (no tokens).
    ///
    /// Examples:
    ///   calconnect connections show
    ///   calconnect connections show alice --json
    #[command(verbatim_doc_comment)]
    Show {
        /// Connection id, id prefix or username; default: the last login.
        connection: Option<String>,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Revokes a connection's tokens at the provider (RFC 7009: the refresh token, then the
    /// access token, when the provider has a revocation endpoint) and deletes them here. Cal.com
    /// has no revocation endpoint (docs/calcom.md §4): its access tokens stay valid until they
    /// expire (30 minutes). If a revocation fails the connection is kept, to try again.
    ///
    /// Examples:
    ///   calconnect connections delete 3f2a
    ///   calconnect connections delete work --local-only
    #[command(verbatim_doc_comment)]
    Delete {
        /// Connection id, id prefix, username or name.
        connection: String,
        /// Delete here without revoking at the provider (its tokens stay valid there until they
        /// expire).
        #[arg(long)]
        local_only: bool,
    },
}

pub async fn run(args: ConnectionsArgs) -> anyhow::Result<()> {
    let home = Home::locate()?;
    if !home.database().exists() {
        return match args.command {
            ConnectionsCommand::List { json: true } => {
                println!("[]");
                Ok(())
            }
            ConnectionsCommand::List { json: false } => {
                println!("No connections: run `calconnect login`.");
                Ok(())
            }
            _ => Err(CliError::auth(
                "no connection stored on this machine: run `calconnect login`",
            )
            .into()),
        };
    }
    let store = local::open_store(&home).await?;
    let records = Records::load(&home)?;
    match args.command {
        ConnectionsCommand::List { json } => list(store.as_ref(), &records, json).await,
        ConnectionsCommand::Show { connection, json } => {
            let (c, _) = local::select(store.as_ref(), &records, connection.as_deref()).await?;
            let v = describe(&c, &records);
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else if let Some(map) = v.as_object() {
                for k in SHOW_ORDER {
                    let Some(v) = map.get(*k) else { continue };
                    let text = match v {
                        serde_json::Value::String(s) => s.clone(),
                        serde_json::Value::Null => "-".into(),
                        other => other.to_string(),
                    };
                    println!("{k:<28} {text}");
                }
            }
            Ok(())
        }
        ConnectionsCommand::Delete {
            connection,
            local_only,
        } => {
            let (c, record) = local::select(store.as_ref(), &records, Some(&connection)).await?;
            let id = c.id.as_uuid().to_string();
            let said = if local_only {
                store
                    .delete_connection(c.id, DELETE_REASON)
                    .await
                    .map_err(|e| CliError::other(format!("cannot delete: {e}")))?;
                format!(
                    "Deleted connection {id} here only; its tokens stay valid at the provider until they expire."
                )
            } else {
                let (revocation, deleted) =
                    crate::revoke::disconnect(&home, store.clone(), &c, &record).await?;
                if !deleted {
                    return Err(CliError::other(format!(
                        "connection {id} was not deleted: {revocation}; try again, or pass --local-only to delete it here only (its tokens then stay valid at the provider until they expire)"
                    ))
                    .into());
                }
                crate::revoke::describe(&id, &record, &revocation)
            };
            let mut records = records;
            records.connections.remove(&id);
            if records.default.as_deref() == Some(id.as_str()) {
                records.default = None;
            }
            records.save(&home)?;
            println!("{said}");
            Ok(())
        }
    }
}

const DELETE_REASON: &str = "deleted with `calconnect connections delete`";

/// Field order of `connections show`.
const SHOW_ORDER: &[&str] = &[
    "id",
    "name",
    "username",
    "email",
    "account",
    "owner",
    "profile",
    "provider",
    "auth_method",
    "revocation_url",
    "api_base",
    "client_id",
    "redirect_uri",
    "scopes",
    "status",
    "status_reason",
    "access_expires_at",
    "last_refreshed_at",
    "refresh_expires_at_estimate",
    "has_refresh_token",
    "created_at",
    "default",
];

async fn list(store: &dyn ConnectionStore, records: &Records, json: bool) -> anyhow::Result<()> {
    let all = store
        .list_for_end_user(&local::end_user())
        .await
        .map_err(|e| CliError::other(format!("cannot list connections: {e}")))?;
    let rows: Vec<serde_json::Value> = all.iter().map(|c| describe(c, records)).collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if rows.is_empty() {
        println!("No connections: run `calconnect login`.");
        return Ok(());
    }
    let cell = |v: &serde_json::Value, k: &str| match &v[k] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".into(),
        other => other.to_string(),
    };
    let headers = ["", "ID", "USER", "PROFILE", "STATUS", "ACCESS EXPIRES"];
    let keys = [
        "default",
        "id",
        "username",
        "profile",
        "status",
        "access_expires_at",
    ];
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            keys.iter()
                .map(|k| {
                    if *k == "default" {
                        if r[*k] == serde_json::Value::Bool(true) {
                            "*".into()
                        } else {
                            " ".into()
                        }
                    } else {
                        cell(r, k)
                    }
                })
                .collect()
        })
        .collect();
    let widths: Vec<usize> = (0..headers.len())
        .map(|i| {
            table
                .iter()
                .map(|r| r[i].len())
                .chain([headers[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    println!(
        "{}",
        line(headers.iter().map(|h| (*h).to_owned()).collect())
    );
    for row in table {
        println!("{}", line(row));
    }
    Ok(())
}

fn describe(c: &Connection, records: &Records) -> serde_json::Value {
    let id = c.id.as_uuid().to_string();
    let record = records.connections.get(&id);
    let fmt = |t: Option<time::OffsetDateTime>| t.and_then(|t| t.format(&Rfc3339).ok());
    let custom = record.and_then(|r| match &r.provider {
        local::ProviderSpec::Custom(spec) => Some(spec),
        _ => None,
    });
    // A custom provider's account is stored as a digest (docs/architecture.md §3.8): show the
    // account as the provider named it instead of that number.
    let owner = match (custom, record.and_then(|r| r.account.clone())) {
        (Some(_), account) => account,
        (None, _) => Some(format!(
            "{} {}",
            c.identity.owner.kind(),
            c.identity.owner.id()
        )),
    };
    let delimiter = custom.map_or(",", |s| s.scope_delimiter.join());
    serde_json::json!({
        "default": records.default.as_deref() == Some(id.as_str()),
        "id": id,
        "name": record.and_then(|r| r.name.clone().or_else(|| r.saved_profile.clone())),
        "username": record.and_then(|r| r.username.clone().or_else(|| r.account.clone())),
        "email": record.and_then(|r| r.email.clone()),
        "account": record.and_then(|r| r.account.clone()),
        "owner": owner,
        "client_id": c.identity.client_id,
        "profile": record.map(|r| r.saved_profile.clone().unwrap_or_else(|| r.provider.name().to_owned())),
        "provider": record.map(|r| match &r.provider {
            local::ProviderSpec::CalCom => "https://app.cal.com".to_owned(),
            local::ProviderSpec::Sandbox { url } => url.clone(),
            local::ProviderSpec::Custom(spec) => spec.issuer.clone().unwrap_or_else(|| spec.authorize_url.clone()),
        }),
        "auth_method": custom.map(|s| s.auth_method.as_str()),
        "revocation_url": custom.and_then(|s| s.revocation_url.clone()),
        "api_base": custom.and_then(|s| s.api_base.clone()),
        "redirect_uri": record.map(|r| r.redirect_uri.clone()),
        "scopes": c.scopes.join(delimiter),
        "status": c.status.as_str(),
        "status_reason": c.status_reason,
        "access_expires_at": fmt(c.access_expires_at),
        "last_refreshed_at": fmt(Some(c.last_refreshed_at)),
        "refresh_expires_at_estimate": fmt(c.refresh_expires_at_estimate),
        "created_at": fmt(Some(c.created_at)),
        "has_refresh_token": c.refresh_token.is_some(),
    })
}
