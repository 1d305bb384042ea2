//! The mount table: which secrets engine serves which path (`sys/mounts`), kept as one system
//! entry of the vault so every server on a store sees the same table.
//!
//! A vault without the entry has Vault's two default mounts: KV v2 at `secret/` and transit at
//! `transit/`. A KV v2 mount at `P/` is a view on the vault's secrets under `P/` (so `tresor get
//! P/x` reads what a client wrote to `P/data/x`). A transit mount's keys are its own: each mount
//! but the original `transit/` has a random id that qualifies its key names, so a key made after
//! a mount was disabled and enabled again is a new key, as in Vault.

use super::cache::Caches;
use super::reply::{self, ApiError};
use super::route::{Call, Verb};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use tresor::Vault;
use tresor::path::SecretPath;

/// First path segments no mount may take: the system, auth and tresor's own routes, and the
/// ones Vault reserves.
const RESERVED: [&str; 5] = ["sys", "auth", "tresor", "cubbyhole", "identity"];

/// Longest mount path.
const MAX_PATH: usize = 64;

/// What serves a mount.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Engine {
    /// KV version 2.
    Kv,
    /// Transit.
    Transit,
}

/// One mount.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Mount {
    pub(crate) engine: Engine,
    #[serde(default)]
    pub(crate) description: String,
    /// Qualifies a transit mount's key names (empty: the original `transit/`, whose keys are
    /// named as before mounts could change).
    #[serde(default)]
    pub(crate) id: String,
    /// When it was enabled, in seconds since the epoch (0: a default mount).
    #[serde(default)]
    pub(crate) created: u64,
    /// A KV mount's `config` (what every secret of it gets, within its own settings).
    #[serde(default, skip_serializing_if = "KvConfig::is_default")]
    pub(crate) kv: KvConfig,
}

/// A KV v2 mount's settings for all its secrets (`<mount>/config`, as Vault's): a secret's own
/// settings apply within them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct KvConfig {
    /// Every write needs `cas`.
    #[serde(default)]
    pub(crate) cas_required: bool,
    /// Versions kept per secret (0: all).
    #[serde(default)]
    pub(crate) max_versions: u64,
    /// How long after its creation a version reads as deleted, in seconds (0: never).
    #[serde(default)]
    pub(crate) delete_version_after: u64,
    /// When `delete_version_after` was set (ms): it applies to the versions written since.
    #[serde(default)]
    pub(crate) delete_version_after_since_ms: u64,
}

impl KvConfig {
    /// Whether nothing is set (not written with the mount then).
    fn is_default(&self) -> bool {
        *self == KvConfig::default()
    }
}

/// The mounts, by path without its trailing slash.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Table {
    pub(crate) mounts: BTreeMap<String, Mount>,
}

impl Default for Table {
    fn default() -> Self {
        let default = |engine, description: &str| Mount {
            engine,
            description: description.to_string(),
            id: String::new(),
            created: 0,
            kv: KvConfig::default(),
        };
        Table {
            mounts: BTreeMap::from([
                (super::kv::DEFAULT_MOUNT.to_string(), default(Engine::Kv, "key/value secret storage")),
                (
                    super::transit::DEFAULT_MOUNT.to_string(),
                    default(Engine::Transit, "encryption as a service"),
                ),
            ]),
        }
    }
}

impl Table {
    /// The mount `path` (a request path after `/v1/`) lies in, and the rest of the path after it.
    pub(crate) fn find<'p>(&self, path: &'p str) -> Option<(&'p str, &Mount, &'p str)> {
        // The longest mount path that is a whole-segment prefix of `path`.
        let mut end = path.len();
        loop {
            let candidate = &path[..end];
            if let Some(mount) = self.mounts.get(candidate) {
                let rest = path[end..].trim_start_matches('/');
                return Some((candidate, mount, rest));
            }
            end = candidate.rfind('/')?;
        }
    }

    /// The paths of the KV mounts.
    pub(crate) fn kv_mounts(&self) -> impl Iterator<Item = &str> {
        self.mounts.iter().filter(|(_, m)| m.engine == Engine::Kv).map(|(p, _)| p.as_str())
    }
}

/// The system entry holding the table.
fn entry() -> Result<SecretPath, ApiError> {
    Ok(SecretPath::system("mounts")?)
}

