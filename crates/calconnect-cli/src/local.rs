//! The local side of `calconnect login`: where things live on this machine.
//!
//! - data folder: the SQLite store (`calconnect.db`), tokens sealed in it;
//! - config folder: the sealing key (`key`, mode 0600, folder 0700, created on first login) and
//!   `connections.json`, which remembers for each stored connection which provider and client it
//!   was made with (no secrets), so that `token` and `api` can refresh it.
//!
//! `CALCONNECT_HOME` puts both in one folder (tests set it per child process); otherwise the
//! platform's folders (`$XDG_DATA_HOME/calconnect`, `$XDG_CONFIG_HOME/calconnect`).

use crate::custom::CustomSpec;
use crate::exit::CliError;
use calconnect::crypto::{KeyId, Keyring, SealingKey};
use calconnect::store::{Connection, ConnectionStore};
use calconnect::{ProviderProfile, UrlPolicy};
use rand::rngs::OsRng;
use secrecy::ExposeSecret as _;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const HOME_ENV: &str = "CALCONNECT_HOME";
/// The end user every CLI connection belongs to (the store is per machine user).
pub const END_USER: &str = "cli";

/// The folders of this machine user.
#[derive(Debug, Clone)]
pub struct Home {
    pub data: PathBuf,
    pub config: PathBuf,
}

impl Home {
    /// `CALCONNECT_HOME`, else the platform folders.
    pub fn locate() -> Result<Self, CliError> {
        if let Some(home) = std::env::var_os(HOME_ENV).filter(|v| !v.is_empty()) {
            let home = PathBuf::from(home);
            return Ok(Self {
                data: home.clone(),
                config: home,
            });
        }
        let data = dirs::data_dir().map(|d| d.join("calconnect"));
        let config = dirs::config_dir().map(|d| d.join("calconnect"));
        match (data, config) {
            (Some(data), Some(config)) => Ok(Self { data, config }),
            _ => Err(CliError::other(format!(
                "cannot find your data and config folders (is HOME set?): set {HOME_ENV} to a folder for calconnect's files"
            ))),
        }
    }

    pub fn database(&self) -> PathBuf {
        self.data.join("calconnect.db")
    }

    pub fn key_file(&self) -> PathBuf {
        self.config.join("key")
    }

    pub fn records_file(&self) -> PathBuf {
        self.config.join("connections.json")
    }
}

/// Creates `dir` (and parents) with mode 0700 for the folders we create.
pub fn ensure_private_dir(dir: &Path) -> Result<(), CliError> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|e| {
        CliError::other(format!(
            "cannot create folder {}: {e}; create it or set {HOME_ENV} to a writable folder",
            dir.display()
        ))
    })
}

/// Writes `contents` to `path` atomically (temporary file + rename), mode 0600.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), CliError> {
    let tmp = path.with_extension("tmp");
    let fail = |e: std::io::Error| {
        CliError::other(format!(
            "cannot write {}: {e}; check the folder's permissions",
            path.display()
        ))
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp).map_err(fail)?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)
}

fn corrupt_key_message(path: &Path, why: &str) -> String {
    format!(
        "key file {} is unusable ({why}): move it aside (mv {0} {0}.bad) and run `calconnect login` again; tokens sealed with the old key cannot be read without it",
        path.display()
    )
}

/// Loads the key file; with `create`, makes one (0600, folder 0700) when there is none.
pub fn load_keyring(home: &Home, create: bool) -> Result<Keyring, CliError> {
    let path = home.key_file();
    if !path.exists() {
        if !create {
            return Err(CliError::auth(format!(
                "no key file at {}: run `calconnect login` first",
                path.display()
            )));
        }
        ensure_private_dir(&home.config)?;
        let key = SealingKey::generate(
            KeyId::new("cli-1").map_err(|e| CliError::other(e.to_string()))?,
            &mut OsRng,
        );
        let text = format!(
            "# calconnect sealing key: keep it private; tokens sealed with it are unreadable without it\n{}\n",
            key.to_text().expose_secret()
        );
        write_private(&path, text.as_bytes())?;
        eprintln!("Created a sealing key at {} (mode 0600).", path.display());
    }
    Keyring::from_key_file(&path).map_err(|e| match e {
        calconnect::crypto::KeyringError::File { source, .. } => CliError::other(format!(
            "cannot read key file {}: {source}; check its permissions (chmod 600)",
            path.display()
        )),
        other => CliError::other(corrupt_key_message(&path, &one_line_error(&other))),
    })
}

