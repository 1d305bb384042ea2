//! Settings: command line, then environment, then the config file, then defaults.
//!
//! The config file is TOML at `$TRESOR_CONFIG` or `$XDG_CONFIG_HOME/tresor/config.toml`. String
//! values may use `${VAR}`, replaced by the environment variable (an unset one is an error).
//!
//! ```toml
//! vault = "${HOME}/vaults/work"
//! idle_timeout = "30m"
//! max_value_size = 1048576
//!
//! [server]                          # `tresor server`: every flag has a key; a flag wins
//! listen = "0.0.0.0:8200"
//! tls_cert = "/etc/tresor/cert.pem"
//! tls_key = "/etc/tresor/key.pem"
//! encryption_password = "${TRESOR_SERVER_PASSWORD}"   # unattended unseal at start
//! ```
//!
//! A file named with `--config` or `TRESOR_CONFIG` must exist; the default one may be absent.

use secrecy::SecretString;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;
use zeroize::Zeroizing;

/// The largest `max_value_size` accepted, and the limit the agent holds: the limit a user sets is
/// checked by the CLI before a value is sent, so a changed limit needs no new unlock.
pub const MAX_VALUE_CEILING: usize = 64 << 20;

/// The largest config file read (a few lines are usual).
const MAX_CONFIG: u64 = 1 << 20;

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
    /// `tresor server`'s settings.
    #[serde(default)]
    pub server: ServerConfig,
}

/// The `[server]` table: one key per `tresor server` flag (a flag given wins), and the password
/// of an unattended start.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// `--listen`.
    pub listen: Option<String>,
    /// `--tls-cert`.
    pub tls_cert: Option<String>,
    /// `--tls-key`.
    pub tls_key: Option<String>,
    /// `--tls-disable`.
    pub tls_disable: Option<bool>,
    /// `--dev`.
    pub dev: Option<bool>,
    /// `--unseal` (implied by a configured password).
    pub unseal: Option<bool>,
    /// `--read-staleness`.
    pub read_staleness: Option<String>,
    /// `--sync-interval`.
    pub sync_interval: Option<String>,
    /// The vault's password, for an unattended start (usually `"${VARIABLE}"`); on an empty
    /// location `sys/init` also gives the new vault this password.
    #[serde(default, deserialize_with = "secret")]
    pub encryption_password: Option<ConfigSecret>,
    /// A file whose first line is that password (as `TRESOR_PASSWORD_FILE`).
    pub encryption_password_file: Option<String>,
}

/// A secret read from the config file: wiped when dropped, never printed.
pub struct ConfigSecret(pub SecretString);

impl std::fmt::Debug for ConfigSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConfigSecret([redacted])")
    }
}

/// Deserializes a secret string, `${VAR}` substituted, without a copy left behind unwiped; any
/// other type is refused without quoting it (serde's own message would show a numeric password).
fn secret<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<ConfigSecret>, D::Error> {
    struct Text;
    impl serde::de::Visitor<'_> for Text {
        type Value = ConfigSecret;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a quoted string")
        }
        fn visit_str<E: serde::de::Error>(self, raw: &str) -> Result<ConfigSecret, E> {
            // substitute's own messages quote the text: here they would quote the password.
            let text = Zeroizing::new(substitute(raw).map_err(|_| {
                E::custom("encryption_password: a ${VARIABLE} in it is unterminated or not set")
            })?);
            Ok(ConfigSecret(SecretString::from(text.as_str())))
        }
        fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<ConfigSecret, E> {
            Err(E::custom("a password must be a quoted string"))
        }
        fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<ConfigSecret, E> {
            Err(E::custom("a password must be a quoted string"))
        }
        fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<ConfigSecret, E> {
            Err(E::custom("a password must be a quoted string"))
        }
        fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<ConfigSecret, E> {
            Err(E::custom("a password must be a quoted string"))
        }
    }
    d.deserialize_str(Text).map(Some)
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

