//! `calconnect keys generate`: a new sealing key, printed or written to a key file (mode 0600).

use anyhow::Context as _;
use calconnect::Clock as _;
use calconnect::crypto::{KEYS_ENV, KeyId, SealingKey};
use rand::RngCore as _;
use rand::rngs::OsRng;
use secrecy::ExposeSecret as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

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
    /// restart every instance, re-seal the stored rows (calconnect::store::rotate_keys), then
    /// remove the old key.
    ///
    /// Examples:
    ///   calconnect keys generate
    ///   calconnect keys generate --id prod-2026-01 --out /etc/calconnect/keys
    #[command(verbatim_doc_comment)]
    Generate(GenerateArgs),
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
        let ring = calconnect::Keyring::from_key_file(&path).unwrap();
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

    #[test]
    fn default_id_is_valid() {
        KeyId::new(&default_id()).unwrap();
    }
}
