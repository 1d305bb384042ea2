//! What the backends may know of the process: a snapshot of the environment variables they
//! read, taken by the binary that runs them.
//!
//! The CLI and the agent pass `std::env::vars_os()`; tests pass variables of their own. Nothing
//! in `tresor-backend` or below reads the process environment itself, so what a backend is
//! configured with is exactly what its caller handed it.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;

/// The variables a backend reads: the AWS settings (`AWS_*`) and the home directory the AWS
/// profile files are found under (`HOME`, and on Windows `USERPROFILE`, `HOMEDRIVE`,
/// `HOMEPATH`). Everything else in an environment (a `TRESOR_PASSWORD`, say) is left out of the
/// snapshot.
fn wanted(name: &str) -> bool {
    name.starts_with("AWS_") || matches!(name, "HOME" | "USERPROFILE" | "HOMEDRIVE" | "HOMEPATH")
}

/// The configuration the backends open locations with: a snapshot of environment variables.
///
/// An empty value counts as unset, as in the AWS tools; variables whose name or value is not
/// UTF-8 are left out. `Debug` shows the variables' names, never their values (a snapshot
/// usually holds `AWS_SECRET_ACCESS_KEY`).
#[derive(Clone, Default)]
pub struct BackendConfig {
    vars: BTreeMap<String, String>,
}

impl BackendConfig {
    /// A snapshot of `vars`, as `std::env::vars_os()` yields them (the binaries pass exactly
    /// that), keeping only the variables a backend reads.
    pub fn from_vars<K, V>(vars: impl IntoIterator<Item = (K, V)>) -> BackendConfig
    where
        K: Into<OsString>,
        V: Into<OsString>,
    {
        vars.into_iter()
            .filter_map(|(k, v)| Some((k.into().into_string().ok()?, v.into().into_string().ok()?)))
            .collect()
    }

    /// The value of `name`, if set and not empty.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// Every variable of the snapshot that is set and not empty.
    pub fn vars(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// This configuration with `name` set to `value` (if it is a variable a backend reads).
    pub fn with_var(mut self, name: &str, value: &str) -> BackendConfig {
        if wanted(name) {
            self.vars.insert(name.to_string(), value.to_string());
        }
        self
    }

    /// This configuration without `name`.
    pub fn without_var(mut self, name: &str) -> BackendConfig {
        self.vars.remove(name);
        self
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for BackendConfig {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> BackendConfig {
        BackendConfig {
            vars: iter.into_iter().map(|(k, v)| (k.into(), v.into())).filter(|(k, _)| wanted(k)).collect(),
        }
    }
}

impl fmt::Debug for BackendConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendConfig").field("vars", &self.vars.keys().collect::<Vec<_>>()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_what_backends_read_and_shows_no_value() {
        let config = BackendConfig::from_vars([
            ("AWS_SECRET_ACCESS_KEY", "SECRET-VALUE"),
            ("AWS_REGION", ""),
            ("HOME", "/home/u"),
            ("TRESOR_PASSWORD", "hunter2"),
            ("PATH", "/bin"),
        ]);
        assert_eq!(config.var("AWS_SECRET_ACCESS_KEY"), Some("SECRET-VALUE"));
        assert_eq!(config.var("AWS_REGION"), None, "empty is unset");
        assert_eq!(config.var("TRESOR_PASSWORD"), None, "not a backend's business");
        assert_eq!(config.vars().map(|(k, _)| k).collect::<Vec<_>>(), ["AWS_SECRET_ACCESS_KEY", "HOME"]);
        let shown = format!("{config:?}");
        assert!(shown.contains("AWS_SECRET_ACCESS_KEY") && !shown.contains("SECRET-VALUE"), "{shown}");
        let config = config.with_var("AWS_REGION", "eu-west-1").with_var("OTHER", "x").without_var("HOME");
        assert_eq!(config.var("AWS_REGION"), Some("eu-west-1"));
        assert_eq!(config.var("OTHER"), None);
        assert_eq!(config.var("HOME"), None);
    }
}