/// The table of a vault without one.
static DEFAULT: std::sync::LazyLock<Arc<Table>> = std::sync::LazyLock::new(|| Arc::new(Table::default()));

/// The table in force (through the cache: no store read while unchanged).
pub(crate) async fn table(vault: &Vault, cache: &Caches) -> Result<Arc<Table>, ApiError> {
    let parse =
        |bytes: &[u8]| serde_json::from_slice::<Table>(bytes).map(Arc::new).map_err(|e| e.to_string());
    match cache.mounts.get(vault, &entry()?, parse).await?.as_deref() {
        Some(Ok(table)) => Ok(table.clone()),
        Some(Err(e)) => Err(ApiError::internal(format!("the mount table does not parse: {e}"))),
        None => Ok(DEFAULT.clone()),
    }
}

/// The stored table and the live version of its entry (0: none, the defaults — also after the
/// entry was deleted, since a check-and-set compares with the live version).
async fn stored(vault: &Vault) -> Result<(Table, u64), ApiError> {
    match vault.system_entry(&entry()?, None).await? {
        tresor::vault::SystemEntry::Current(version, bytes) => {
            let table = serde_json::from_slice(bytes.as_slice())
                .map_err(|e| ApiError::internal(format!("the mount table does not parse: {e}")))?;
            Ok((table, version))
        }
        _ => Ok((Table::default(), 0)),
    }
}

/// Changes the KV configuration of the mount at `path` with `edit` (check-and-set on the table).
pub(crate) async fn change_kv_config(
    vault: &Vault,
    path: &str,
    edit: impl Fn(&mut KvConfig),
) -> Result<(), ApiError> {
    change(vault, |table| {
        let mount = table
            .mounts
            .get_mut(path)
            .filter(|m| m.engine == Engine::Kv)
            .ok_or_else(|| ApiError::invalid(format!("no KV mount at \"{path}/\"")))?;
        edit(&mut mount.kv);
        Ok(())
    })
    .await
}

/// Changes the stored table with `edit` and writes it back as a check-and-set; when another
/// server changed it meanwhile, reads it again and edits that (`edit` checks again), a few times.
async fn change<T>(
    vault: &Vault,
    mut edit: impl FnMut(&mut Table) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    for _ in 0..4 {
        let (mut table, version) = stored(vault).await?;
        let out = edit(&mut table)?;
        let bytes = serde_json::to_vec(&table).map_err(|e| ApiError::internal(e.to_string()))?;
        match vault.set_cas(&entry()?, &bytes, version).await {
            Ok(_) => return Ok(out),
            Err(tresor::Error::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::internal("the mount table kept changing under this request; try again"))
}

/// The system path whose whole text (as listings give it) is `whole`.
pub(crate) fn system_path(whole: &str) -> Result<SecretPath, ApiError> {
    let name = whole
        .strip_prefix(tresor::path::SYSTEM_ROOT)
        .and_then(|rest| rest.strip_prefix('/'))
        .ok_or_else(|| ApiError::internal(format!("{whole:?} is not a system path")))?;
    Ok(SecretPath::system(name)?)
}

/// Checks a mount path given to `sys/mounts/<path>`: segments of `A-Z a-z 0-9 _ -`, at most
/// [`MAX_PATH`] bytes, not under a reserved name.
fn check_path(path: &str) -> Result<(), ApiError> {
    let good_segment =
        |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b));
    if path.is_empty() || path.len() > MAX_PATH || !path.split('/').all(good_segment) {
        return Err(ApiError::invalid(format!(
            "invalid mount path \"{path}\": segments of A-Z, a-z, 0-9, '_' and '-', at most {MAX_PATH} bytes"
        )));
    }
    let first = path.split('/').next().unwrap_or_default();
    if RESERVED.contains(&first) {
        return Err(ApiError::invalid(format!("cannot mount under \"{first}/\": it is reserved")));
    }
    Ok(())
}

/// The engine a `sys/mounts` body asks for: `kv` with `options.version` 2, `kv-v2`, or
/// `transit`. KV version 1 is refused (tresor keeps every version).
fn engine_of(body: &Value) -> Result<Engine, ApiError> {
    let kind = body.get("type").and_then(Value::as_str).ok_or_else(|| ApiError::invalid("missing type"))?;
    let version = body.pointer("/options/version").and_then(|v| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    });
    match (kind, version.as_deref()) {
        ("kv-v2", _) | ("kv", Some("2")) => Ok(Engine::Kv),
        ("kv", _) => Err(ApiError::invalid(
            "tresor serves KV version 2 only: enable it with options {\"version\": \"2\"} (vault secrets enable -version=2 kv)",
        )),
        ("transit", _) => Ok(Engine::Transit),
        (other, _) => Err(ApiError::invalid(format!(
            "tresor serves the kv (version 2) and transit secrets engines, not \"{other}\""
        ))),
    }
}

