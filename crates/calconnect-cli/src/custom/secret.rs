//! The client secret of a confidential custom client: where it is read from, and how it is kept.
//!
//! Read from a file (`--client-secret-file`), standard input (`--client-secret-stdin`) or
//! `CALCONNECT_CLIENT_SECRET`; a plain `--client-secret VALUE` works but warns loudly, since it
//! lands in the shell's history and the process list. Kept sealed with the key file (like the
//! tokens, docs/architecture.md §6.4), bound to a random id so the blob opens nowhere else. It
//! never reaches a message, a log or `Debug`.

use crate::exit::CliError;
use calconnect::ClientSecret;
use calconnect::crypto::{Keyring, SealContext, SealedBlob};
use serde::{Deserialize, Serialize};
use std::io::Read as _;
use std::path::Path;
use uuid::Uuid;

/// The environment variable that can hold the client secret.
pub const SECRET_ENV: &str = "CALCONNECT_CLIENT_SECRET";

/// Where the secret came from (named in messages; never the value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretSource {
    File,
    Stdin,
    Env,
    Flag,
}

impl SecretSource {
    pub fn describe(self) -> &'static str {
        match self {
            Self::File => "--client-secret-file",
            Self::Stdin => "--client-secret-stdin",
            Self::Env => SECRET_ENV,
            Self::Flag => "--client-secret",
        }
    }
}

/// What the flags say about the secret.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SecretArgs {
    /// Read the client secret (confidential clients) from this file; a trailing newline is
    /// ignored. Or set CALCONNECT_CLIENT_SECRET.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["client_secret_stdin", "client_secret"])]
    pub client_secret_file: Option<std::path::PathBuf>,
    /// Read the client secret from standard input (e.g. from a password manager).
    #[arg(long, conflicts_with = "client_secret")]
    pub client_secret_stdin: bool,
    /// The client secret itself. Discouraged: it lands in your shell history and the process
    /// list; prefer --client-secret-file, --client-secret-stdin or CALCONNECT_CLIENT_SECRET.
    #[arg(long, value_name = "SECRET", value_parser = parse_secret)]
    pub client_secret: Option<ClientSecret>,
}

/// Keeps the flag's value a [`ClientSecret`] from the start (its `Debug` is redacted).
fn parse_secret(s: &str) -> Result<ClientSecret, String> {
    Ok(ClientSecret::new(s))
}

impl SecretArgs {
    /// Whether a secret flag was given (not the environment).
    pub fn given(&self) -> bool {
        self.client_secret_file.is_some()
            || self.client_secret_stdin
            || self.client_secret.is_some()
    }

    /// Reads the secret from the flag given, else the environment; `None` when there is none.
    pub fn read(&self) -> Result<Option<(ClientSecret, SecretSource)>, CliError> {
        let (text, source) = if let Some(path) = &self.client_secret_file {
            (read_file(path)?, SecretSource::File)
        } else if self.client_secret_stdin {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text).map_err(|e| {
                CliError::other(format!(
                    "cannot read the client secret from standard input: {e}"
                ))
            })?;
            (text, SecretSource::Stdin)
        } else if let Some(value) = &self.client_secret {
            eprintln!(
                "WARNING: --client-secret puts the client secret in your shell history and in the process list of this machine; use --client-secret-file, --client-secret-stdin or {SECRET_ENV} instead"
            );
            (value.expose_secret().to_owned(), SecretSource::Flag)
        } else {
            match std::env::var(SECRET_ENV) {
                Ok(value) if !value.is_empty() => (value, SecretSource::Env),
                _ => return Ok(None),
            }
        };
        let trimmed = text.trim_end_matches(['\r', '\n']);
        if trimmed.is_empty() {
            return Err(CliError::usage(format!(
                "the client secret from {} is empty",
                source.describe()
            )));
        }
        Ok(Some((ClientSecret::new(trimmed), source)))
    }
}

fn read_file(path: &Path) -> Result<String, CliError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                eprintln!(
                    "warning: {} is readable by other users; chmod 600 it",
                    path.display()
                );
            }
        }
    }
    std::fs::read_to_string(path).map_err(|e| {
        CliError::usage(format!(
            "cannot read --client-secret-file {}: {e}",
            path.display()
        ))
    })
}

/// A client secret sealed with the key file, as stored in `connections.json` and
/// `profiles.json`: the seal's record id and the blob in hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedSecret {
    id: Uuid,
    sealed: String,
}

impl SealedSecret {
    /// Seals `secret` with the keyring's active key.
    pub fn seal(keyring: &Keyring, secret: &ClientSecret) -> Result<Self, CliError> {
        let id = Uuid::new_v4();
        let blob = keyring
            .seal(
                &mut rand::rngs::OsRng,
                SealContext::client_secret(id),
                secret.expose_secret().as_bytes(),
            )
            .map_err(|e| CliError::other(format!("cannot seal the client secret: {e}")))?;
        Ok(Self {
            id,
            sealed: hex::encode(blob.as_bytes()),
        })
    }

    /// Opens the secret with the keyring.
    pub fn open(&self, keyring: &Keyring) -> Result<ClientSecret, CliError> {
        let unusable = |why: String| {
            CliError::other(format!(
                "the saved client secret cannot be opened ({why}): put back the key file that sealed it, or log in again with the secret"
            ))
        };
        let bytes = hex::decode(&self.sealed).map_err(|_| unusable("not hex".into()))?;
        let opened = keyring
            .open_string(
                &SealedBlob::from_bytes(bytes),
                SealContext::client_secret(self.id),
            )
            .map_err(|e| unusable(e.to_string()))?;
        use secrecy::ExposeSecret as _;
        Ok(ClientSecret::new(opened.expose_secret()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use calconnect::crypto::{KeyId, SealingKey};

    #[test]
    fn sealed_secrets_round_trip_and_hide_the_value() {
        let keyring = Keyring::new(vec![SealingKey::generate(
            KeyId::new("k").unwrap(),
            &mut rand::rngs::OsRng,
        )])
        .unwrap();
        let sealed = SealedSecret::seal(&keyring, &ClientSecret::new("hunter2-secret")).unwrap();
        let json = serde_json::to_string(&sealed).unwrap();
        assert!(!json.contains("hunter2"), "{json}");
        assert!(!format!("{sealed:?}").contains("hunter2"));
        let back: SealedSecret = serde_json::from_str(&json).unwrap();
        assert_eq!(
            back.open(&keyring).unwrap().expose_secret(),
            "hunter2-secret"
        );
        // Another id does not open it.
        let moved = SealedSecret {
            id: Uuid::new_v4(),
            ..back
        };
        assert!(moved.open(&keyring).is_err());
    }

    #[test]
    fn the_flag_s_value_is_redacted_in_debug() {
        let args = SecretArgs {
            client_secret: Some(parse_secret("hunter2-secret").unwrap()),
            ..SecretArgs::default()
        };
        assert!(!format!("{args:?}").contains("hunter2"), "{args:?}");
    }

    #[test]
    fn a_file_secret_loses_its_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        std::fs::write(&path, "abc\n").unwrap();
        let args = SecretArgs {
            client_secret_file: Some(path),
            ..SecretArgs::default()
        };
        let (secret, source) = args.read().unwrap().unwrap();
        assert_eq!(secret.expose_secret(), "abc");
        assert_eq!(source, SecretSource::File);
    }
}
