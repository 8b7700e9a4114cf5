//! The account's profile kept with a connection (who the person is, in Cal.com's words) and the
//! records of listing connections page by page.

use super::types::{ConnectionId, ConnectionStatus, EndUserId};
use crate::me::CalUser;
use std::fmt;
use time::{Duration, OffsetDateTime};

/// How long a profile is shown before it is asked for again (`GET /v2/me`).
pub const PROFILE_MAX_AGE: Duration = Duration::days(1);

/// Longest name, e-mail or username kept, in characters (longer ones are cut).
const MAX_PROFILE_CHARS: usize = 255;

/// Who holds the account of a connection, as Cal.com names them at `GET /v2/me`: name, e-mail
/// and username, and when that was asked (docs/calcom.md §5.6). For a team connection this is
/// the team owner, who connected it (docs/calcom.md §3.7).
///
/// Personal data, not a secret: the broker's API, webhooks and pages show it. `Debug` hides the
/// e-mail address so that a record in a log line does not spread it.
#[derive(Clone, PartialEq, Eq)]
pub struct AccountProfile {
    /// The display name.
    pub name: Option<String>,
    /// The e-mail address.
    pub email: Option<String>,
    /// The username.
    pub username: Option<String>,
    /// When Cal.com said so.
    pub fetched_at: OffsetDateTime,
}

impl AccountProfile {
    /// The profile in a `/v2/me` answer, read at `fetched_at`. Values are trimmed, cut at 255
    /// characters, stripped of control characters; empty ones are dropped.
    pub fn from_cal_user(user: &CalUser, fetched_at: OffsetDateTime) -> Self {
        Self {
            name: clean(user.name.as_deref()),
            email: clean(user.email.as_deref()),
            username: clean(user.username.as_deref()),
            fetched_at: super::types::truncate_to_micros(fetched_at),
        }
    }

    /// For people: the name, else the username, else the e-mail address.
    pub fn display_name(&self) -> Option<&str> {
        self.name
            .as_deref()
            .or(self.username.as_deref())
            .or(self.email.as_deref())
    }
}

fn clean(value: Option<&str>) -> Option<String> {
    let kept: String = value?
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_PROFILE_CHARS)
        .collect();
    let kept = kept.trim();
    (!kept.is_empty()).then(|| kept.to_owned())
}

impl fmt::Debug for AccountProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountProfile")
            .field("name", &self.name)
            .field("email", &self.email.as_ref().map(|_| "[hidden]"))
            .field("username", &self.username)
            .field("fetched_at", &self.fetched_at)
            .finish()
    }
}

/// The result of asking for a connection's profile ([`super::ConnectionStore::write_profile`]).
#[derive(Debug, Clone)]
pub struct ProfileWrite {
    /// The profile found; `None` keeps the stored one (the question failed).
    pub profile: Option<AccountProfile>,
    /// When to ask again.
    pub next_check_at: OffsetDateTime,
}

/// Which connections' profiles are due to be asked for; the ones returned are claimed until
/// `claim_until` ([`super::ConnectionStore::claim_profile_checks`]).
#[derive(Debug, Clone)]
pub struct ProfileCheckQuery {
    /// Due when the next check is at or before this (now).
    pub due_by: OffsetDateTime,
    /// Only connections whose access token is still valid after this, so that asking needs no
    /// refresh.
    pub access_valid_after: OffsetDateTime,
    /// At most this many.
    pub limit: u32,
    /// The claimed connections' next check is moved to this, so that another instance does not
    /// ask too, and a check that never reports back is retried then.
    pub claim_until: OffsetDateTime,
}

/// Where a page of connections ends: the next page starts after it. Listings are in creation
/// order (oldest first), ties broken by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListCursor {
    /// The last connection's creation time.
    pub created_at: OffsetDateTime,
    /// The last connection's id.
    pub id: ConnectionId,
}

/// Which connections to list ([`super::ConnectionStore::query_connections`]).
#[derive(Debug, Clone)]
pub struct ConnectionQuery {
    /// Only connections with this status.
    pub status: Option<ConnectionStatus>,
    /// Only this end user's connections.
    pub end_user: Option<EndUserId>,
    /// Start after this connection (the previous page's last).
    pub after: Option<ListCursor>,
    /// At most this many.
    pub limit: u32,
}

impl ConnectionQuery {
    /// The first `limit` connections, no filter.
    pub fn first(limit: u32) -> Self {
        Self {
            status: None,
            end_user: None,
            after: None,
            limit,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn user(name: Option<&str>, email: Option<&str>) -> CalUser {
        serde_json::from_value(serde_json::json!({
            "id": 1, "name": name, "email": email, "username": "  alice\u{7} "
        }))
        .unwrap()
    }

    #[test]
    fn values_are_cleaned_and_the_email_stays_out_of_debug() {
        let long = "x".repeat(300);
        let p = AccountProfile::from_cal_user(
            &user(Some(&long), Some("alice@example.com")),
            OffsetDateTime::UNIX_EPOCH,
        );
        assert_eq!(p.name.as_deref().map(str::len), Some(255));
        assert_eq!(p.username.as_deref(), Some("alice"));
        assert!(!format!("{p:?}").contains("alice@example.com"), "{p:?}");
        let blank =
            AccountProfile::from_cal_user(&user(Some(" "), None), OffsetDateTime::UNIX_EPOCH);
        assert_eq!(blank.name, None);
        assert_eq!(blank.display_name(), Some("alice"));
    }
}
