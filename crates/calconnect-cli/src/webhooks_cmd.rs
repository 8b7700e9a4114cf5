//! `calconnect webhooks test|redeliver`: the broker's webhooks, from its configuration file.
//!
//! `test` signs a `webhook.test` event with the configured secrets and sends it to every
//! configured endpoint now (no running broker needed), then says what each receiver answered.
//! `redeliver` queues a logged delivery again on the broker's database; a running broker sends
//! it within a few seconds.

use crate::serve_cmd::load_config;
use anyhow::Context as _;
use calconnect::{Clock as _, SystemClock};
use calconnect_broker::webhooks::{self, RedeliverError};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, clap::Args)]
pub struct WebhooksArgs {
    /// The broker's configuration file (webhooks.urls, the secrets, the database URL);
    /// CALCONNECT_* variables apply.
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: WebhooksCommand,
}

#[derive(Debug, clap::Subcommand)]
enum WebhooksCommand {
    /// Send a signed `webhook.test` event to every configured endpoint now, and print what each
    /// answered. Exits 1 when one did not answer 2xx.
    Test,
    /// Send a logged delivery's event again (same event id and body, signed anew): queued on
    /// the broker's database, sent by the running broker.
    Redeliver {
        /// The delivery's id (`id` in GET /api/v1/webhook-deliveries).
        id: i64,
    },
}

pub async fn run(args: WebhooksArgs) -> anyhow::Result<()> {
    let config = load_config(args.config.as_deref())?;
    let clock = SystemClock;
    match args.command {
        WebhooksCommand::Test => {
            let report = webhooks::send_test(&config, clock.now().unix_timestamp()).await?;
            let mut failed = 0;
            for r in &report.results {
                match (r.delivered, r.status_code, r.error.as_deref()) {
                    (true, Some(code), _) => println!("ok    {} answered {code}", r.endpoint),
                    (_, _, error) => {
                        failed += 1;
                        let why = error.unwrap_or("not delivered");
                        println!("FAIL  {}: {why}{}", r.endpoint, hint(r.status_code));
                    }
                }
            }
            eprintln!(
                "sent {} ({}) to {} endpoint(s)",
                report.event_id,
                webhooks::TEST_EVENT_TYPE,
                report.results.len()
            );
            if failed > 0 {
                anyhow::bail!("{failed} of {} endpoint(s) failed", report.results.len());
            }
        }
        WebhooksCommand::Redeliver { id } => {
            let now_ms = clock.now().unix_timestamp() * 1000;
            let (_store, db) = calconnect_broker::open_storage(&config.database, Arc::new(clock))
                .await
                .context("cannot open the broker's database")?;
            match webhooks::redeliver(&db, &config, id, now_ms).await {
                Ok(queued) => {
                    println!("{}", queued.id);
                    eprintln!(
                        "queued {} ({}) for {} as delivery {}; the running broker sends it",
                        queued.event_id, queued.event_type, queued.endpoint, queued.id
                    );
                }
                Err(e @ RedeliverError::Db(_)) => {
                    return Err(anyhow::Error::new(e).context("cannot queue the redelivery"));
                }
                Err(e) => anyhow::bail!("{e}"),
            }
        }
    }
    Ok(())
}

/// What a receiver's status usually means.
fn hint(status: Option<i64>) -> &'static str {
    match status {
        Some(401 | 403) => {
            " (the receiver refused the signature: does it use the secret of CALCONNECT_WEBHOOK_SECRET, and hash the raw body?)"
        }
        Some(404 | 405) => " (is the URL in webhooks.urls the receiver's route?)",
        None => " (is the receiver running and reachable from here?)",
        _ => "",
    }
}
