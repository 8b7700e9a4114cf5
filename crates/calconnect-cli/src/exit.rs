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

/// The error as one line: the chain joined with ": ", newlines folded.
pub fn one_line(err: &anyhow::Error) -> String {
    format!("{err:#}").replace(['\n', '\r'], " ")
}

/// Text for `--help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  other failure (files, database, network)
  2  usage error (bad flag, unknown profile, malformed scope)
  3  authorization needed (not logged in, consent denied, grant revoked): run `calconnect login`
  4  the API answered with an error";
