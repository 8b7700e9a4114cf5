//! `calconnect keys generate`: a new sealing key, printed or written to a key file (mode 0600).

use anyhow::Context as _;
use calconnect::Clock as _;
use calconnect::crypto::{KEYS_ENV, KeyId, Keyring, SealingKey};
use calconnect::store::{ConnectionStore, rotate_keys};
use rand::RngCore as _;
use rand::rngs::OsRng;
use secrecy::{ExposeSecret as _, SecretString};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, clap::Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Debug, clap::Subcommand)]
enum KeysCommand {
    /// Generate a sealing key (XChaCha20-Poly1305, 256 bits) for tokens stored at rest.
    ///
    /// The key is printed on standard output, or written with --out to a new file readable only
    /// by you (0600). Use it as CALCONNECT_KEYS=<key> or as the first line of a key file.
    ///
    /// To rotate: generate a key, put it first (it becomes active), keep the old key after it,
    /// restart every instance, run `calconnect keys rotate`, then remove the old key.
    ///
    /// Examples:
    ///   calconnect keys generate
    ///   calconnect keys generate --id prod-2026-01 --out /etc/calconnect/keys
    #[command(verbatim_doc_comment)]
    Generate(GenerateArgs),
    /// Re-seal every stored token with the active key, online, in batches.
    ///
    /// Keys come from --key-file or CALCONNECT_KEYS (first = active). Every key that sealed a
    /// stored row must be present. Safe while brokers run: writes are fenced, so a refresh that
    /// lands meanwhile is kept. When it finishes, the old keys can be removed.
    ///
    /// Examples:
    ///   calconnect keys rotate --sqlite calconnect.db --key-file keys
    ///   CALCONNECT_DATABASE_URL=postgres://... calconnect keys rotate --key-file keys
    #[command(verbatim_doc_comment)]
    Rotate(RotateArgs),
}

#[derive(Debug, clap::Args)]
struct RotateArgs {
    /// SQLite database file.
    #[arg(
        long,
        conflicts_with = "postgres_url",
        required_unless_present = "postgres_url"
    )]
    sqlite: Option<PathBuf>,
    /// PostgreSQL URL.
    #[arg(long, env = "CALCONNECT_DATABASE_URL", hide_env_values = true)]
    postgres_url: Option<String>,
    /// Key file (one key per line, first active). Default: the CALCONNECT_KEYS variable.
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// Rows per batch.
    #[arg(long, default_value_t = 500)]
    batch_size: u32,
}

#[derive(Debug, clap::Args)]
struct GenerateArgs {
    /// Key id written into every value it seals (A-Z a-z 0-9 . _ -, at most 64).
    /// Default: key-<date>-<random>.
    #[arg(long)]
    id: Option<String>,
    /// Write the key to this new file (mode 0600) instead of printing it. Refuses to overwrite.
    #[arg(long)]
    out: Option<PathBuf>,
}

pub async fn run(args: KeysArgs) -> anyhow::Result<()> {
    match args.command {
        KeysCommand::Generate(args) => generate(args),
        KeysCommand::Rotate(args) => rotate(args).await,
    }
}

fn default_id() -> String {
    let today = calconnect::SystemClock.now().date();
    let mut suffix = [0u8; 3];
    OsRng.fill_bytes(&mut suffix);
    format!(
        "key-{:04}{:02}{:02}-{}",
        today.year(),
        u8::from(today.month()),
        today.day(),
        hex::encode(suffix)
    )
}

fn generate(args: GenerateArgs) -> anyhow::Result<()> {
    let id = KeyId::new(&args.id.unwrap_or_else(default_id))?;
    let key = SealingKey::generate(id.clone(), &mut OsRng);
    let text = key.to_text();
    match args.out {
        None => {
            println!("{}", text.expose_secret());
            eprintln!(
                "generated key `{id}`; set it as {KEYS_ENV} or as the first line of a key file, and keep a copy: tokens sealed with it cannot be read without it"
            );
        }
        Some(path) => {
            write_new_private(&path, &format!("{}\n", text.expose_secret()))?;
            eprintln!(
                "wrote key `{id}` to {} (mode 0600); keep a copy: tokens sealed with it cannot be read without it",
                path.display()
            );
        }
    }
    Ok(())
}

