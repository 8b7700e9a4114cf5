//! Keeping the sandbox's grants across restarts ([`crate::SandboxBuilder::state_file`]): what a
//! real Cal.com keeps in its database — refresh-token rows, consent records, unused
//! authorization codes, client review statuses — and how far the sandbox's clock was moved, so
//! tokens it signed before a restart are judged on the same clock after it.
//!
//! The state is a JSON snapshot, written after every change by one background task (changes that
//! come in a burst are written once), atomically (a temporary file in the same folder, flushed,
//! then renamed over the old one) and readable only by its owner (mode 0600: it holds the
//! refresh tokens' secrets). A token endpoint answers only once the tokens it minted are on disk,
//! as Cal.com answers only once its database has them. Browser sessions, faults, counters and the
//! logs of issued codes and tokens are not kept; seed data (users, schedules, bookings) comes from
//! the seed at every start.

use crate::seed::ClientStatus;
use crate::state::{AccessCode, Authorization, Owner, RefreshTokenRow, Shared};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use time::OffsetDateTime;

/// The snapshot's format version.
const VERSION: u32 = 1;

/// The state file could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateFileError {
    /// The file exists but cannot be read.
    #[error("sandbox state file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not a sandbox state snapshot this version can read.
    #[error(
        "sandbox state file {path} is not a snapshot this version reads ({reason}); delete it to start the sandbox with no grants"
    )]
    Format { path: PathBuf, reason: String },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Snapshot {
    version: u32,
    /// How far the sandbox's clock is ahead of real time, in milliseconds.
    clock_offset_ms: i64,
    #[serde(default)]
    client_statuses: BTreeMap<String, ClientStatus>,
    #[serde(default)]
    refresh_tokens: Vec<SavedRefreshToken>,
    #[serde(default)]
    authorizations: Vec<SavedAuthorization>,
    #[serde(default)]
    codes: Vec<SavedCode>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum SavedOwner {
    User(i64),
    Team(i64),
}

impl From<Owner> for SavedOwner {
    fn from(o: Owner) -> Self {
        match o {
            Owner::User(id) => Self::User(id),
            Owner::Team(id) => Self::Team(id),
        }
    }
}

impl From<SavedOwner> for Owner {
    fn from(o: SavedOwner) -> Self {
        match o {
            SavedOwner::User(id) => Self::User(id),
            SavedOwner::Team(id) => Self::Team(id),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SavedRefreshToken {
    client_id: String,
    owner: SavedOwner,
    secret: String,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SavedAuthorization {
    user_id: i64,
    client_id: String,
    scopes: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    last_refreshed_at: Option<OffsetDateTime>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SavedCode {
    code: String,
    client_id: String,
    owner: SavedOwner,
    scopes: Vec<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
}

impl Snapshot {
    fn of(shared: &Shared) -> Self {
        let db = shared.db();
        Self {
            version: VERSION,
            clock_offset_ms: i64::try_from(shared.clock.offset().whole_milliseconds())
                .unwrap_or(i64::MAX),
            client_statuses: db
                .clients
                .values()
                .map(|c| (c.client_id.clone(), c.status))
                .collect(),
            refresh_tokens: db
                .refresh_tokens
                .iter()
                .map(|r| SavedRefreshToken {
                    client_id: r.client_id.clone(),
                    owner: r.owner.into(),
                    secret: r.secret.clone(),
                    expires_at: r.expires_at,
                })
                .collect(),
            authorizations: db
                .authorizations
                .iter()
                .map(|((user_id, client_id), a)| SavedAuthorization {
                    user_id: *user_id,
                    client_id: client_id.clone(),
                    scopes: a.scopes.clone(),
                    created_at: a.created_at,
                    last_refreshed_at: a.last_refreshed_at,
                })
                .collect(),
            codes: db
                .codes
                .values()
                .map(|c| SavedCode {
                    code: c.code.clone(),
                    client_id: c.client_id.clone(),
                    owner: c.owner.into(),
                    scopes: c.scopes.clone(),
                    code_challenge: c.code_challenge.clone(),
                    code_challenge_method: c.code_challenge_method.clone(),
                    expires_at: c.expires_at,
                })
                .collect(),
        }
    }

    /// Puts the snapshot into a freshly seeded sandbox. Rows of clients the seed no longer has
    /// are dropped (their tokens would be refused as `client_not_found` anyway).
    fn restore(self, shared: &Shared) {
        shared
            .clock
            .advance(time::Duration::milliseconds(self.clock_offset_ms));
        let mut db = shared.db();
        for (client_id, status) in self.client_statuses {
            if let Some(c) = db.clients.get_mut(&client_id) {
                c.status = status;
            }
        }
        let known = |db: &crate::state::Db, id: &str| db.clients.contains_key(id);
        for r in self.refresh_tokens {
            if known(&db, &r.client_id) {
                db.refresh_tokens.push(RefreshTokenRow {
                    client_id: r.client_id,
                    owner: r.owner.into(),
                    secret: r.secret,
                    expires_at: r.expires_at,
                });
            }
        }
        for a in self.authorizations {
            if known(&db, &a.client_id) {
                db.authorizations.insert(
                    (a.user_id, a.client_id),
                    Authorization {
                        scopes: a.scopes,
                        created_at: a.created_at,
                        last_refreshed_at: a.last_refreshed_at,
                    },
                );
            }
        }
        for c in self.codes {
            if known(&db, &c.client_id) {
                db.codes.insert(
                    c.code.clone(),
                    AccessCode {
                        code: c.code,
                        client_id: c.client_id,
                        owner: c.owner.into(),
                        scopes: c.scopes,
                        code_challenge: c.code_challenge,
                        code_challenge_method: c.code_challenge_method,
                        expires_at: c.expires_at,
                    },
                );
            }
        }
    }
}

/// Reads the state file into a freshly seeded sandbox. A missing file is a first start.
pub(crate) fn load(path: &Path, shared: &Shared) -> Result<(), StateFileError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(StateFileError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    let format = |reason: String| StateFileError::Format {
        path: path.to_owned(),
        reason,
    };
    let snapshot: Snapshot = serde_json::from_str(&text).map_err(|e| format(e.to_string()))?;
    if snapshot.version != VERSION {
        return Err(format(format!(
            "version {}, expected {VERSION}",
            snapshot.version
        )));
    }
    snapshot.restore(shared);
    Ok(())
}

/// Writes `bytes` to `path` atomically, readable only by the owner.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp)?;
    #[cfg(unix)]
    {
        // A file left by an older run keeps its mode on open: set it.
        use std::os::unix::fs::PermissionsExt as _;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)
}

/// The writer's side of persistence, kept in [`Shared`]: a change counter, a wake-up for the
/// writer task, and the last change written.
#[derive(Debug)]
pub(crate) struct Persistence {
    path: PathBuf,
    changes: AtomicU64,
    wake: tokio::sync::Notify,
    written: tokio::sync::watch::Sender<u64>,
}

impl Persistence {
    pub(crate) fn new(path: PathBuf) -> Self {
        Self {
            path,
            changes: AtomicU64::new(0),
            wake: tokio::sync::Notify::new(),
            written: tokio::sync::watch::Sender::new(0),
        }
    }

    /// Something to keep changed: the writer task writes a new snapshot.
    pub(crate) fn changed(&self) {
        self.changes.fetch_add(1, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// Waits until every change made so far is written (or its write failed and was logged).
    pub(crate) async fn saved(&self) {
        let target = self.changes.load(Ordering::SeqCst);
        let mut rx = self.written.subscribe();
        let _ = rx.wait_for(|w| *w >= target).await;
    }

    /// Writes the current state once.
    async fn write(shared: &Arc<Shared>, p: &Self) {
        let upto = p.changes.load(Ordering::SeqCst);
        let snapshot = Snapshot::of(shared);
        let path = p.path.clone();
        let result = match serde_json::to_vec_pretty(&snapshot) {
            Ok(bytes) => tokio::task::spawn_blocking(move || write_atomic(&path, &bytes))
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e))),
            Err(e) => Err(std::io::Error::other(e)),
        };
        if let Err(e) = result {
            tracing::error!(path = %p.path.display(), error = %e, "writing the sandbox state failed; grants made since the last write are lost at the next restart");
        }
        p.written.send_replace(upto);
    }
}

/// The writer task: writes after every change until `stop`, then once more.
pub(crate) fn spawn_writer(
    shared: Arc<Shared>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    shared.persistence.as_ref()?;
    Some(tokio::spawn(async move {
        let Some(p) = shared.persistence.as_ref() else {
            return;
        };
        loop {
            let stopping = tokio::select! {
                () = p.wake.notified() => false,
                r = stop.wait_for(|s| *s) => { drop(r); true }
            };
            if stopping {
                break;
            }
            Persistence::write(&shared, p).await;
        }
        if p.changes.load(Ordering::SeqCst) > *p.written.borrow() {
            Persistence::write(&shared, p).await;
        }
        // Nothing is written any more: nobody waits for it.
        p.written.send_replace(u64::MAX);
    }))
}
