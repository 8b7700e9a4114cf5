//! The configuration checks (`calconnect doctor --config`, `serve` at start) against a real
//! sandbox, database and keys: one test per kind of mistake, and `/readyz` with the wrong keys.

use crate::helpers::*;
use calconnect::crypto::{KeyId, SealingKey};
use calconnect_broker::BrokerConfig;
use calconnect_broker::checks::{self, Outcome, Report};
use calconnect_broker::config::Env;
use calconnect_sandbox::{CONFIDENTIAL_CLIENT_ID, CONFIDENTIAL_CLIENT_SECRET, ClientType, Sandbox};
use reqwest::StatusCode;
use secrecy::ExposeSecret;
use std::sync::Arc;

struct Setup {
    sandbox: Arc<Sandbox>,
    dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let sandbox = Sandbox::builder()
        .redirect_uri(
            ClientType::Confidential,
            "http://127.0.0.1:9/oauth/callback",
        )
        .start()
        .await
        .unwrap();
    Setup {
        sandbox: Arc::new(sandbox),
        dir: tempfile::tempdir().unwrap(),
    }
}

impl Setup {
    fn toml(&self, client_id: &str, scopes: &str, extra: &str) -> String {
        format!(
            r#"
public_base_url = "http://127.0.0.1:9"
database_url = "sqlite://{db}"
[provider]
kind = "sandbox"
web_url = "{sandbox}"
[client]
id = "{client_id}"
scopes = {scopes}
{extra}
"#,
            db = self.dir.path().join("broker.db").display(),
            sandbox = self.sandbox.base_url().as_str().trim_end_matches('/'),
        )
    }

    fn config(&self, toml: &str, vars: &[(&str, &str)]) -> BrokerConfig {
        let mut env: Env = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        env.entry("CALCONNECT_KEYS".into()).or_insert_with(key_text);
        BrokerConfig::from_toml_and_env(toml, &env).unwrap()
    }

    fn right(&self) -> String {
        self.toml(
            CONFIDENTIAL_CLIENT_ID,
            r#"["PROFILE_READ", "SCHEDULE_READ"]"#,
            "",
        )
    }
}

async fn run(config: &BrokerConfig) -> Report {
    checks::run(config, Arc::new(calconnect::SystemClock)).await
}

fn failed<'a>(report: &'a Report, name: &str) -> (&'a str, &'a str) {
    match report.outcome(name) {
        Some(Outcome::Fail { problem, fix }) => (problem, fix),
        other => panic!("{name}: expected a failure, got {other:?} in {report:#?}"),
    }
}

#[tokio::test]
async fn a_right_configuration_passes_every_check() {
    let s = setup().await;
    let config = s.config(
        &s.right(),
        &[("CALCONNECT_CLIENT_SECRET", CONFIDENTIAL_CLIENT_SECRET)],
    );
    let report = run(&config).await;
    assert_eq!(report.failures(), 0, "{report:#?}");
    let Some(Outcome::Ok(client)) = report.outcome("client credentials") else {
        panic!("{report:#?}");
    };
    assert!(
        client.contains(&format!(
            "accepts client `{CONFIDENTIAL_CLIENT_ID}` and its secret"
        )) && client.contains("invalid_refresh_token"),
        "{client}"
    );
    let Some(Outcome::Ok(redirect)) = report.outcome("redirect URI") else {
        panic!("{report:#?}");
    };
    assert!(
        redirect.starts_with("http://127.0.0.1:9/oauth/callback: register exactly this URI"),
        "{redirect}"
    );
    assert!(
        matches!(report.outcome("sealing keys"), Some(Outcome::Ok(k)) if k.contains("no tokens stored yet"))
    );
    let Some(Outcome::Ok(budget)) = report.outcome("refresh budget") else {
        panic!("{report:#?}");
    };
    assert!(
        budget.contains("100 token requests per minute (burst 10)")
            && budget.contains("3000 connections in constant use")
            && budget.contains("2160000 idle ones")
            && budget.contains("0 active"),
        "{budget}"
    );
    assert!(matches!(
        report.outcome("webhook receiver"),
        Some(Outcome::Skip(_))
    ));
    // The sandbox saw one refresh, refused for the made-up token after the client passed.
    assert_eq!(
        s.sandbox
            .token_calls("refresh_token", "invalid_grant:invalid_refresh_token"),
        1
    );
}

