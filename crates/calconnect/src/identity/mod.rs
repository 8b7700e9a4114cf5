//! Whose account a connection holds: the profile's **identity strategy**
//! ([`IdentitySource`]) and what it finds ([`AccountIdentity`]), docs/architecture.md §3.4 and
//! §3.8.
//!
//! Cal.com names the account in its tokens' claims or at `GET /v2/me`. A custom (any RFC 6749)
//! provider usually issues opaque tokens, so its profile says where the account's name comes
//! from, one source per profile, in this order of preference when several are known:
//!
//! 1. a **userinfo** endpoint (OIDC Core §5.3): the value at a JSON pointer of its answer
//!    (`/sub` by default);
//! 2. **token introspection** (RFC 7662) of the access token, with the client's own
//!    authentication: the value at a JSON pointer (`/sub` by default) of an `active` answer;
//! 3. **claims** the user names, read unverified from the ID token the token endpoint sent (else
//!    from the access token, if it is a JWT);
//! 4. else a **label** (a name the user gives; by default the provider's host): then there is no
//!    account identity, and the label stands for it.
//!
//! One source, not a chain of fallbacks: two sources can name one account differently
//! (`/email` at userinfo, `/sub` at introspection), and a silent fallback would then make a
//! second connection for the same account, whose refreshes kill the first one's refresh token
//! at providers that rotate (docs/architecture.md §3.4). A source that fails fails the
//! identification, and [`crate::connect::Connector`] revokes the tokens it cannot keep.
//!
//! # Stored as
//! The store keys connections by `(client_id, CalOwner)`. An account identity that is not a
//! Cal.com user or team is stored as [`CalOwner::User`] with a **negative** id derived from a
//! SHA-256 digest of the provider, the kind (`subject` or `label`) and the value
//! ([`AccountIdentity::store_owner`]): Cal.com's ids are positive, so the two never meet, and
//! no schema change is needed. The value itself is not in the store; the caller keeps it for
//! display ([`crate::connect::Connected::account`]).

use crate::callback::sanitize;
use crate::endpoint::EndpointUrl;
use crate::errors::{ProtocolError, TransientError};
use crate::me::{CalUser, MeError};
use crate::store::CalOwner;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::fmt;

/// Longest account identity kept (longer ones are refused, not cut).
pub(crate) const MAX_IDENTITY_CHARS: usize = 255;

/// An RFC 6901 JSON pointer (`/sub`, `/data/id`) into an answer or a set of claims.
#[derive(Clone, PartialEq, Eq)]
pub struct JsonPointer(String);

impl JsonPointer {
    /// Parses `text`: a pointer (`/sub`, `/data/user/id`) or a plain top-level name (`sub`,
    /// `email`), which means `/name` (RFC 6901 escapes `~0`/`~1` apply to pointers only).
    ///
    /// # Errors
    /// [`InvalidJsonPointer`] for an empty text, `/` alone, control characters or a bad escape.
    pub fn parse(text: &str) -> Result<Self, InvalidJsonPointer> {
        let text = text.trim();
        let bad = || InvalidJsonPointer {
            text: sanitize(text),
        };
        if text.is_empty() || text == "/" || text.chars().any(char::is_control) {
            return Err(bad());
        }
        let pointer = if text.starts_with('/') {
            text.to_owned()
        } else {
            format!("/{}", text.replace('~', "~0").replace('/', "~1"))
        };
        // `~` may only start `~0` or `~1`.
        let mut chars = pointer.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '~' && !matches!(chars.peek(), Some('0' | '1')) {
                return Err(bad());
            }
        }
        Ok(Self(pointer))
    }

    /// `/sub`: the OIDC subject, also RFC 7662's `sub`.
    pub fn sub() -> Self {
        Self("/sub".to_owned())
    }

    /// The pointer as text (`/sub`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The string or number at this pointer of `value`, as text.
    pub(crate) fn read(&self, value: &Value) -> Option<String> {
        match value.pointer(&self.0)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
}

impl fmt::Debug for JsonPointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JsonPointer({})", self.0)
    }
}