fn one_line_error(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        let text = inner.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        source = inner.source();
    }
    s
}

/// Opens (creating if needed) the SQLite store; migrations run on open.
pub async fn open_store(home: &Home) -> Result<Arc<dyn ConnectionStore>, CliError> {
    Ok(Arc::new(open_sqlite(home).await?))
}

/// [`open_store`], with the concrete type.
pub async fn open_sqlite(home: &Home) -> Result<calconnect_sqlite::SqliteStore, CliError> {
    ensure_private_dir(&home.data)?;
    let path = home.database();
    let store = calconnect_sqlite::SqliteStore::open(&path, Arc::new(calconnect::SystemClock))
        .await
        .map_err(|e| {
            CliError::other(format!(
                "cannot open the database {}: {}; move it aside and log in again if it is damaged",
                path.display(),
                one_line_error(&e)
            ))
        })?;
    Ok(store)
}

/// Which provider a connection was made with (no secret in clear: a custom client's secret is
/// sealed with the key file).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "profile", rename_all = "kebab-case")]
pub enum ProviderSpec {
    /// app.cal.com / api.cal.com.
    #[serde(rename = "cal.com")]
    CalCom,
    /// The local sandbox at `url`.
    Sandbox { url: String },
    /// Any RFC 6749 server (docs/architecture.md §3.8).
    Custom(Box<CustomSpec>),
}

impl ProviderSpec {
    pub fn name(&self) -> &'static str {
        match self {
            Self::CalCom => "cal.com",
            Self::Sandbox { .. } => "sandbox",
            Self::Custom { .. } => "custom",
        }
    }

    /// Builds the library's profile. Plain http is accepted for loopback hosts only.
    pub fn profile(&self) -> Result<ProviderProfile, CliError> {
        let bad = |e: calconnect::ProfileError| {
            CliError::usage(format!(
                "{e}: use an https URL (http only for 127.0.0.1/localhost)"
            ))
        };
        match self {
            Self::CalCom => Ok(ProviderProfile::cal_com()),
            Self::Sandbox { url } => {
                ProviderProfile::sandbox(url, UrlPolicy::allow_insecure_loopback_http())
                    .map_err(bad)
            }
            Self::Custom(spec) => spec.profile(None),
        }
    }

    /// Whether this is a Cal.com provider (cloud or sandbox): its wording and checks apply.
    pub fn is_cal_com(&self) -> bool {
        !matches!(self, Self::Custom(_))
    }
}

/// What `calconnect` remembers about one stored connection.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Record {
    #[serde(flatten)]
    pub provider: ProviderSpec,
    pub client_id: String,
    pub redirect_uri: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    /// The connection's name (`--name`; for a custom provider that names no account, also what
    /// identifies the connection).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The account as a custom provider names it (the store keeps only a digest of it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The saved profile (`--save-as`) the connection was made with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saved_profile: Option<String>,
}

impl Record {
    /// Whether `selector` names this record: its username, name, account or saved profile.
    pub fn answers_to(&self, selector: &str) -> bool {
        [
            &self.username,
            &self.name,
            &self.account,
            &self.saved_profile,
        ]
        .into_iter()
        .any(|v| v.as_deref() == Some(selector))
    }
}

/// `connections.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Records {
    #[serde(default)]
    pub default: Option<String>,
    #[serde(default)]
    pub connections: BTreeMap<String, Record>,
}