#[tokio::test]
async fn a_wrong_secret_a_missing_secret_and_an_unknown_client_fail_the_client_check() {
    let s = setup().await;
    let wrong = "a-wrong-client-secret-value";
    let report = run(&s.config(&s.right(), &[("CALCONNECT_CLIENT_SECRET", wrong)])).await;
    let (problem, fix) = failed(&report, "client credentials");
    assert!(
        problem.contains("refuses the secret") && problem.contains("invalid_client_credentials"),
        "{problem}"
    );
    assert!(fix.contains("CALCONNECT_CLIENT_SECRET"), "{fix}");
    assert!(
        !format!("{report:?}").contains(wrong),
        "the secret is never shown"
    );

    let report = run(&s.config(&s.right(), &[])).await;
    let (problem, fix) = failed(&report, "client credentials");
    assert!(problem.contains("confidential client"), "{problem}");
    assert!(fix.contains("CALCONNECT_CLIENT_SECRET"), "{fix}");

    let unknown = s.toml("no-such-client", r#"["PROFILE_READ"]"#, "");
    let report = run(&s.config(&unknown, &[("CALCONNECT_CLIENT_SECRET", wrong)])).await;
    let (problem, fix) = failed(&report, "client credentials");
    assert!(
        problem.contains("does not know client `no-such-client`")
            && problem.contains("client_not_found"),
        "{problem}"
    );
    assert!(fix.contains("client.id (CALCONNECT_CLIENT_ID)"), "{fix}");
}

/// Cal.com without the v2 endpoint (calcom#27685): the refresh falls back to the legacy route,
/// whose errors carry no reason; a provider error for now is only a warning.
#[tokio::test]
async fn the_legacy_fallback_and_a_provider_outage() {
    use calconnect_sandbox::{FaultKind, FaultSpec, FaultTarget};
    let s = setup().await;
    let not_found = || FaultSpec {
        kind: FaultKind::NotFound,
        target: FaultTarget::V2,
        count: None,
        for_seconds: Some(600),
    };
    s.sandbox.arm_fault(not_found()).unwrap();
    let report = run(&s.config(
        &s.right(),
        &[("CALCONNECT_CLIENT_SECRET", CONFIDENTIAL_CLIENT_SECRET)],
    ))
    .await;
    let Some(Outcome::Ok(client)) = report.outcome("client credentials") else {
        panic!("{report:#?}");
    };
    assert!(
        client.contains("refused with invalid_grant, as it must be"),
        "{client}"
    );
    let report = run(&s.config(&s.right(), &[("CALCONNECT_CLIENT_SECRET", "wrong-secret")])).await;
    let (problem, fix) = failed(&report, "client credentials");
    assert!(problem.contains("or its secret"), "{problem}");
    assert!(
        fix.contains("client.id") && fix.contains("CALCONNECT_CLIENT_SECRET"),
        "{fix}"
    );

    s.sandbox.clear_faults();
    s.sandbox
        .inject_fault(FaultKind::ServerError { status: 503 }, 10)
        .unwrap();
    let report = run(&s.config(
        &s.right(),
        &[("CALCONNECT_CLIENT_SECRET", CONFIDENTIAL_CLIENT_SECRET)],
    ))
    .await;
    assert_eq!(report.failures(), 0, "{report:#?}");
    assert!(
        matches!(report.outcome("client credentials"), Some(Outcome::Warn { problem, .. }) if problem.contains("503")),
        "{report:#?}"
    );
}

#[tokio::test]
async fn an_unknown_scope_fails_with_a_suggestion_and_a_legacy_one_warns() {
    let s = setup().await;
    let secret = [("CALCONNECT_CLIENT_SECRET", CONFIDENTIAL_CLIENT_SECRET)];
    let toml = s.toml(
        CONFIDENTIAL_CLIENT_ID,
        r#"["PROFILE_RAED", "SCHEDULE_READ"]"#,
        "",
    );
    let report = run(&s.config(&toml, &secret)).await;
    let (problem, fix) = failed(&report, "scopes");
    assert!(
        problem.contains("`PROFILE_RAED` (did you mean PROFILE_READ?)"),
        "{problem}"
    );
    assert!(fix.contains("client.scopes"), "{fix}");
    assert_eq!(report.failures(), 1, "{report:#?}");

    let toml = s.toml(CONFIDENTIAL_CLIENT_ID, r#"["READ_BOOKING"]"#, "");
    let report = run(&s.config(&toml, &secret)).await;
    assert!(
        matches!(report.outcome("scopes"), Some(Outcome::Warn { problem, .. }) if problem.contains("`READ_BOOKING` (now BOOKING_READ)")),
        "{report:#?}"
    );
}

#[tokio::test]
async fn an_unreachable_database_fails_with_connection_refused() {
    let s = setup().await;
    let toml = s.right().replace(
        &format!("sqlite://{}", s.dir.path().join("broker.db").display()),
        "postgres://calconnect:db-password@127.0.0.1:1/calconnect",
    );
    let report = run(&s.config(
        &toml,
        &[("CALCONNECT_CLIENT_SECRET", CONFIDENTIAL_CLIENT_SECRET)],
    ))
    .await;
    let (problem, fix) = failed(&report, "database");
    assert!(problem.contains("connection refused"), "{problem}");
    assert!(problem.contains("127.0.0.1:1"), "{problem}");
    assert!(
        !problem.contains("db-password") && !problem.contains("timed out"),
        "{problem}"
    );
    assert!(fix.contains("CALCONNECT_DATABASE_URL"), "{fix}");
    assert!(matches!(
        report.outcome("sealing keys"),
        Some(Outcome::Skip(_))
    ));
    // The other checks still ran.
    assert!(matches!(
        report.outcome("client credentials"),
        Some(Outcome::Ok(_))
    ));
}

#[tokio::test]
async fn an_unreachable_webhook_receiver_is_a_warning() {
    let s = setup().await;
    let toml = s.toml(
        CONFIDENTIAL_CLIENT_ID,
        r#"["PROFILE_READ"]"#,
        "[webhooks]\nurls = [\"http://127.0.0.1:1/hooks?token=receiver-token\"]",
    );
    let report = run(&s.config(
        &toml,
        &[
            ("CALCONNECT_CLIENT_SECRET", CONFIDENTIAL_CLIENT_SECRET),
            ("CALCONNECT_WEBHOOK_SECRET", WEBHOOK_SECRET),
        ],
    ))
    .await;
    assert_eq!(report.failures(), 0, "{report:#?}");
    let Some(Outcome::Warn { problem, fix }) = report.outcome("webhook receiver") else {
        panic!("{report:#?}");
    };
    assert!(
        problem.starts_with("http://127.0.0.1:1/hooks cannot be reached"),
        "{problem}"
    );
    assert!(!problem.contains("receiver-token"), "{problem}");
    assert!(fix.contains("webhooks.urls"), "{fix}");
}

/// A keyring without the key that sealed the stored tokens: the checks fail (naming the key,
/// for another id; saying the material differs, for the same id) and `/readyz` answers 503.
#[tokio::test]
async fn keys_that_cannot_open_the_stored_tokens_fail_the_check_and_readyz() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}", dir.path().join("broker.db").display());
    let app = spawn_with(Options {
        database_url: Some(database_url.clone()),
        ..Options::default()
    })
    .await;
    app.connected("u1", ALICE).await;
    let sandbox = app.sandbox.clone();
    let toml = format!(
        r#"
public_base_url = "{base}"
database_url = "{database_url}"
[provider]
kind = "sandbox"
web_url = "{web}"
[client]
id = "{CONFIDENTIAL_CLIENT_ID}"
scopes = ["PROFILE_READ"]
"#,
        base = app.base,
        web = sandbox.base_url().as_str().trim_end_matches('/'),
    );
    let other_id = SealingKey::generate(KeyId::new("other").unwrap(), &mut rand::rngs::OsRng)
        .to_text()
        .expose_secret()
        .to_owned();
    let config = |keys: &str| {
        let env: Env = [
            ("CALCONNECT_KEYS".to_owned(), keys.to_owned()),
            (
                "CALCONNECT_CLIENT_SECRET".to_owned(),
                CONFIDENTIAL_CLIENT_SECRET.to_owned(),
            ),
        ]
        .into();
        BrokerConfig::from_toml_and_env(&toml, &env).unwrap()
    };
    let report = run(&config(&other_id)).await;
    let (problem, fix) = failed(&report, "sealing keys");
    assert!(problem.contains("sealed with key `test`"), "{problem}");
    assert!(fix.contains("add key `test`"), "{fix}");
    // Same id, other material (`key_text` makes a fresh key named `test`).
    let report = run(&config(&key_text())).await;
    let (problem, fix) = failed(&report, "sealing keys");
    assert!(problem.contains("does not match"), "{problem}");
    assert!(fix.contains("restore the original key `test`"), "{fix}");

    // A second instance on the same database with the wrong keys is not ready.
    let (status, body) = json_of(app.http.get(app.url("/readyz")).send().await.unwrap()).await;
    assert_eq!(
        (status, &body["keys"]),
        (StatusCode::OK, &true.into()),
        "{body}"
    );
    let wrong = spawn_with(Options {
        database_url: Some(database_url),
        sandbox: Some(sandbox),
        env: [("CALCONNECT_KEYS".to_owned(), other_id)].into(),
        ..Options::default()
    })
    .await;
    let (status, body) = json_of(wrong.http.get(wrong.url("/readyz")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["keys"], false, "{body}");
    assert_eq!(body["store"], true, "{body}");
}

/// A budget paused by a 429 (docs/scaling.md) is a warning that says for how long and what to
/// check; a budget set above Cal.com's limit is a warning too.
#[tokio::test]
async fn a_paused_or_too_large_budget_is_a_warning() {
    let s = setup().await;
    let config = s.config(
        &s.right(),
        &[("CALCONNECT_CLIENT_SECRET", CLIENT_SECRET_TEXT)],
    );
    let clock: Arc<dyn calconnect::Clock> = Arc::new(calconnect::SystemClock);
    let (store, _db) = calconnect_broker::open_storage(&config.database, clock.clone())
        .await
        .unwrap();
    let budget = store.budget(config.budget.clone(), clock.clone());
    budget
        .pause(calconnect::Clock::now(&*clock) + time::Duration::seconds(60))
        .await
        .unwrap();
    let report = run(&config).await;
    let Some(Outcome::Warn { problem, fix }) = report.outcome("refresh budget") else {
        panic!("{report:#?}");
    };
    assert!(
        problem.contains("paused for") && problem.contains("429"),
        "{problem}"
    );
    assert!(fix.contains("budget.per_minute"), "{fix}");
    assert_eq!(report.failures(), 0, "{report:#?}");

    let s = setup().await;
    let toml = format!("{}[budget]\nper_minute = 120\n", s.right());
    let config = s.config(&toml, &[("CALCONNECT_CLIENT_SECRET", CLIENT_SECRET_TEXT)]);
    let report = run(&config).await;
    let Some(Outcome::Warn { problem, .. }) = report.outcome("refresh budget") else {
        panic!("{report:#?}");
    };
    assert!(problem.contains("above Cal.com's 120"), "{problem}");

    // A small budget with the default 10 s wait: a permit every 12 s, callers give up first.
    let s = setup().await;
    let toml = format!(
        "{}[budget]\nper_minute = 5\nburst = 2\nexchange_reserve = 1\n",
        s.right()
    );
    let config = s.config(&toml, &[("CALCONNECT_CLIENT_SECRET", CLIENT_SECRET_TEXT)]);
    let report = run(&config).await;
    let Some(Outcome::Warn { problem, fix }) = report.outcome("refresh budget") else {
        panic!("{report:#?}");
    };
    assert!(problem.contains("max_wait (10 s)"), "{problem}");
    assert!(fix.contains("budget.max_wait_secs to at least 36"), "{fix}");
}