/// How Vault shows a mount.
pub(crate) fn show(path: &str, mount: &Mount) -> Value {
    let (kind, options) = match mount.engine {
        Engine::Kv => ("kv", json!({ "version": "2" })),
        Engine::Transit => ("transit", Value::Null),
    };
    json!({
        "type": kind,
        "path": format!("{path}/"),
        "description": mount.description,
        "accessor": format!("{kind}_{}", if mount.id.is_empty() { "default" } else { &mount.id }),
        "options": options,
        "config": { "default_lease_ttl": 0, "max_lease_ttl": 0, "force_no_cache": false },
        "local": false,
        "seal_wrap": false,
        "external_entropy_access": false,
    })
}

/// The mount type `reply::ok` names for a mount.
pub(crate) fn type_name(mount: &Mount) -> &'static str {
    match mount.engine {
        Engine::Kv => "kv",
        Engine::Transit => "transit",
    }
}

/// `GET sys/mounts`: every mount, keyed by its path with a slash (at the top and under `data`,
/// as Vault answers).
pub(crate) fn list(table: &Table) -> Response {
    let mounts: serde_json::Map<String, Value> =
        table.mounts.iter().map(|(p, m)| (format!("{p}/"), show(p, m))).collect();
    let mut body = reply::envelope(Value::Object(mounts.clone()), "system");
    if let Value::Object(top) = &mut body {
        for (k, v) in mounts {
            top.entry(k).or_insert(v);
        }
    }
    reply::json(axum::http::StatusCode::OK, &body)
}

/// `sys/mounts/<path>` (read, enable, disable) and `sys/mounts/<path>/tune` (read; a write
/// changes the description, and refuses a KV version other than 2; lease settings mean nothing
/// here and are ignored).
pub(crate) async fn route(
    vault: &Vault,
    table: &Table,
    call: &Call,
    rest: &str,
) -> Result<Response, ApiError> {
    let (path, tune) = match rest.strip_suffix("/tune") {
        Some(path) => (path, true),
        None => (rest, false),
    };
    let missing = || ApiError::invalid(format!("no mount at \"{path}/\""));
    match (tune, call.verb) {
        (_, Verb::Read) => match table.mounts.get(path) {
            Some(mount) if tune => Ok(reply::ok(
                json!({ "default_lease_ttl": 0, "max_lease_ttl": 0, "force_no_cache": false,
                        "description": mount.description, "options": show(path, mount)["options"] }),
                "system",
            )),
            Some(mount) => Ok(reply::ok(show(path, mount), "system")),
            None => Err(missing()),
        },
        (true, Verb::Write) => {
            let body = call.json()?;
            let description = body.get("description").and_then(Value::as_str).map(str::to_string);
            let version = body.pointer("/options/version").filter(|v| !v.is_null());
            change(vault, |table| {
                let mount = table.mounts.get_mut(path).ok_or_else(missing)?;
                if let Some(version) = version {
                    let two = version.as_str() == Some("2") || version.as_u64() == Some(2);
                    if mount.engine != Engine::Kv || !two {
                        return Err(ApiError::invalid("tresor's KV mounts are version 2, and stay so"));
                    }
                }
                if let Some(description) = &description {
                    mount.description.clone_from(description);
                }
                Ok(())
            })
            .await?;
            Ok(reply::no_content())
        }
        (false, Verb::Write) => enable(vault, path, &call.json()?).await,
        (false, Verb::Delete) => disable(vault, path).await,
        _ => Err(ApiError::method()),
    }
}