/// Reads a JSON file of the config folder (`connections.json`, `profiles.json`); a missing file
/// is the default value. `fix` says what to do with a broken one.
pub fn read_json<T: serde::de::DeserializeOwned + Default>(
    path: &Path,
    fix: &str,
) -> Result<T, CliError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            CliError::other(format!(
                "{} is not valid ({e}): move it aside and {fix}",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(CliError::other(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

/// Writes a JSON file of the config folder (mode 0600, atomically).
pub fn write_json<T: Serialize>(home: &Home, path: &Path, value: &T) -> Result<(), CliError> {
    ensure_private_dir(&home.config)?;
    let json = serde_json::to_vec_pretty(value)
        .map_err(|e| CliError::other(format!("cannot encode {}: {e}", path.display())))?;
    write_private(path, &json)
}

impl Records {
    pub fn load(home: &Home) -> Result<Self, CliError> {
        read_json(&home.records_file(), "run `calconnect login` again")
    }

    pub fn save(&self, home: &Home) -> Result<(), CliError> {
        write_json(home, &home.records_file(), self)
    }
}

/// Finds the connection `selector` names (its id, an id prefix, a username, its name, account
/// or saved profile), or the default one when no selector is given.
pub async fn select(
    store: &dyn ConnectionStore,
    records: &Records,
    selector: Option<&str>,
) -> Result<(Connection, Record), CliError> {
    let all = store
        .list_for_end_user(&end_user())
        .await
        .map_err(|e| CliError::other(format!("cannot list connections: {e}")))?;
    if all.is_empty() {
        return Err(CliError::auth(
            "no connection stored on this machine: run `calconnect login`",
        ));
    }
    let chosen = match selector {
        Some(sel) => {
            let matches: Vec<&Connection> = all
                .iter()
                .filter(|c| {
                    let id = c.id.as_uuid().to_string();
                    id == sel
                        || (sel.len() >= 4 && id.starts_with(sel))
                        || records
                            .connections
                            .get(&id)
                            .is_some_and(|r| r.answers_to(sel))
                })
                .collect();
            match matches.as_slice() {
                [one] => (*one).clone(),
                [] => {
                    return Err(CliError::usage(format!(
                        "no connection matches `{sel}`: see `calconnect connections list`"
                    )));
                }
                _ => {
                    return Err(CliError::usage(format!(
                        "`{sel}` matches several connections: pass the full id from `calconnect connections list`"
                    )));
                }
            }
        }
        None => {
            let default = records
                .default
                .as_deref()
                .and_then(|d| all.iter().find(|c| c.id.as_uuid().to_string() == d));
            match (default, all.as_slice()) {
                (Some(c), _) => c.clone(),
                (None, [one]) => one.clone(),
                (None, _) => {
                    return Err(CliError::usage(
                        "several connections are stored: pass --connection ID (see `calconnect connections list`)",
                    ));
                }
            }
        }
    };
    let record = records
        .connections
        .get(&chosen.id.as_uuid().to_string())
        .cloned()
        .ok_or_else(|| {
            CliError::other(format!(
                "connection {} has no provider record in connections.json: run `calconnect login` again",
                chosen.id
            ))
        })?;
    Ok((chosen, record))
}

#[allow(clippy::expect_used)] // reason: the constant is a valid end-user id (test `end_user_is_valid`)
pub fn end_user() -> calconnect::store::EndUserId {
    calconnect::store::EndUserId::new(END_USER).expect("valid end-user id")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_user_is_valid() {
        assert_eq!(end_user().as_str(), END_USER);
    }

    #[test]
    fn record_round_trips() {
        let r = Record {
            provider: ProviderSpec::Sandbox {
                url: "http://127.0.0.1:1".into(),
            },
            client_id: "c".into(),
            redirect_uri: "http://127.0.0.1:8976/callback".into(),
            username: Some("alice".into()),
            email: None,
            name: None,
            account: None,
            saved_profile: None,
        };
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains("\"profile\":\"sandbox\""), "{json}");
        assert_eq!(serde_json::from_str::<Record>(&json).unwrap(), r);
    }

    #[test]
    fn created_key_file_and_folder_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home {
            data: dir.path().join("d"),
            config: dir.path().join("c"),
        };
        load_keyring(&home, true).unwrap();
        load_keyring(&home, false).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&home.key_file()), 0o600);
            assert_eq!(mode(&home.config), 0o700);
        }
        std::fs::write(home.key_file(), "garbage\n").unwrap();
        let err = load_keyring(&home, false).unwrap_err();
        assert!(err.message.contains("move it aside"), "{}", err.message);
        assert!(!err.message.contains('\n'));
    }
}
