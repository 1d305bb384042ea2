//! Secret paths: the one type a path is checked into, once, at the boundary.
//!
//! A [`SecretPath`] is non-empty `/`-separated segments, none empty, `.` or `..`, no control
//! characters, at most [`MAX_PATH_LEN`] bytes. Everything below the handle's public methods (the
//! engine, group commit, the index) takes a `SecretPath` and never checks a string again.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest secret path, in bytes.
pub const MAX_PATH_LEN: usize = 512;

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

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
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

impl TryFrom<String> for SecretPath {
    type Error = Error;

    fn try_from(path: String) -> Result<SecretPath> {
        check(&path)?;
        Ok(SecretPath(path))
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