/// `POST sys/mounts/<path>` `{"type", "description", "options"}`.
async fn enable(vault: &Vault, path: &str, body: &Value) -> Result<Response, ApiError> {
    check_path(path)?;
    let engine = engine_of(body)?;
    let description = body.get("description").and_then(Value::as_str).unwrap_or_default().to_string();
    change(vault, |table| {
        let clash = table.mounts.keys().find(|existing| {
            *existing == path
                || path.strip_prefix(existing.as_str()).is_some_and(|r| r.starts_with('/'))
                || existing.strip_prefix(path).is_some_and(|r| r.starts_with('/'))
        });
        if let Some(existing) = clash {
            return Err(ApiError::invalid(format!("path is already in use at {existing}/")));
        }
        // An id no mount of the table has (48 random bits: a clash is only possible in theory).
        let id = loop {
            let id = hex::encode(tresor_crypto::random_array::<6>().map_err(tresor::Error::from)?);
            if !table.mounts.values().any(|m| m.id == id) {
                break id;
            }
        };
        let created = super::tokens::now_ms() / 1000;
        table.mounts.insert(
            path.to_string(),
            Mount { engine, description: description.clone(), id, created, kv: KvConfig::default() },
        );
        Ok(())
    })
    .await?;
    Ok(reply::no_content())
}

/// `DELETE sys/mounts/<path>`: the mount goes, and what it held with it, as in Vault — every
/// version of every secret under a KV mount is destroyed (its value taken out of the store, as
/// `DELETE metadata/` does) and its settings deleted; a transit mount's keys are forgotten (their
/// material derives from the mount's id, which no later mount has). Disabling what is not
/// mounted does nothing.
async fn disable(vault: &Vault, path: &str) -> Result<Response, ApiError> {
    // The table first: a failure after it leaves data no mount serves, never a mount half gone.
    let Some(mount) = change(vault, |table| Ok(table.mounts.remove(path))).await? else {
        return Ok(reply::no_content());
    };
    match mount.engine {
        Engine::Kv => {
            let prefix = format!("{path}/");
            let mut secrets: Vec<String> = vault.list(&prefix).await?.into_iter().map(|e| e.path).collect();
            secrets.extend(vault.list_deleted(&prefix).await?.into_iter().map(|e| e.path));
            for secret in secrets {
                super::kv::delete_metadata(vault, &secret).await?;
            }
            // Settings of secrets that had no version left.
            for settings in vault.list_system(&format!("kv/{prefix}")).await? {
                match vault.delete(&system_path(&settings.path)?).await {
                    Ok(_) | Err(tresor::Error::NotFound { .. } | tresor::Error::Deleted { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Engine::Transit => {
            for key in super::transit::key_entries(vault, &mount).await? {
                match vault.delete(&key).await {
                    Ok(_) | Err(tresor::Error::NotFound { .. } | tresor::Error::Deleted { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    Ok(reply::no_content())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_finds_its_longest_mount_on_whole_segments() {
        let mut table = Table::default();
        let kv = Mount {
            engine: Engine::Kv,
            description: String::new(),
            id: "ab".into(),
            created: 1,
            kv: KvConfig::default(),
        };
        table.mounts.insert("team/kv".into(), kv);
        let found = |p: &'static str| table.find(p).map(|(m, _, r)| (m, r));
        assert_eq!(found("secret/data/x"), Some(("secret", "data/x")));
        assert_eq!(found("secret"), Some(("secret", "")));
        assert_eq!(found("team/kv/data/a/b"), Some(("team/kv", "data/a/b")));
        assert_eq!(found("secretx/data/x"), None);
        assert_eq!(found("team/kvx/data"), None);
        assert_eq!(found("team"), None);
    }

    #[test]
    fn mount_paths_and_engines_are_checked() {
        for good in ["kv", "team/kv", "a-b_c/D9"] {
            assert!(check_path(good).is_ok(), "{good}");
        }
        for bad in ["", "a//b", "a/./b", "a.b", "sys", "sys/x", "auth/kv", "tresor", &"x".repeat(65)] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
        assert_eq!(engine_of(&json!({"type": "kv-v2"})).ok(), Some(Engine::Kv));
        assert_eq!(engine_of(&json!({"type": "kv", "options": {"version": "2"}})).ok(), Some(Engine::Kv));
        assert_eq!(engine_of(&json!({"type": "kv", "options": {"version": 2}})).ok(), Some(Engine::Kv));
        assert_eq!(engine_of(&json!({"type": "transit"})).ok(), Some(Engine::Transit));
        assert!(engine_of(&json!({"type": "kv"})).is_err());
        assert!(engine_of(&json!({"type": "pki"})).is_err());
        assert!(engine_of(&json!({})).is_err());
    }
}
