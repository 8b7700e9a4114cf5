//! Seed data: the clients, users, teams, schedules, event types and bookings the sandbox starts
//! with. Loaded from a TOML or JSON file, or the built-in seed ([`Seed::default`], the data file
//! `src/default-seed.toml`, read by the same code as a `--seed` file), then adjusted by the
//! builder (and the `calconnect sandbox` flags).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;

/// Client id of the seeded confidential client.
pub const CONFIDENTIAL_CLIENT_ID: &str = "calconnect-demo";
/// Plaintext secret of the seeded confidential client (32 bytes as hex, like Cal.com's).
pub const CONFIDENTIAL_CLIENT_SECRET: &str =
    "5e1f0c2d9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d";
/// Client id of the seeded public (PKCE, no secret) client.
pub const PUBLIC_CLIENT_ID: &str = "calconnect-cli";
/// Default redirect URI of the seeded confidential client.
pub const DEFAULT_REDIRECT_URI: &str = "http://127.0.0.1:8080/oauth/callback";
/// Default redirect URI of the seeded public client (a loopback redirect, RFC 8252).
pub const DEFAULT_PUBLIC_REDIRECT_URI: &str = "http://127.0.0.1:8976/callback";

/// Everything the sandbox starts with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    #[serde(default)]
    pub clients: Vec<SeedClient>,
    #[serde(default)]
    pub users: Vec<SeedUser>,
    #[serde(default)]
    pub teams: Vec<SeedTeam>,
    #[serde(default)]
    pub schedules: Vec<SeedSchedule>,
    #[serde(default)]
    pub event_types: Vec<SeedEventType>,
    #[serde(default)]
    pub bookings: Vec<SeedBooking>,
}

/// `CONFIDENTIAL` (has secrets) or `PUBLIC` (PKCE only), as in Cal.com's `OAuthClient.clientType`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ClientType {
    Confidential,
    Public,
}

/// Review status of a client (`docs/calcom.md` §1).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ClientStatus {
    Pending,
    Approved,
    Rejected,
}

/// An OAuth client registered with the sandbox.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SeedClient {
    pub client_id: String,
    pub name: String,
    pub client_type: ClientType,
    /// Plaintext secrets (at most two are active at Cal.com). Stored as SHA-256 hex, as Cal.com
    /// does; public clients have none.
    #[serde(default)]
    pub secrets: Vec<String>,
    pub redirect_uris: Vec<String>,
    /// Registered scopes. Empty, or only `READ_BOOKING`/`READ_PROFILE`, makes a legacy client.
    #[serde(default)]
    pub scopes: Vec<String>,
    pub status: ClientStatus,
    /// Cal.com user id of the owner (who may use the client while it is PENDING).
    pub owner_user_id: i64,
    /// Trusted clients skip the consent screen.
    #[serde(default)]
    pub trusted: bool,
    #[serde(default)]
    pub logo_url: Option<String>,
    #[serde(default)]
    pub website_url: Option<String>,
}

/// A Cal.com user (sign-in in the sandbox is picking one; there are no passwords).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SeedUser {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub name: String,
    pub time_zone: String,
    #[serde(default = "default_week_start")]
    pub week_start: String,
    #[serde(default = "default_time_format")]
    pub time_format: i64,
    #[serde(default = "default_locale")]
    pub locale: String,
    #[serde(default)]
    pub default_schedule_id: Option<i64>,
    #[serde(default)]
    pub bio: Option<String>,
}

fn default_week_start() -> String {
    "Monday".to_owned()
}
fn default_time_format() -> i64 {
    12
}
fn default_locale() -> String {
    "en".to_owned()
}

