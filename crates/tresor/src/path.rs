//! Secret paths: the one type a path is checked into, once, at the boundary.
//!
//! A [`SecretPath`] is non-empty `/`-separated segments, none empty, `.` or `..`, no control
//! characters, at most [`MAX_PATH_LEN`] bytes. Everything below the handle's public methods (the
//! engine, group commit, the index) takes a `SecretPath` and never checks a string again.
//!
//! The **system namespace** holds what a program built on the vault keeps for itself (the
//! server's mounts, tokens and policies): paths under the first segment [`SYSTEM_ROOT`], which
//! contains a control character, so that no user path can name it. They are made only by
//! [`SecretPath::system`]; user listings and counts leave them out.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest secret path, in bytes.
pub const MAX_PATH_LEN: usize = 512;

/// The first segment of every path in the system namespace (see the module documentation).
pub const SYSTEM_ROOT: &str = "\u{1}sys";

/// Whether `path` lies in the system namespace.
pub fn is_system(path: &str) -> bool {
    path.strip_prefix(SYSTEM_ROOT).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// A checked secret path (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SecretPath(String);

impl SecretPath {
    /// Checks `path` against the path rules.
    pub fn parse(path: &str) -> Result<SecretPath> {
        check(path)?;
        Ok(SecretPath(path.to_string()))
    }

    /// `name` (checked by the path rules) in the system namespace.
    pub fn system(name: &str) -> Result<SecretPath> {
        check(name)?;
        let path = format!("{SYSTEM_ROOT}/{name}");
        if path.len() > MAX_PATH_LEN {
            return Err(Error::InvalidPath("the path is longer than 512 bytes".into()));
        }
        Ok(SecretPath(path))
    }

    /// Whether it lies in the system namespace.
    pub fn is_system(&self) -> bool {
        is_system(&self.0)
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What the vault's methods take as a path: text, checked by the user path rules (so it never
/// names the system namespace), or a [`SecretPath`] already made.
pub trait IntoSecretPath {
    /// The checked path.
    fn into_secret_path(self) -> Result<SecretPath>;
}

impl IntoSecretPath for &str {
    fn into_secret_path(self) -> Result<SecretPath> {
        SecretPath::parse(self)
    }
}

impl IntoSecretPath for &&str {
    fn into_secret_path(self) -> Result<SecretPath> {
        SecretPath::parse(self)
    }
}

impl IntoSecretPath for &String {
    fn into_secret_path(self) -> Result<SecretPath> {
        SecretPath::parse(self)
    }
}

impl IntoSecretPath for SecretPath {
    fn into_secret_path(self) -> Result<SecretPath> {
        Ok(self)
    }
}

impl IntoSecretPath for &SecretPath {
    fn into_secret_path(self) -> Result<SecretPath> {
        Ok(self.clone())
    }
}

/// The path rules; the error says which one `path` breaks.
fn check(path: &str) -> Result<()> {
    let broken = if path.is_empty() {
        "the path is empty"
    } else if path.len() > MAX_PATH_LEN {
        "the path is longer than 512 bytes"
    } else if path.chars().any(char::is_control) {
        "the path contains a control character"
    } else if path.split('/').any(str::is_empty) {
        "the path has an empty segment (leading, trailing or double '/')"
    } else if path.split('/').any(|s| s == "." || s == "..") {
        "the path has a '.' or '..' segment"
    } else {
        return Ok(());
    };
    Err(Error::InvalidPath(broken.into()))
}

/// As stored (commits, archives): a user path, or a system path as [`SecretPath::system`] made it.
impl TryFrom<String> for SecretPath {
    type Error = Error;

    fn try_from(path: String) -> Result<SecretPath> {
        match path.strip_prefix(SYSTEM_ROOT).and_then(|rest| rest.strip_prefix('/')) {
            Some(name) => SecretPath::system(name),
            None => {
                check(&path)?;
                Ok(SecretPath(path))
            }
        }
    }
}

impl TryFrom<&str> for SecretPath {
    type Error = Error;

    fn try_from(path: &str) -> Result<SecretPath> {
        SecretPath::parse(path)
    }
}

impl From<SecretPath> for String {
    fn from(path: SecretPath) -> String {
        path.0
    }
}

impl std::ops::Deref for SecretPath {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for SecretPath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SecretPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rejects_each_broken_rule() {
        let long = "a".repeat(MAX_PATH_LEN + 1);
        for bad in ["", "/a", "a/", "a//b", ".", "a/./b", "a/..", "a\nb", "a\u{7f}", long.as_str()] {
            assert!(matches!(SecretPath::parse(bad), Err(Error::InvalidPath(_))), "{bad:?}");
            assert!(
                serde_json::from_str::<SecretPath>(&serde_json::to_string(bad).unwrap()).is_err(),
                "{bad:?}"
            );
        }
        let ok = "a".repeat(MAX_PATH_LEN);
        for good in ["a", "db/password", "a.b/..c/d..", "ünï/cödé", "with space", ok.as_str()] {
            assert_eq!(SecretPath::parse(good).unwrap().as_str(), good);
        }
    }

    #[test]
    fn system_paths_are_made_only_as_such_and_survive_storage() {
        let p = SecretPath::system("tokens/ab12").unwrap();
        assert!(p.is_system());
        assert_eq!(p.as_str(), "\u{1}sys/tokens/ab12");
        // No user path names it, nor the namespace's root.
        assert!(matches!(SecretPath::parse(p.as_str()), Err(Error::InvalidPath(_))));
        assert!(SecretPath::parse(SYSTEM_ROOT).is_err());
        assert!(!SecretPath::parse("sys/tokens").unwrap().is_system());
        // Stored and read back, it stays a system path; a broken name under the root does not read.
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<SecretPath>(&json).unwrap(), p);
        for bad in ["\u{1}sys", "\u{1}sys/", "\u{1}sys/a//b", "\u{1}sys/a\nb", "\u{1}system/a"] {
            assert!(SecretPath::try_from(bad.to_string()).is_err(), "{bad:?}");
        }
        assert!(SecretPath::system("").is_err());
        assert!(SecretPath::system(&"a".repeat(MAX_PATH_LEN)).is_err());
        assert!(is_system(SYSTEM_ROOT) && !is_system("\u{1}system/a"));
    }

    proptest! {
        #[test]
        fn parses_exactly_what_the_rules_allow(path in "[a-z./\\x00\\n]{0,12}") {
            let segments_ok = path.split('/').all(|s| !s.is_empty() && s != "." && s != "..");
            let valid = !path.is_empty() && !path.contains(['\0', '\n']) && segments_ok;
            prop_assert_eq!(SecretPath::parse(&path).is_ok(), valid);
            if let Ok(p) = SecretPath::parse(&path) {
                let json = serde_json::to_string(&p).unwrap();
                prop_assert_eq!(serde_json::from_str::<SecretPath>(&json).unwrap(), p);
            }
        }
    }
}
