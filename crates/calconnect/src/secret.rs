//! Secret values as types (docs/architecture.md §7.1): tokens and client secrets never travel as `String`;
//! their `Debug` prints `[redacted]`, comparisons are constant time, memory is zeroed on drop
//! (the `secrecy` crate).

use secrecy::{ExposeSecret, SecretString};
use std::fmt;
use subtle::ConstantTimeEq;

/// Declares a redacted, zeroizing string newtype.
macro_rules! secret_string {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        pub struct $name(SecretString);

        impl $name {
            /// Wraps a secret value.
            pub fn new(value: impl Into<String>) -> Self {
                Self(SecretString::from(value.into()))
            }

            /// The secret value.
            ///
            /// # Security
            /// Never log it, put it in an error, a URL or a metric label.
            pub fn expose_secret(&self) -> &str {
                self.0.expose_secret()
            }

            /// Compares two values in constant time (docs/architecture.md §7.1).
            pub fn ct_eq(&self, other: &Self) -> bool {
                ct_eq_str(self.expose_secret(), other.expose_secret())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "([redacted])"))
            }
        }
    };
}

secret_string!(
    /// An OAuth client secret (Cal.com: 64 hex characters, docs/calcom.md §1).
    #[derive(Clone)]
    ClientSecret
);
secret_string!(
    /// An access token. At Cal.com a 30-minute HS256 JWT (docs/calcom.md §3.6), opaque to us.
    #[derive(Clone)]
    AccessToken
);
secret_string!(
    /// An OpenID Connect ID token (a JWT naming the user, OIDC Core §2), from a custom
    /// provider's token answer when `openid` was requested. It holds personal data: secret.
    #[derive(Clone)]
    IdToken
);
secret_string!(
    /// A refresh token. At Cal.com it rotates on every refresh and every older one dies
    /// (docs/calcom.md §3.4): persist the new one before using the new access token.
    #[derive(Clone)]
    RefreshToken
);

/// Constant-time string equality (length is not hidden; the values compared are random and of a
/// fixed length).
pub(crate) fn ct_eq_str(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let secret = ClientSecret::new("s3cr3t-value");
        let access = AccessToken::new("eyJaccess");
        let refresh = RefreshToken::new("eyJrefresh");
        let all = format!("{secret:?} {access:?} {refresh:?}");
        assert_eq!(
            all,
            "ClientSecret([redacted]) AccessToken([redacted]) RefreshToken([redacted])"
        );
    }

    #[test]
    fn constant_time_comparison() {
        assert!(RefreshToken::new("abc").ct_eq(&RefreshToken::new("abc")));
        assert!(!RefreshToken::new("abc").ct_eq(&RefreshToken::new("abd")));
        assert!(!RefreshToken::new("abc").ct_eq(&RefreshToken::new("abcd")));
    }
}