/// A membership role, as in Cal.com's `MembershipRole`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TeamRole {
    Owner,
    Admin,
    Member,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SeedTeam {
    pub id: i64,
    pub slug: String,
    pub name: String,
    pub members: Vec<SeedMembership>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SeedMembership {
    pub user_id: i64,
    pub role: TeamRole,
}

/// A schedule in the 2024-06-11 vocabulary: English weekday names and `HH:MM` times.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SeedSchedule {
    pub id: i64,
    pub owner_id: i64,
    pub name: String,
    pub time_zone: String,
    #[serde(default)]
    pub is_default: bool,
    pub availability: Vec<SeedAvailability>,
    #[serde(default)]
    pub overrides: Vec<SeedOverride>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SeedAvailability {
    /// English weekday names, `Monday` .. `Sunday`.
    pub days: Vec<String>,
    /// `HH:MM`.
    pub start_time: String,
    /// `HH:MM`.
    pub end_time: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SeedOverride {
    /// `YYYY-MM-DD`.
    pub date: String,
    pub start_time: String,
    pub end_time: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SeedEventType {
    pub id: i64,
    pub owner_id: i64,
    pub title: String,
    pub slug: String,
    pub length_in_minutes: i64,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub hidden: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SeedBooking {
    pub id: i64,
    pub uid: String,
    pub user_id: i64,
    pub event_type_id: i64,
    pub title: String,
    /// Start, in minutes from the moment the sandbox starts (so seeded bookings stay upcoming).
    pub starts_in_minutes: i64,
    pub duration_minutes: i64,
    /// `accepted`, `cancelled`, `pending`, `rejected`.
    pub status: String,
    pub attendee_name: String,
    pub attendee_email: String,
    #[serde(default = "default_attendee_tz")]
    pub attendee_time_zone: String,
}

fn default_attendee_tz() -> String {
    "Europe/London".to_owned()
}

/// Errors loading a seed file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SeedError {
    #[error("cannot read seed file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("seed file {path} is not valid TOML: {message}")]
    Toml { path: String, message: String },
    #[error("seed file {path} is not valid JSON: {source}")]
    Json {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("seed is inconsistent: {0}")]
    Invalid(String),
}

impl Seed {
    /// Loads a seed from a `.toml` or `.json` file.
    ///
    /// # Errors
    /// The file cannot be read, does not parse, or refers to users, teams or schedules that it
    /// does not define.
    pub fn from_file(path: &Path) -> Result<Self, SeedError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| SeedError::Read {
            path: shown.clone(),
            source,
        })?;
        if path.extension().is_some_and(|e| e == "json") {
            Self::from_json(&text, &shown)
        } else {
            Self::from_toml(&text, &shown)
        }
    }

    /// Parses and checks a seed in TOML; `origin` names it in errors (a path).
    ///
    /// # Errors
    /// The text does not parse, or the seed is inconsistent ([`Seed::validate`]).
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, SeedError> {
        let seed: Seed = toml::from_str(text).map_err(|e| SeedError::Toml {
            path: origin.to_owned(),
            message: e.to_string(),
        })?;
        seed.validate()?;
        Ok(seed)
    }

    /// Parses and checks a seed in JSON; `origin` names it in errors (a path).
    ///
    /// # Errors
    /// The text does not parse, or the seed is inconsistent ([`Seed::validate`]).
    pub fn from_json(text: &str, origin: &str) -> Result<Self, SeedError> {
        let seed: Seed = serde_json::from_str(text).map_err(|source| SeedError::Json {
            path: origin.to_owned(),
            source,
        })?;
        seed.validate()?;
        Ok(seed)
    }

    /// The built-in seed ([`DEFAULT_SEED_TOML`]).
    ///
    /// # Errors
    /// Never in a released build: a test parses and checks the file.
    pub fn builtin() -> Result<Self, SeedError> {
        Self::from_toml(DEFAULT_SEED_TOML, "src/default-seed.toml (built in)")
    }

    /// A seed with nothing in it.
    pub fn empty() -> Self {
        Self {
            clients: Vec::new(),
            users: Vec::new(),
            teams: Vec::new(),
            schedules: Vec::new(),
            event_types: Vec::new(),
            bookings: Vec::new(),
        }
    }

    /// Checks references between seed records.
    ///
    /// # Errors
    /// A dangling user, team, schedule or event-type reference, or a duplicate id.
    pub fn validate(&self) -> Result<(), SeedError> {
        let user = |id: i64| self.users.iter().any(|u| u.id == id);
        let mut ids = std::collections::HashSet::new();
        for c in &self.clients {
            if !ids.insert(c.client_id.as_str()) {
                return Err(SeedError::Invalid(format!(
                    "duplicate client_id {}",
                    c.client_id
                )));
            }
            if !user(c.owner_user_id) {
                return Err(SeedError::Invalid(format!(
                    "client {} is owned by unknown user {}",
                    c.client_id, c.owner_user_id
                )));
            }
            if c.client_type == ClientType::Public && !c.secrets.is_empty() {
                return Err(SeedError::Invalid(format!(
                    "public client {} cannot have secrets",
                    c.client_id
                )));
            }
            if c.client_type == ClientType::Confidential && c.secrets.is_empty() {
                return Err(SeedError::Invalid(format!(
                    "confidential client {} needs at least one secret",
                    c.client_id
                )));
            }
            if c.secrets.len() > 2 {
                return Err(SeedError::Invalid(format!(
                    "client {} has {} secrets; Cal.com allows two active secrets",
                    c.client_id,
                    c.secrets.len()
                )));
            }
            if c.redirect_uris.is_empty() || c.redirect_uris.len() > 10 {
                return Err(SeedError::Invalid(format!(
                    "client {} needs 1 to 10 redirect URIs",
                    c.client_id
                )));
            }
        }
        let mut user_ids = std::collections::HashSet::new();
        for u in &self.users {
            if !user_ids.insert(u.id) {
                return Err(SeedError::Invalid(format!("duplicate user id {}", u.id)));
            }
            if let Some(s) = u.default_schedule_id
                && !self
                    .schedules
                    .iter()
                    .any(|x| x.id == s && x.owner_id == u.id)
            {
                return Err(SeedError::Invalid(format!(
                    "user {} has default schedule {s}, which is not one of theirs",
                    u.username
                )));
            }
        }
        for t in &self.teams {
            if let Some(m) = t.members.iter().find(|m| !user(m.user_id)) {
                return Err(SeedError::Invalid(format!(
                    "team {} has unknown member {}",
                    t.slug, m.user_id
                )));
            }
            if !t.members.iter().any(|m| m.role == TeamRole::Owner) {
                return Err(SeedError::Invalid(format!("team {} has no owner", t.slug)));
            }
        }
        for s in &self.schedules {
            if !user(s.owner_id) {
                return Err(SeedError::Invalid(format!(
                    "schedule {} is owned by unknown user {}",
                    s.id, s.owner_id
                )));
            }
        }
        for e in &self.event_types {
            if !user(e.owner_id) {
                return Err(SeedError::Invalid(format!(
                    "event type {} is owned by unknown user {}",
                    e.id, e.owner_id
                )));
            }
        }
        for b in &self.bookings {
            if !user(b.user_id) || !self.event_types.iter().any(|e| e.id == b.event_type_id) {
                return Err(SeedError::Invalid(format!(
                    "booking {} refers to an unknown user or event type",
                    b.uid
                )));
            }
        }
        Ok(())
    }

    /// The confidential client of the default seed, if still present.
    pub fn client_mut(&mut self, client_id: &str) -> Option<&mut SeedClient> {
        self.clients.iter_mut().find(|c| c.client_id == client_id)
    }
}

/// SHA-256 hex of a client secret, the form Cal.com stores (`generateSecret.ts`).
pub fn hash_secret(plaintext: &str) -> String {
    hex::encode(Sha256::digest(plaintext.as_bytes()))
}

/// All user-level scopes (READ and WRITE of each resource).
pub const USER_SCOPES: [&str; 10] = [
    "EVENT_TYPE_READ",
    "EVENT_TYPE_WRITE",
    "BOOKING_READ",
    "BOOKING_WRITE",
    "SCHEDULE_READ",
    "SCHEDULE_WRITE",
    "APPS_READ",
    "APPS_WRITE",
    "PROFILE_READ",
    "PROFILE_WRITE",
];

/// The built-in seed as TOML (`src/default-seed.toml`): a starting point for a `--seed` file.
pub const DEFAULT_SEED_TOML: &str = include_str!("default-seed.toml");

impl Default for Seed {
    /// The built-in seed ([`Seed::builtin`]). The file is part of the crate and a test parses
    /// and checks it, so the empty seed returned (and logged) if it did not parse cannot ship.
    fn default() -> Self {
        Self::builtin().unwrap_or_else(|e| {
            tracing::error!(error = %e, "the built-in sandbox seed does not parse");
            Self::empty()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_seed_is_consistent() {
        Seed::default().validate().unwrap();
    }

    /// The data file parses through the `--seed` code and holds what the tests of every crate
    /// rely on: client ids, secrets and redirect URIs, the users and their default schedules,
    /// the team roles, alice's working hours and her upcoming bookings.
    #[test]
    fn the_built_in_seed_is_the_data_file_with_what_tests_rely_on() {
        let seed = Seed::builtin().unwrap();
        assert_eq!(seed, Seed::default());
        let dir = std::env::temp_dir().join(format!("calconnect-seed-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("default-seed.toml");
        std::fs::write(&path, DEFAULT_SEED_TOML).unwrap();
        assert_eq!(
            Seed::from_file(&path).unwrap(),
            seed,
            "same as a --seed file"
        );

        let client = |id: &str| seed.clients.iter().find(|c| c.client_id == id).unwrap();
        let demo = client(CONFIDENTIAL_CLIENT_ID);
        assert_eq!(demo.name, "Acme Planner");
        assert_eq!(demo.client_type, ClientType::Confidential);
        assert_eq!(demo.secrets, vec![CONFIDENTIAL_CLIENT_SECRET]);
        assert_eq!(demo.redirect_uris, vec![DEFAULT_REDIRECT_URI]);
        assert_eq!(
            (demo.status, demo.owner_user_id),
            (ClientStatus::Approved, 3)
        );
        for scope in USER_SCOPES
            .iter()
            .chain(&["TEAM_BOOKING_READ", "TEAM_PROFILE_READ"])
        {
            assert!(demo.scopes.iter().any(|s| s == scope), "{scope}");
        }
        let cli = client(PUBLIC_CLIENT_ID);
        assert_eq!(cli.client_type, ClientType::Public);
        assert!(cli.secrets.is_empty());
        assert_eq!(cli.redirect_uris, vec![DEFAULT_PUBLIC_REDIRECT_URI]);
        assert_eq!(cli.scopes, USER_SCOPES.to_vec());
        // The other clients' secrets are hex(sha256(client_id)).
        for (id, status, trusted) in [
            ("pending-client", ClientStatus::Pending, false),
            ("rejected-client", ClientStatus::Rejected, false),
            ("trusted-client", ClientStatus::Approved, true),
            ("legacy-client", ClientStatus::Approved, false),
        ] {
            let c = client(id);
            assert_eq!(c.secrets, vec![hash_secret(id)], "{id}");
            assert_eq!(
                (c.status, c.trusted, c.owner_user_id),
                (status, trusted, 1),
                "{id}"
            );
        }
        assert!(client("legacy-client").scopes.is_empty());

        let users: Vec<_> = seed
            .users
            .iter()
            .map(|u| {
                (
                    u.id,
                    u.username.as_str(),
                    u.name.as_str(),
                    u.time_zone.as_str(),
                    u.default_schedule_id,
                )
            })
            .collect();
        assert_eq!(
            users,
            vec![
                (1, "alice", "Alice Anderson", "Europe/London", Some(101)),
                (2, "bob", "Bob Brown", "America/New_York", Some(201)),
                (3, "dev", "Dana Developer", "Europe/Rome", None),
            ]
        );
        let acme = &seed.teams[0];
        assert_eq!(
            (acme.id, acme.slug.as_str(), acme.name.as_str()),
            (10, "acme", "Acme Inc.")
        );
        let roles: Vec<_> = acme.members.iter().map(|m| (m.user_id, m.role)).collect();
        assert_eq!(roles, vec![(1, TeamRole::Owner), (2, TeamRole::Member)]);

        let working = seed.schedules.iter().find(|s| s.id == 101).unwrap();
        assert_eq!(
            (working.name.as_str(), working.time_zone.as_str()),
            ("Working hours", "Europe/London")
        );
        assert!(working.is_default);
        let hours: Vec<_> = working
            .availability
            .iter()
            .map(|a| (a.days.join(","), a.start_time.as_str(), a.end_time.as_str()))
            .collect();
        assert_eq!(
            hours,
            vec![
                (
                    "Monday,Tuesday,Wednesday,Thursday".to_owned(),
                    "09:00",
                    "17:00"
                ),
                ("Friday".to_owned(), "09:00", "13:00"),
            ]
        );
        let upcoming: Vec<_> = seed
            .bookings
            .iter()
            .filter(|b| b.user_id == 1 && b.starts_in_minutes > 0)
            .map(|b| b.event_type_id)
            .collect();
        assert_eq!(upcoming, vec![501, 502]);
        assert_eq!(seed.event_types[0].title, "30 min meeting");
    }

    #[test]
    fn seed_round_trips_through_toml_and_json() {
        let seed = Seed::default();
        let dir = std::env::temp_dir().join(format!("calconnect-seed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let toml_path = dir.join("seed.toml");
        std::fs::write(&toml_path, toml::to_string(&seed).unwrap()).unwrap();
        assert_eq!(Seed::from_file(&toml_path).unwrap(), seed);
        let json_path = dir.join("seed.json");
        std::fs::write(&json_path, serde_json::to_string(&seed).unwrap()).unwrap();
        assert_eq!(Seed::from_file(&json_path).unwrap(), seed);
    }

    #[test]
    fn dangling_references_are_named() {
        let mut seed = Seed::default();
        seed.event_types[0].owner_id = 999;
        let err = seed.validate().unwrap_err().to_string();
        assert!(err.contains("999"), "{err}");
    }
}