impl fmt::Display for JsonPointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A JSON pointer could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{text}` is not a JSON pointer or claim name: give a name such as `sub` or a pointer such as `/data/id`"
)]
pub struct InvalidJsonPointer {
    /// The text given (sanitised).
    pub text: String,
}

/// Where the account of a connection is named (the profile's identity strategy).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdentitySource {
    /// Cal.com: the tokens' `userId`/`teamId` claims, else `GET /v2/me` (docs/calcom.md §3.6, §5).
    CalCom,
    /// `GET url` with the access token (OIDC Core §5.3); the account is the value at `pointer`.
    Userinfo {
        /// The userinfo endpoint.
        url: EndpointUrl,
        /// Where the account's name is in the answer (default `/sub`).
        pointer: JsonPointer,
    },
    /// RFC 7662 introspection of the access token, authenticated as the client is at the token
    /// endpoint; the account is the value at `pointer` of an `active` answer.
    Introspection {
        /// The introspection endpoint.
        url: EndpointUrl,
        /// Where the account's name is in the answer (default `/sub`).
        pointer: JsonPointer,
    },
    /// Claims read **unverified** from the ID token of the token answer, else from the access
    /// token if it is a JWT. Both came straight from the token endpoint over the hardened client
    /// (OIDC Core §3.1.3.7 allows relying on TLS for an ID token received that way); the claim
    /// only names the connection, it authorizes nothing.
    Claims {
        /// The claim (`/sub`, `/email`, …).
        pointer: JsonPointer,
    },
    /// No account identity: the label stands for it, so this client has one connection per
    /// label at this provider. Right for a single-user tool (`calconnect login --name work`);
    /// wrong for a service with many users.
    Label(String),
}

impl IdentitySource {
    /// A label source; the label is trimmed and must be 1 to 255 printable characters.
    ///
    /// # Errors
    /// [`InvalidLabel`].
    pub fn label(label: &str) -> Result<Self, InvalidLabel> {
        let label = label.trim();
        if label.is_empty()
            || label.chars().count() > MAX_IDENTITY_CHARS
            || label.chars().any(char::is_control)
        {
            return Err(InvalidLabel);
        }
        Ok(Self::Label(label.to_owned()))
    }

    /// A short name for messages: `Cal.com claims or /v2/me`, `userinfo /sub`, …
    pub fn describe(&self) -> String {
        match self {
            Self::CalCom => "Cal.com claims or /v2/me".to_owned(),
            Self::Userinfo { pointer, .. } => format!("userinfo {pointer}"),
            Self::Introspection { pointer, .. } => format!("introspection {pointer}"),
            Self::Claims { pointer } => format!("token claim {pointer}"),
            Self::Label(label) => format!("label `{label}`"),
        }
    }
}

/// A label was empty, too long or had control characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a connection name must be 1 to 255 characters without control characters")]
pub struct InvalidLabel;

/// Which source named a [`AccountIdentity::Subject`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubjectSource {
    /// The userinfo endpoint.
    Userinfo,
    /// Token introspection.
    Introspection,
    /// The ID token's or access token's claims.
    Claims,
}

impl SubjectSource {
    /// `userinfo`, `introspection` or `claims`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Userinfo => "userinfo",
            Self::Introspection => "introspection",
            Self::Claims => "claims",
        }
    }
}

/// Whose account a connection holds, as the provider (or the user, for a label) names it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AccountIdentity {
    /// A Cal.com user or team.
    Cal(CalOwner),
    /// An account named by a custom provider.
    Subject {
        /// Which source named it.
        source: SubjectSource,
        /// The name (1 to 255 characters, no control characters).
        value: String,
    },
    /// No account identity: the connection's label.
    Label(String),
}

impl AccountIdentity {
    /// The owner the store keys this connection by (with the client id).
    ///
    /// A Cal.com owner is itself. Anything else becomes [`CalOwner::User`] with a negative id:
    /// the first 8 bytes of `SHA-256("calconnect-account\0" ‖ provider ‖ "\0" ‖ kind ‖ "\0" ‖
    /// value)` with the sign bit set, where `provider` is
    /// [`ProviderProfile::identity_namespace`](crate::ProviderProfile::identity_namespace) and
    /// `kind` is `subject` or `label`. Cal.com ids are positive, so a Cal.com connection and a
    /// custom one never share a key; two accounts of one client and provider share one with
    /// probability about n²/2⁶⁴ for n accounts, and aiming at a given account's key takes about
    /// 2⁶³ guesses (docs/architecture.md §3.8).
    pub fn store_owner(&self, provider: &str) -> CalOwner {
        let (kind, value) = match self {
            Self::Cal(owner) => return *owner,
            Self::Subject { value, .. } => ("subject", value),
            Self::Label(label) => ("label", label),
        };
        let mut h = Sha256::new();
        h.update(b"calconnect-account\0");
        h.update(provider.as_bytes());
        h.update([0]);
        h.update(kind.as_bytes());
        h.update([0]);
        h.update(value.as_bytes());
        let digest = h.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        CalOwner::User(i64::from_be_bytes(first) | i64::MIN)
    }

    /// For people: `user 42`, `team 7`, `interop-user (userinfo)`, `label work`.
    pub fn describe(&self) -> String {
        match self {
            Self::Cal(owner) => format!("{} {}", owner.kind(), owner.id()),
            Self::Subject { source, value } => format!("{value} ({})", source.as_str()),
            Self::Label(label) => format!("label {label}"),
        }
    }
}

