//! Seed data: the clients, users, teams, schedules, event types and bookings the sandbox starts
//! with. Loaded from a TOML or JSON file, or taken from [`Seed::default`], then adjusted by the
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
        let seed: Seed = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text).map_err(|source| SeedError::Json {
                path: shown.clone(),
                source,
            })?
        } else {
            toml::from_str(&text).map_err(|e| SeedError::Toml {
                path: shown.clone(),
                message: e.to_string(),
            })?
        };
        seed.validate()?;
        Ok(seed)
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

fn avail(days: &[&str], start: &str, end: &str) -> SeedAvailability {
    SeedAvailability {
        days: days.iter().map(|d| (*d).to_owned()).collect(),
        start_time: start.to_owned(),
        end_time: end.to_owned(),
    }
}

const WEEKDAYS: [&str; 5] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"];

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

impl Default for Seed {
    fn default() -> Self {
        let strings = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let mut demo_scopes = strings(&USER_SCOPES);
        demo_scopes.extend(strings(&[
            "TEAM_EVENT_TYPE_READ",
            "TEAM_BOOKING_READ",
            "TEAM_SCHEDULE_READ",
            "TEAM_PROFILE_READ",
            "TEAM_MEMBERSHIP_READ",
        ]));
        let client = |id: &str, name: &str, status: ClientStatus| SeedClient {
            client_id: id.to_owned(),
            name: name.to_owned(),
            client_type: ClientType::Confidential,
            secrets: vec![hex::encode(Sha256::digest(id.as_bytes()))],
            redirect_uris: vec![DEFAULT_REDIRECT_URI.to_owned()],
            scopes: strings(&["PROFILE_READ", "SCHEDULE_READ", "BOOKING_READ"]),
            status,
            owner_user_id: 1,
            trusted: false,
            logo_url: None,
            website_url: None,
        };
        Seed {
            clients: vec![
                SeedClient {
                    secrets: vec![CONFIDENTIAL_CLIENT_SECRET.to_owned()],
                    scopes: demo_scopes,
                    owner_user_id: 3,
                    website_url: Some("https://example.com".to_owned()),
                    ..client(
                        CONFIDENTIAL_CLIENT_ID,
                        "Acme Scheduler",
                        ClientStatus::Approved,
                    )
                },
                SeedClient {
                    client_type: ClientType::Public,
                    secrets: vec![],
                    redirect_uris: vec![DEFAULT_PUBLIC_REDIRECT_URI.to_owned()],
                    scopes: strings(&USER_SCOPES),
                    owner_user_id: 3,
                    ..client(PUBLIC_CLIENT_ID, "calconnect CLI", ClientStatus::Approved)
                },
                // Owned by alice and under review: alice may use it, nobody else may.
                client(
                    "pending-client",
                    "Pending Review App",
                    ClientStatus::Pending,
                ),
                client("rejected-client", "Rejected App", ClientStatus::Rejected),
                SeedClient {
                    trusted: true,
                    ..client(
                        "trusted-client",
                        "Trusted First-Party App",
                        ClientStatus::Approved,
                    )
                },
                // A legacy client: registered before scopes existed.
                SeedClient {
                    scopes: vec![],
                    ..client("legacy-client", "Legacy App", ClientStatus::Approved)
                },
            ],
            users: vec![
                SeedUser {
                    id: 1,
                    username: "alice".to_owned(),
                    email: "alice@example.com".to_owned(),
                    name: "Alice Anderson".to_owned(),
                    time_zone: "Europe/London".to_owned(),
                    week_start: default_week_start(),
                    time_format: 24,
                    locale: default_locale(),
                    default_schedule_id: Some(101),
                    bio: Some("Runs the Acme team.".to_owned()),
                },
                SeedUser {
                    id: 2,
                    username: "bob".to_owned(),
                    email: "bob@example.com".to_owned(),
                    name: "Bob Brown".to_owned(),
                    time_zone: "America/New_York".to_owned(),
                    week_start: "Sunday".to_owned(),
                    time_format: 12,
                    locale: default_locale(),
                    default_schedule_id: Some(201),
                    bio: None,
                },
                SeedUser {
                    id: 3,
                    username: "dev".to_owned(),
                    email: "dev@example.com".to_owned(),
                    name: "Dana Developer".to_owned(),
                    time_zone: "Europe/Rome".to_owned(),
                    week_start: default_week_start(),
                    time_format: 24,
                    locale: default_locale(),
                    default_schedule_id: None,
                    bio: Some("Owns the sandbox's OAuth clients.".to_owned()),
                },
            ],
            teams: vec![SeedTeam {
                id: 10,
                slug: "acme".to_owned(),
                name: "Acme Inc.".to_owned(),
                members: vec![
                    SeedMembership {
                        user_id: 1,
                        role: TeamRole::Owner,
                    },
                    SeedMembership {
                        user_id: 2,
                        role: TeamRole::Member,
                    },
                ],
            }],
            schedules: vec![
                SeedSchedule {
                    id: 101,
                    owner_id: 1,
                    name: "Working hours".to_owned(),
                    time_zone: "Europe/London".to_owned(),
                    is_default: true,
                    availability: vec![
                        avail(&WEEKDAYS[..4], "09:00", "17:00"),
                        avail(&["Friday"], "09:00", "13:00"),
                    ],
                    overrides: vec![SeedOverride {
                        date: "2026-12-24".to_owned(),
                        start_time: "10:00".to_owned(),
                        end_time: "12:00".to_owned(),
                    }],
                },
                SeedSchedule {
                    id: 102,
                    owner_id: 1,
                    name: "Evening calls".to_owned(),
                    time_zone: "Europe/London".to_owned(),
                    is_default: false,
                    availability: vec![avail(&["Tuesday", "Thursday"], "18:00", "20:30")],
                    overrides: vec![],
                },
                SeedSchedule {
                    id: 201,
                    owner_id: 2,
                    name: "Bob's week".to_owned(),
                    time_zone: "America/New_York".to_owned(),
                    is_default: true,
                    availability: vec![
                        avail(&["Monday", "Wednesday", "Friday"], "08:30", "12:00"),
                        avail(&["Monday", "Wednesday", "Friday"], "13:00", "16:30"),
                        avail(&["Saturday"], "10:00", "14:00"),
                    ],
                    overrides: vec![],
                },
            ],
            event_types: vec![
                SeedEventType {
                    id: 501,
                    owner_id: 1,
                    title: "30 min meeting".to_owned(),
                    slug: "30min".to_owned(),
                    length_in_minutes: 30,
                    description: Some("A quick call.".to_owned()),
                    hidden: false,
                },
                SeedEventType {
                    id: 502,
                    owner_id: 1,
                    title: "Deep dive".to_owned(),
                    slug: "deep-dive".to_owned(),
                    length_in_minutes: 60,
                    description: None,
                    hidden: false,
                },
                SeedEventType {
                    id: 601,
                    owner_id: 2,
                    title: "15 min intro".to_owned(),
                    slug: "intro".to_owned(),
                    length_in_minutes: 15,
                    description: None,
                    hidden: false,
                },
            ],
            bookings: vec![
                SeedBooking {
                    id: 9001,
                    uid: "bk_alice_tomorrow".to_owned(),
                    user_id: 1,
                    event_type_id: 501,
                    title: "30 min meeting between Alice Anderson and Erin".to_owned(),
                    starts_in_minutes: 26 * 60,
                    duration_minutes: 30,
                    status: "accepted".to_owned(),
                    attendee_name: "Erin Example".to_owned(),
                    attendee_email: "erin@example.org".to_owned(),
                    attendee_time_zone: default_attendee_tz(),
                },
                SeedBooking {
                    id: 9002,
                    uid: "bk_alice_next_week".to_owned(),
                    user_id: 1,
                    event_type_id: 502,
                    title: "Deep dive with Frank".to_owned(),
                    starts_in_minutes: 7 * 24 * 60 + 120,
                    duration_minutes: 60,
                    status: "accepted".to_owned(),
                    attendee_name: "Frank Field".to_owned(),
                    attendee_email: "frank@example.org".to_owned(),
                    attendee_time_zone: "Europe/Berlin".to_owned(),
                },
                SeedBooking {
                    id: 9003,
                    uid: "bk_alice_past".to_owned(),
                    user_id: 1,
                    event_type_id: 501,
                    title: "Past call with Grace".to_owned(),
                    starts_in_minutes: -3 * 24 * 60,
                    duration_minutes: 30,
                    status: "accepted".to_owned(),
                    attendee_name: "Grace Green".to_owned(),
                    attendee_email: "grace@example.org".to_owned(),
                    attendee_time_zone: default_attendee_tz(),
                },
                SeedBooking {
                    id: 9004,
                    uid: "bk_bob_soon".to_owned(),
                    user_id: 2,
                    event_type_id: 601,
                    title: "Intro with Heidi".to_owned(),
                    starts_in_minutes: 3 * 60,
                    duration_minutes: 15,
                    status: "accepted".to_owned(),
                    attendee_name: "Heidi Hill".to_owned(),
                    attendee_email: "heidi@example.org".to_owned(),
                    attendee_time_zone: "America/Chicago".to_owned(),
                },
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_seed_is_consistent() {
        Seed::default().validate().unwrap();
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
