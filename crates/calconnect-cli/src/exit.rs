//! Exit codes and the one-line errors of the local commands (login, token, api, connections,
//! doctor).
//!
//! 0 ok, 1 other failure, 2 usage error (clap uses 2 as well), 3 authorization (log in again,
//! consent denied, grant revoked), 4 the API answered with an error.

use std::fmt;
use std::process::ExitCode;

/// What kind of failure, which decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Anything else (I/O, database, network, key file).
    Other,
    /// Bad input on the command line.
    Usage,
    /// Needs login, consent denied, grant revoked.
    Auth,
    /// The API answered with an error.
    Api,
}

impl Kind {
    pub fn code(self) -> u8 {
        match self {
            Self::Other => 1,
            Self::Usage => 2,
            Self::Auth => 3,
            Self::Api => 4,
        }
    }
}

/// A failure with its exit code: a one-line explanation that ends with the fix.
#[derive(Debug)]
pub struct CliError {
    pub kind: Kind,
    pub message: String,
}

impl CliError {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Kind::Usage, message)
    }

    pub fn auth(message: impl Into<String>) -> Self {
        Self::new(Kind::Auth, message)
    }

    pub fn api(message: impl Into<String>) -> Self {
        Self::new(Kind::Api, message)
    }

    pub fn other(message: impl Into<String>) -> Self {
        Self::new(Kind::Other, message)
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

/// The exit code for an error returned by a command: a [`CliError`]'s kind, else 1.
pub fn code_of(err: &anyhow::Error) -> ExitCode {
    let kind = err
        .chain()
        .find_map(|e| e.downcast_ref::<CliError>())
        .map_or(Kind::Other, |e| e.kind);
    ExitCode::from(kind.code())
}

/// The error as one line: the chain joined with ": ", newlines folded, each cause said once
/// (an error whose message already ends with its source's text, as many `thiserror` messages
/// do, does not repeat it).
pub fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if text.is_empty() || line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line.replace(['\n', '\r'], " ")
}

/// Whether `err` is a [`CliError`] (its message was written for the person already).
pub fn is_explained(err: &anyhow::Error) -> bool {
    err.chain().any(|e| e.downcast_ref::<CliError>().is_some())
}

/// Text for `--help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  other failure (files, database, network)
  2  usage error (bad flag, unknown profile, malformed scope)
  3  authorization needed (not logged in, consent denied, grant revoked): run `calconnect login`
  4  the API answered with an error";

#[cfg(test)]
mod tests {
    use super::*;

    /// Errors that print their source in their own message, as `thiserror`'s `{0}` does.
    #[derive(Debug)]
    struct Outer(Inner);
    #[derive(Debug)]
    struct Inner(std::io::Error);

    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "opening the database failed: {}", self.0)
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }
    impl fmt::Display for Inner {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "connecting failed on db: {}", self.0)
        }
    }
    impl std::error::Error for Inner {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn each_cause_is_said_once() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let err = anyhow::Error::new(Outer(Inner(io))).context("the broker could not start");
        assert_eq!(
            one_line(&err),
            "the broker could not start: opening the database failed: connecting failed on db: connection refused"
        );
        let plain = anyhow::anyhow!("first\nline").context("outer");
        assert_eq!(one_line(&plain), "outer: first line");
    }
}