async fn rotate(args: RotateArgs) -> anyhow::Result<()> {
    let keyring = match &args.key_file {
        Some(path) => Keyring::from_key_file(path)?,
        None => Keyring::from_env()?.with_context(|| {
            format!("no keys: pass --key-file or set {KEYS_ENV} (first key = active)")
        })?,
    };
    let clock: Arc<dyn calconnect::Clock> = Arc::new(calconnect::SystemClock);
    let store: Arc<dyn ConnectionStore> = match (&args.sqlite, args.postgres_url) {
        (Some(path), _) => Arc::new(calconnect_sqlite::SqliteStore::open(path, clock).await?),
        (None, Some(url)) => Arc::new(
            calconnect_postgres::PostgresStore::connect(&SecretString::from(url), clock).await?,
        ),
        (None, None) => anyhow::bail!("pass --sqlite FILE or --postgres-url URL"),
    };
    eprintln!(
        "re-sealing with active key `{}`...",
        keyring.active_key_id()
    );
    let done = rotate_keys(
        store.as_ref(),
        &keyring,
        &mut OsRng,
        args.batch_size,
        &mut |p| {
            eprintln!(
                "  {}/{} connections scanned, {} re-sealed, {} retried after concurrent writes, {} pending authorizations re-sealed",
                p.connections_scanned,
                p.connections_total,
                p.connections_resealed,
                p.conflicts_retried,
                p.pending_resealed
            );
        },
    )
    .await?;
    eprintln!(
        "done: {} connections and {} pending authorizations re-sealed with `{}`; keys other than the active one can now be removed",
        done.connections_resealed,
        done.pending_resealed,
        keyring.active_key_id()
    );
    Ok(())
}

fn write_new_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).with_context(|| {
        format!(
            "cannot create key file {} (it must not exist yet)",
            path.display()
        )
    })?;
    file.write_all(contents.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write key file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_key_file_is_private_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        generate(GenerateArgs {
            id: Some("t1".into()),
            out: Some(path.clone()),
        })
        .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let ring = calconnect::crypto::Keyring::from_key_file(&path).unwrap();
        assert_eq!(ring.active_key_id().as_str(), "t1");
        // Never overwrites.
        assert!(
            generate(GenerateArgs {
                id: Some("t2".into()),
                out: Some(path)
            })
            .is_err()
        );
    }

    #[tokio::test]
    async fn rotate_reseals_a_sqlite_database() {
        use calconnect::crypto::{SealContext, SealedField};
        use calconnect::store::{CalIdentity, CalOwner, EndUserId, TokensToSave, save_connection};
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("c.db");
        let old = SealingKey::generate(KeyId::new("old").unwrap(), &mut OsRng);
        let new = SealingKey::generate(KeyId::new("new").unwrap(), &mut OsRng);
        let old_text = old.to_text();
        let store = calconnect_sqlite::SqliteStore::open(&db, Arc::new(calconnect::SystemClock))
            .await
            .unwrap();
        let saved = save_connection(
            &store,
            &Keyring::new(vec![old]).unwrap(),
            &mut OsRng,
            TokensToSave {
                end_user: EndUserId::new("u").unwrap(),
                identity: CalIdentity {
                    client_id: "c".into(),
                    owner: CalOwner::User(1),
                },
                scopes: vec![],
                access_token: SecretString::from("tok"),
                refresh_token: None,
                access_expires_at: None,
                refresh_expires_at_estimate: None,
                profile: None,
            },
        )
        .await
        .unwrap();
        let keys = dir.path().join("keys");
        std::fs::write(
            &keys,
            format!(
                "{}\n{}\n",
                new.to_text().expose_secret(),
                old_text.expose_secret()
            ),
        )
        .unwrap();
        rotate(RotateArgs {
            sqlite: Some(db),
            postgres_url: None,
            key_file: Some(keys),
            batch_size: 10,
        })
        .await
        .unwrap();
        let c = store.get_connection(saved.connection().id).await.unwrap();
        let only_new = Keyring::new(vec![new]).unwrap();
        let ctx = SealContext::connection(c.id.as_uuid(), SealedField::AccessToken);
        assert_eq!(
            only_new
                .open_string(&c.access_token, ctx)
                .unwrap()
                .expose_secret(),
            "tok"
        );
    }

    #[test]
    fn default_id_is_valid() {
        KeyId::new(&default_id()).unwrap();
    }
}