/// What identification found.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Identified {
    /// The account.
    pub account: AccountIdentity,
    /// The Cal.com profile, when `/v2/me` was asked.
    pub user: Option<CalUser>,
}

/// Identifying the account of a token set failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentifyError {
    /// Cal.com: the tokens name nobody and `/v2/me` failed.
    #[error("{0}")]
    Me(#[source] MeError),
    /// The userinfo or introspection endpoint refused the request.
    #[error(
        "the provider's {endpoint} endpoint refused the request (HTTP {status}): check its URL and that the client may use it"
    )]
    Refused {
        /// `userinfo` or `introspection`.
        endpoint: &'static str,
        /// The HTTP status.
        status: u16,
    },
    /// Introspection says the access token just received is not active.
    #[error("the provider's introspection endpoint says the new access token is not active")]
    Inactive,
    /// The answer or claims have no usable value at the pointer.
    #[error(
        "the provider's {answer} has no usable account name at {pointer} (a string or number of 1 to 255 characters): name another claim"
    )]
    MissingValue {
        /// `userinfo answer`, `introspection answer` or `token claims`.
        answer: &'static str,
        /// The pointer.
        pointer: JsonPointer,
    },
    /// Neither the ID token nor the access token is a JWT, so there are no claims to read.
    #[error(
        "the provider's tokens carry no claims (no ID token, and the access token is opaque): use a userinfo or introspection endpoint, or a label"
    )]
    NoClaims,
    /// Network, timeout, 5xx, HTML error page.
    #[error("asking the provider whose account this is failed for now: {0}")]
    Transient(#[source] TransientError),
    /// A malformed, oversized or unexpected answer.
    #[error("asking the provider whose account this is failed: {0}")]
    Protocol(#[source] ProtocolError),
}

impl IdentifyError {
    /// Whether trying again later may work.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Transient(_) | Self::Me(MeError::Transient(_) | MeError::RateLimited)
        )
    }
}

mod fetch;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_and_names() {
        assert_eq!(JsonPointer::parse("sub").unwrap().as_str(), "/sub");
        assert_eq!(JsonPointer::parse("/data/id").unwrap().as_str(), "/data/id");
        assert_eq!(
            JsonPointer::parse("https://x/claims").unwrap().as_str(),
            "/https:~1~1x~1claims"
        );
        for bad in ["", " ", "/", "/a~2", "a\nb"] {
            assert!(JsonPointer::parse(bad).is_err(), "{bad:?}");
        }
        let v = serde_json::json!({"sub": "u-1", "data": {"id": 42}, "flag": true});
        assert_eq!(JsonPointer::sub().read(&v).as_deref(), Some("u-1"));
        assert_eq!(
            JsonPointer::parse("/data/id").unwrap().read(&v).as_deref(),
            Some("42")
        );
        assert_eq!(JsonPointer::parse("flag").unwrap().read(&v), None);
    }

    #[test]
    fn store_owners_are_negative_stable_and_separated() {
        let sub = |v: &str| AccountIdentity::Subject {
            source: SubjectSource::Userinfo,
            value: v.to_owned(),
        };
        let a = sub("alice").store_owner("https://idp.example");
        assert!(matches!(a, CalOwner::User(id) if id < 0), "{a:?}");
        // Stable, and independent of the source that named the subject.
        let via_claims = AccountIdentity::Subject {
            source: SubjectSource::Claims,
            value: "alice".to_owned(),
        };
        assert_eq!(a, via_claims.store_owner("https://idp.example"));
        // Pinned: a stored connection must keep its key across versions.
        assert_eq!(a, CalOwner::User(-3_050_150_441_515_559_265));
        assert_ne!(a, sub("bob").store_owner("https://idp.example"));
        assert_ne!(a, sub("alice").store_owner("https://other.example"));
        assert_ne!(
            a,
            AccountIdentity::Label("alice".into()).store_owner("https://idp.example")
        );
        let cal = AccountIdentity::Cal(CalOwner::Team(7));
        assert_eq!(cal.store_owner("anything"), CalOwner::Team(7));
    }

    #[test]
    fn labels_are_checked() {
        assert!(IdentitySource::label(" work ").is_ok());
        assert!(IdentitySource::label("").is_err());
        assert!(IdentitySource::label("a\tb").is_err());
        assert!(IdentitySource::label(&"x".repeat(256)).is_err());
    }
}