/// Reads the config file: the one named (which must exist), else the default one if it exists.
pub fn load(explicit: Option<PathBuf>) -> Result<FileConfig, String> {
    let named = explicit.is_some();
    let path = match explicit {
        Some(p) => p,
        None => match dirs::config_dir() {
            Some(d) => d.join("tresor").join("config.toml"),
            None => return Ok(FileConfig::default()),
        },
    };
    let cannot = |e: std::io::Error| format!("cannot read the config file {}: {e}", path.display());
    let text = match std::fs::File::open(&path) {
        // Bounded: `--config /dev/zero` is refused, not read until memory runs out.
        Ok(file) => {
            let mut text = Zeroizing::new(String::new());
            std::io::Read::read_to_string(&mut std::io::Read::take(file, MAX_CONFIG + 1), &mut text)
                .map_err(cannot)?;
            if text.len() as u64 > MAX_CONFIG {
                return Err(format!("the config file {} is larger than {MAX_CONFIG} bytes", path.display()));
            }
            text
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !named => return Ok(FileConfig::default()),
        Err(e) => return Err(cannot(e)),
    };
    // toml's own message quotes the offending line, which may hold a password: only its position.
    let mut cfg: FileConfig = toml::from_str(&text).map_err(|e| describe_toml_error(&path, &text, &e))?;
    let sub = |v: Option<String>| v.map(|v| substitute(&v)).transpose();
    cfg.vault = sub(cfg.vault)?;
    cfg.idle_timeout = sub(cfg.idle_timeout)?;
    let server = &mut cfg.server;
    server.listen = sub(server.listen.take())?;
    server.tls_cert = sub(server.tls_cert.take())?;
    server.tls_key = sub(server.tls_key.take())?;
    server.encryption_password_file = sub(server.encryption_password_file.take())?;
    server.read_staleness = sub(server.read_staleness.take())?;
    server.sync_interval = sub(server.sync_interval.take())?;
    Ok(cfg)
}

/// A TOML error as its position and kind, without the file's text.
fn describe_toml_error(path: &std::path::Path, text: &str, e: &toml::de::Error) -> String {
    let line = e.span().map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
    match line {
        Some(line) => format!("{}, line {line}: {}", path.display(), e.message()),
        None => format!("{}: {}", path.display(), e.message()),
    }
}

/// Parses a positive duration (`90s`, `15m`, `1h30m`, `7d`); `what` names it in the error.
pub fn parse_duration(text: &str, what: &str) -> Result<Duration, String> {
    let d = parse_duration_or_zero(text)?;
    if d.is_zero() {
        return Err(format!("{what} must be positive (got {:?})", text.trim()));
    }
    Ok(d)
}

/// Parses a duration that may be zero (`0`, `0s`, `100ms`, `10m`, `1h30m`, ...). A number
/// without a unit is refused (is `30` seconds or days?), except 0.
pub fn parse_duration_or_zero(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("the duration {text:?} needs a unit: {text}s, {text}m, {text}h or {text}d"));
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("invalid duration {text:?}: {e} (e.g. 90s, 15m, 1h30m, 7d)"))
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
        assert_eq!(parse_duration("15m", "x").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("2h", "x").unwrap(), Duration::from_secs(7200));
        // Regression (issue 15, bug 12): compound durations are read, bare numbers refused, and
        // the error names what was being set.
        assert_eq!(parse_duration("1h30m", "x").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("1h 30m", "x").unwrap(), Duration::from_secs(5400));
        assert!(parse_duration("90", "x").unwrap_err().contains("needs a unit: 90s, 90m"));
        assert_eq!(
            parse_duration("0s", "the rotation period").unwrap_err(),
            "the rotation period must be positive (got \"0s\")"
        );
        assert_eq!(parse_duration_or_zero("0s").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration_or_zero("0").unwrap(), Duration::ZERO);
        assert!(parse_duration("5 fortnights", "x").is_err());
        assert!(parse_duration("", "x").is_err());
        assert_eq!(parse_duration_or_zero("100ms").unwrap(), Duration::from_millis(100));
        assert!(parse_duration_or_zero("99999999999999999d").is_err(), "an overflow is refused");
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
