//! Provider profiles saved under a name (`calconnect login … --save-as work`), in
//! `profiles.json` next to `connections.json` (mode 0600, no secret in clear: a client secret is
//! sealed with the key file). `--profile work` then stands for all of those flags in `login`
//! and `doctor`, and `--connection work` finds the connection made with it.

use crate::exit::CliError;
use crate::local::{Home, ProviderSpec, read_json, write_json};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Names `--profile` already means.
const BUILT_IN: &[&str] = &["cal.com", "calcom", "cal-com", "sandbox", "custom"];

/// One saved profile: the provider, the client, and the login defaults.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SavedProfile {
    #[serde(flatten)]
    pub provider: ProviderSpec,
    pub client_id: String,
    /// The loopback port registered with the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The scopes to ask for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<String>,
}

/// `profiles.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SavedProfiles {
    #[serde(default)]
    pub profiles: BTreeMap<String, SavedProfile>,
}

fn file(home: &Home) -> PathBuf {
    home.config.join("profiles.json")
}

/// A name for `--save-as`: 1 to 64 of `A-Z a-z 0-9 . _ -`, not a built-in profile.
pub fn check_name(name: &str) -> Result<(), CliError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !ok {
        return Err(CliError::usage(format!(
            "`{name}` cannot name a profile: use 1 to 64 letters, digits, dots, dashes or underscores"
        )));
    }
    if BUILT_IN.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(CliError::usage(format!(
            "`{name}` is a built-in profile: save yours under another name"
        )));
    }
    Ok(())
}

impl SavedProfiles {
    pub fn load(home: &Home) -> Result<Self, CliError> {
        read_json(&file(home), "save your profiles again")
    }

    pub fn save(&self, home: &Home) -> Result<(), CliError> {
        write_json(home, &file(home), self)
    }

    /// The profile `name`, or a usage error listing the saved ones.
    pub fn get(&self, name: &str) -> Result<&SavedProfile, CliError> {
        self.profiles.get(name).ok_or_else(|| {
            let known = if self.profiles.is_empty() {
                "none saved yet".to_owned()
            } else {
                format!(
                    "saved: {}",
                    self.profiles.keys().cloned().collect::<Vec<_>>().join(", ")
                )
            };
            CliError::usage(format!(
                "unknown profile `{name}`: use cal.com, sandbox or custom, or a profile saved with `calconnect login … --save-as NAME` ({known})"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_name("work").is_ok());
        assert!(check_name("team-a.prod_2").is_ok());
        for bad in ["", "a b", "custom", "Sandbox", "x/y", &"n".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
