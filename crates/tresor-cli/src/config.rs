//! Settings: command line, then environment, then the config file, then defaults.
//!
//! The config file is TOML at `$TRESOR_CONFIG` or `$XDG_CONFIG_HOME/tresor/config.toml`. String
//! values may use `${VAR}`, replaced by the environment variable (an unset one is an error).
//!
//! ```toml
//! vault = "${HOME}/vaults/work"
//! idle_timeout = "30m"
//! max_value_size = 1048576
//! ```

use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// The config file's contents.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Default vault location.
    pub vault: Option<String>,
    /// Agent idle timeout, e.g. `15m`, `900s`, `2h`.
    pub idle_timeout: Option<String>,
    /// Largest value accepted, in bytes.
    pub max_value_size: Option<usize>,
}

/// Replaces `${VAR}` with the variable's value.
pub fn substitute(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| format!("unterminated ${{ in {text:?}"))?;
        let name = &after[..end];
        let value =
            std::env::var(name).map_err(|_| format!("config refers to ${{{name}}}, which is not set"))?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Reads the config file, if there is one.
pub fn load(explicit: Option<PathBuf>) -> Result<FileConfig, String> {
    let path = match explicit {
        Some(p) => p,
        None => match dirs::config_dir() {
            Some(d) => d.join("tresor").join("config.toml"),
            None => return Ok(FileConfig::default()),
        },
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(FileConfig::default()),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let mut cfg: FileConfig = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    cfg.vault = cfg.vault.map(|v| substitute(&v)).transpose()?;
    cfg.idle_timeout = cfg.idle_timeout.map(|v| substitute(&v)).transpose()?;
    Ok(cfg)
}

/// Parses a positive duration: `90`, `90s`, `15m`, `2h`, `1d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let d = parse_duration_or_zero(text)?;
    if d.is_zero() {
        return Err("the idle timeout must be positive".into());
    }
    Ok(d)
}

/// Parses a duration that may be zero (`0s`, `10m`, `1h`, ...).
pub fn parse_duration_or_zero(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (digits, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: u64 = digits.parse().map_err(|_| format!("invalid duration {text:?}"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("invalid duration unit in {text:?} (use s, m, h or d)")),
    };
    Ok(Duration::from_secs(secs))
}

/// The default vault location: `$XDG_DATA_HOME/tresor/vault`.
pub fn default_vault() -> Option<PathBuf> {
    dirs::data_dir().map(|d| d.join("tresor").join("vault"))
}

/// Where trust state lives: `$TRESOR_STATE_DIR`, else `$XDG_STATE_HOME/tresor`.
pub fn state_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("TRESOR_STATE_DIR") {
        return PathBuf::from(d);
    }
    dirs::state_dir()
        .or_else(dirs::data_local_dir)
        .unwrap_or_else(|| PathBuf::from(".tresor-state"))
        .join("tresor")
}

/// Where agent sockets live: `$TRESOR_RUNTIME_DIR`, else `$XDG_RUNTIME_DIR/tresor`, else
/// `run/` in the state directory — never a predictable name in a shared `/tmp`. The directory
/// must be ours and 0700; the client also checks that the agent runs as us.
pub fn runtime_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("TRESOR_RUNTIME_DIR") {
        return PathBuf::from(d);
    }
    match dirs::runtime_dir() {
        Some(d) => d.join("tresor"),
        None => state_dir().join("run"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert!(parse_duration("0s").is_err());
        assert_eq!(parse_duration_or_zero("0s").unwrap(), Duration::ZERO);
        assert!(parse_duration("5 weeks").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn substitution() {
        let home = std::env::var("PATH").unwrap();
        assert_eq!(substitute("${PATH}/x").unwrap(), format!("{home}/x"));
        assert_eq!(substitute("plain").unwrap(), "plain");
        assert!(substitute("${TRESOR_SURELY_UNSET_VARIABLE}").is_err());
        assert!(substitute("${PATH").is_err());
    }
}
