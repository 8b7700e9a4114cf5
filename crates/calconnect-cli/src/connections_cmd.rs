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
    /// Deletes a connection's stored tokens. Cal.com has no revocation endpoint
    /// (docs/calcom.md §4): access tokens stay valid until they expire (30 minutes).
    ///
    /// Examples:
    ///   calconnect connections delete 3f2a
    #[command(verbatim_doc_comment)]
    Delete {
        /// Connection id, id prefix or username.
        connection: String,
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
        ConnectionsCommand::Delete { connection } => {
            let (c, _) = local::select(store.as_ref(), &records, Some(&connection)).await?;
            store
                .delete_connection(c.id, "deleted with `calconnect connections delete`")
                .await
                .map_err(|e| CliError::other(format!("cannot delete: {e}")))?;
            let id = c.id.as_uuid().to_string();
            let mut records = records;
            records.connections.remove(&id);
            if records.default.as_deref() == Some(id.as_str()) {
                records.default = None;
            }
            records.save(&home)?;
            println!(
                "Deleted connection {id}. Its access token stays valid at Cal.com until it expires (Cal.com cannot revoke it)."
            );
            Ok(())
        }
    }
}

/// Field order of `connections show`.
const SHOW_ORDER: &[&str] = &[
    "id",
    "username",
    "email",
    "owner",
    "profile",
    "provider",
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
    serde_json::json!({
        "default": records.default.as_deref() == Some(id.as_str()),
        "id": id,
        "username": record.and_then(|r| r.username.clone()),
        "email": record.and_then(|r| r.email.clone()),
        "owner": format!("{} {}", c.identity.owner.kind(), c.identity.owner.id()),
        "client_id": c.identity.client_id,
        "profile": record.map(|r| r.provider.name()),
        "provider": record.map(|r| match &r.provider {
            local::ProviderSpec::CalCom => "https://app.cal.com".to_owned(),
            local::ProviderSpec::Sandbox { url } => url.clone(),
            local::ProviderSpec::Custom { authorize_url, .. } => authorize_url.clone(),
        }),
        "redirect_uri": record.map(|r| r.redirect_uri.clone()),
        "scopes": c.scopes.join(","),
        "status": c.status.as_str(),
        "status_reason": c.status_reason,
        "access_expires_at": fmt(c.access_expires_at),
        "last_refreshed_at": fmt(Some(c.last_refreshed_at)),
        "refresh_expires_at_estimate": fmt(c.refresh_expires_at_estimate),
        "created_at": fmt(Some(c.created_at)),
        "has_refresh_token": c.refresh_token.is_some(),
    })
}
