//! KV v2 at a mount (`secret/` by default): a view on the vault's secrets under the mount's
//! path (ARCHITECTURE.md, "The server"). A version's data is a JSON object kept as its JSON text; a value that is not one
//! (written by `tresor set`) reads as `{"value": TEXT}`, or `{"value_base64": …}`.

use super::mounts::KvConfig;
use super::reply::{self, ApiError, time};
use super::route::{Call, Verb};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};
use tresor::Vault;
use tresor::path::SecretPath;
use tresor::vault::HistoryEntry;

/// The default mount. A mount's path is also the prefix of its secrets in the vault.
pub(crate) const DEFAULT_MOUNT: &str = "secret";

/// One request under the KV mount `mount`: `rest` is the path after it.
pub(crate) async fn handle(
    vault: &Vault,
    call: &Call,
    mount: &str,
    config: &KvConfig,
    rest: &str,
) -> Result<Response, ApiError> {
    let (kind, path) = rest.split_once('/').unwrap_or((rest, ""));
    let secret = |path: &str| secret(mount, path);
    match (kind, call.verb) {
        ("data", Verb::Read) => read(vault, config, &secret(path)?, version(call)?).await,
        ("subkeys", Verb::Read) => subkeys(vault, config, &secret(path)?, version(call)?, depth(call)?).await,
        ("data", Verb::Write) => write(vault, config, &secret(path)?, &call.json()?).await,
        ("data", Verb::Patch) => patch(vault, config, &secret(path)?, &call.json()?).await,
        ("data", Verb::Delete) => {
            // Nothing there (never written, or deleted already): Vault answers 204 all the same
            // ("deleted, if it existed"), and clients deleting what is gone rely on it.
            match vault.delete(&secret(path)?).await {
                Ok(_) | Err(tresor::Error::NotFound { .. } | tresor::Error::Deleted { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            Ok(reply::no_content())
        }
        ("delete", Verb::Write) => {
            vault.delete_versions(&secret(path)?, &versions(&call.json()?)?).await.or_else(absent_is_fine)?;
            Ok(reply::no_content())
        }
        ("undelete", Verb::Write) => {
            vault
                .undelete_versions(&secret(path)?, &versions(&call.json()?)?)
                .await
                .or_else(absent_is_fine)?;
            Ok(reply::no_content())
        }
        ("destroy", Verb::Write) => {
            destroy(vault, &secret(path)?, &versions(&call.json()?)?).await?;
            Ok(reply::no_content())
        }
        ("metadata", Verb::List) => list(vault, mount, path).await,
        ("metadata", Verb::Read) => metadata(vault, config, &secret(path)?).await,
        ("metadata", Verb::Write) => set_settings(vault, &secret(path)?, &call.json()?, false).await,
        ("metadata", Verb::Patch) => set_settings(vault, &secret(path)?, &call.json()?, true).await,
        ("metadata", Verb::Delete) => delete_metadata(vault, &secret(path)?).await,
        ("config", Verb::Read) if path.is_empty() => Ok(reply::ok(
            json!({ "cas_required": config.cas_required,
                    "delete_version_after": super::auth::go_duration(config.delete_version_after),
                    "max_versions": config.max_versions }),
            "kv",
        )),
        ("config", Verb::Write) if path.is_empty() => set_config(vault, mount, &call.json()?).await,
        ("data" | "subkeys" | "metadata" | "config" | "delete" | "undelete" | "destroy", _) => {
            Err(ApiError::method())
        }
        _ => Err(ApiError::not_found()),
    }
}

/// What KV v2 keeps about a secret besides its versions, as a system entry (`kv/<path>`): the
/// secret's metadata settings.
#[derive(Clone, Default, Serialize, Deserialize)]
struct Settings {
    #[serde(default)]
    custom_metadata: BTreeMap<String, String>,
    #[serde(default)]
    cas_required: bool,
    /// Versions kept (0: all): older ones are destroyed ([`prune`]), and read as absent.
    #[serde(default)]
    max_versions: u64,
    /// How long after its creation a version written from now on reads as deleted (0: never),
    /// in seconds.
    #[serde(default, deserialize_with = "seconds_or_text")]
    delete_version_after: u64,
    /// Since when (ms) each `delete_version_after` was in force, oldest first: a version gets the
    /// one in force when it was written, as in Vault (until review, a new setting applied to every
    /// version already there). Empty in settings written before it was kept: then the setting
    /// applies to every version, as it did.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    delete_after_since: Vec<(u64, u64)>,
    /// The mount's `delete_version_after` (seconds, 0: none) and since when (ms) it is set, put
    /// here by [`within`]: the bound of the secret's own for the versions written since.
    #[serde(skip)]
    mount_delete_after: (u64, u64),
}

/// `POST <mount>/config` `{"cas_required", "max_versions", "delete_version_after"}`: what every
/// secret of the mount gets, within its own settings (each field given replaces its value). A
/// lower `max_versions` destroys at each secret's next write, as in Vault.
async fn set_config(vault: &Vault, mount: &str, body: &Value) -> Result<Response, ApiError> {
    if !body.is_object() {
        return Err(ApiError::invalid("the settings must be a JSON object"));
    }
    let cas_required = super::fields::flag(body, "cas_required")?;
    let max_versions = super::fields::whole(body, "max_versions")?;
    let delete_after = match body.get("delete_version_after").filter(|v| !v.is_null()) {
        Some(v) => Some(super::auth::duration_s(v)?),
        None => None,
    };
    super::mounts::change_kv_config(vault, mount, |config| {
        if let Some(required) = cas_required {
            config.cas_required = required;
        }
        if let Some(max) = max_versions {
            config.max_versions = max;
        }
        if let Some(after) = delete_after
            && after != config.delete_version_after
        {
            config.delete_version_after = after;
            // Applied to the versions written from now on, as Vault sets a version's deletion
            // time when it is written (review: setting it deleted every secret of the mount at
            // once, and removing it brought them back).
            config.delete_version_after_since_ms = super::tokens::now_ms();
        }
    })
    .await?;
    Ok(reply::no_content())
}

/// The narrower of a secret's own limit and its mount's (0: none set).
fn narrower(own: u64, mount: u64) -> u64 {
    match (own, mount) {
        (0, m) => m,
        (o, 0) => o,
        (o, m) => o.min(m),
    }
}

/// A secret's settings within its mount's `config`, as Vault documents them: `cas_required` if
/// either asks it; `max_versions` the secret's own when set, else the mount's (review found the
/// smaller of the two taken: a mount setting destroyed versions a secret's own kept); and
/// `delete_version_after` the secret's own, never past the mount's, for the versions written
/// since the mount's was set.
fn within(mut s: Settings, config: &KvConfig) -> Settings {
    s.cas_required |= config.cas_required;
    if s.max_versions == 0 {
        s.max_versions = config.max_versions;
    }
    s.mount_delete_after = (config.delete_version_after, config.delete_version_after_since_ms);
    s
}

/// The changes of `delete_version_after` a secret's settings remember (older ones merge into the
/// one before them).
const DELETE_AFTER_CHANGES: usize = 32;

impl Settings {
    /// Sets `delete_version_after` to `secs` for versions written from `now_ms` on.
    fn set_delete_after(&mut self, secs: u64, now_ms: u64) {
        if self.delete_after_since.is_empty() {
            // What was in force before it was kept applies to every version there is.
            self.delete_after_since.push((0, self.delete_version_after));
        }
        self.delete_version_after = secs;
        self.delete_after_since.push((now_ms, secs));
        // Past the bound the second oldest goes: the oldest, reaching back to the start, stays
        // (dropping it made an old setting apply to versions written before it: review).
        if self.delete_after_since.len() > DELETE_AFTER_CHANGES {
            self.delete_after_since.remove(1);
        }
    }

    /// The `delete_version_after` a version written at `created_ms` got, in seconds (within
    /// the mount's).
    fn delete_after_for(&self, created_ms: u64) -> u64 {
        let own = match self.delete_after_since.iter().rev().find(|(since, _)| *since <= created_ms) {
            Some((_, secs)) => *secs,
            None if self.delete_after_since.is_empty() => self.delete_version_after,
            None => 0,
        };
        let (mount, since) = self.mount_delete_after;
        if created_ms >= since { narrower(own, mount) } else { own }
    }
}

/// `delete_version_after` as stored now (seconds) or as stored before (the text given, unchecked
/// then: text that is no duration reads as 0, never, so that it cannot lock the secret).
fn seconds_or_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let value = Value::deserialize(d)?;
    Ok(super::auth::duration_s(&value).unwrap_or(0))
}

/// `{"versions": [1, 2]}`: the versions a delete, undelete or destroy names (at least one).
fn versions(body: &Value) -> Result<Vec<u64>, ApiError> {
    let list = body.get("versions").and_then(Value::as_array).filter(|l| !l.is_empty());
    let Some(list) = list else { return Err(ApiError::invalid("no version number provided")) };
    list.iter()
        .map(|v| {
            v.as_u64()
                .or_else(|| v.as_str().and_then(|t| t.parse().ok()))
                .ok_or_else(|| ApiError::invalid("versions must be numbers"))
        })
        .collect()
}

/// A secret that does not exist has nothing to delete or undelete: Vault answers 204 all the same.
fn absent_is_fine(e: tresor::Error) -> Result<Vec<u64>, tresor::Error> {
    match e {
        tresor::Error::NotFound { .. } => Ok(Vec::new()),
        e => Err(e),
    }
}

/// Destroys `versions` of `path`: their values are taken out of the store. A destruction the
/// store could not complete (an object it would not delete, old object versions it keeps) is a
/// 500 that says so: the versions are destroyed in the log, the ciphertext is not yet gone.
async fn destroy(vault: &Vault, path: &str, versions: &[u64]) -> Result<(), ApiError> {
    let report = match vault.destroy_versions(path, versions).await {
        Ok(report) => report,
        Err(tresor::Error::NotFound { .. }) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if report.complete() {
        return Ok(());
    }
    Err(ApiError::internal(format!(
        "versions {:?} of {path} are destroyed, but the store still holds their ciphertext: {} objects \
         not deleted, old object versions: {:?} (run `tresor gc`, or destroy the key epoch)",
        report.destroyed,
        report.remaining_objects.len(),
        report.residue
    )))
}

fn settings_path(path: &str) -> Result<SecretPath, ApiError> {
    Ok(SecretPath::system(&format!("kv/{path}"))?)
}

/// The settings of `path` and the version of their entry (0: none yet, or deleted).
async fn settings(vault: &Vault, path: &str) -> Result<(Settings, u64), ApiError> {
    let entry = settings_path(path)?;
    let last = match vault.history(&entry).await {
        Ok(h) => h.last().map(|h| (h.version, h.deleted_ms.is_none())),
        Err(tresor::Error::NotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    match last {
        Some((version, true)) => {
            let bytes = vault.get(&entry, Some(version)).await?;
            let s =
                serde_json::from_slice(bytes.as_slice()).map_err(|e| ApiError::internal(e.to_string()))?;
            Ok((s, version))
        }
        // Deleted: the next write starts from the defaults (a check-and-set compares with the
        // live version, which is none).
        Some((_, false)) => Ok((Settings::default(), 0)),
        None => Ok((Settings::default(), 0)),
    }
}

/// The settings in force for `path` (the defaults when it has none): for reads and writes of its
/// data, which need no version of the settings (bookkeeping, not audited on its own).
async fn settings_in_force(vault: &Vault, config: &KvConfig, path: &str) -> Result<Settings, ApiError> {
    let own = match vault.system_entry(&settings_path(path)?, None).await? {
        tresor::vault::SystemEntry::Current(_, bytes) => {
            serde_json::from_slice(bytes.as_slice()).map_err(|e| ApiError::internal(e.to_string()))?
        }
        _ => Settings::default(),
    };
    Ok(within(own, config))
}

/// The versions of `history` that `settings` show (the newest `max_versions`).
fn visible<'h>(history: &'h [HistoryEntry], settings: &Settings) -> &'h [HistoryEntry] {
    let max = usize::try_from(settings.max_versions).unwrap_or(usize::MAX);
    if max == 0 || history.len() <= max { history } else { &history[history.len() - max..] }
}

/// `POST`/`PATCH secret/metadata/<p>`: changes the settings given, keeps the others.
async fn set_settings(vault: &Vault, path: &str, body: &Value, patch: bool) -> Result<Response, ApiError> {
    let (mut s, version) = settings(vault, path).await?;
    let bad = || ApiError::invalid("custom_metadata must map names to strings");
    match body.get("custom_metadata").filter(|v| !v.is_null()) {
        // A PATCH merges (RFC 7386, as Vault's): keys given replace theirs, `null` removes one.
        Some(Value::Object(changes)) if patch => {
            for (key, value) in changes {
                match value {
                    Value::Null => {
                        s.custom_metadata.remove(key);
                    }
                    Value::String(text) => {
                        s.custom_metadata.insert(key.clone(), text.clone());
                    }
                    _ => return Err(bad()),
                }
            }
        }
        Some(v) => s.custom_metadata = serde_json::from_value(v.clone()).map_err(|_| bad())?,
        None => {}
    }
    if let Some(required) = super::fields::flag(body, "cas_required")? {
        s.cas_required = required;
    }
    if let Some(max) = super::fields::whole(body, "max_versions")? {
        s.max_versions = max;
    }
    if let Some(v) = body.get("delete_version_after").filter(|v| !v.is_null()) {
        let secs = super::auth::duration_s(v)?;
        if secs != s.delete_version_after {
            s.set_delete_after(secs, super::tokens::now_ms());
        }
    }
    let bytes = serde_json::to_vec(&s).map_err(|e| ApiError::internal(e.to_string()))?;
    vault.set_cas(&settings_path(path)?, &bytes, version).await?;
    Ok(reply::no_content())
}

/// `DELETE secret/metadata/<p>`: the settings go, and every version is destroyed (its value
/// taken out of the store). The version numbers stay known as destroyed facts: a new write
/// continues after them (Vault starts again at 1).
pub(crate) async fn delete_metadata(vault: &Vault, path: &str) -> Result<Response, ApiError> {
    match vault.delete(&settings_path(path)?).await {
        Ok(_) | Err(tresor::Error::NotFound { .. } | tresor::Error::Deleted { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let all: Vec<u64> = match vault.history(path).await {
        Ok(history) => history.iter().filter(|h| !h.destroyed).map(|h| h.version).collect(),
        Err(tresor::Error::NotFound { .. }) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    if !all.is_empty() {
        destroy(vault, path, &all).await?;
    }
    Ok(reply::no_content())
}

/// The vault path of the KV path `path` under `mount`.
pub(crate) fn secret(mount: &str, path: &str) -> Result<String, ApiError> {
    if path.is_empty() {
        return Err(ApiError::invalid("no secret path given"));
    }
    Ok(format!("{mount}/{path}"))
}

/// `?version=N` (0 or absent: the newest).
fn version(call: &Call) -> Result<Option<u64>, ApiError> {
    match call.query.get("version").map(|v| v.parse::<u64>()) {
        None | Some(Ok(0)) => Ok(None),
        Some(Ok(v)) => Ok(Some(v)),
        Some(Err(_)) => Err(ApiError::invalid("version must be a number")),
    }
}

/// When a version is (or was) deleted: its deletion, or its expiry under `delete_version_after`
/// (which Vault, too, applies when the version is read, not by a write).
fn deletion_ms(h: &HistoryEntry, settings: &Settings) -> Option<u64> {
    let after = settings.delete_after_for(h.created_ms);
    let expiry = (after > 0).then(|| h.created_ms.saturating_add(after.saturating_mul(1000)));
    match (h.deleted_ms, expiry) {
        (Some(deleted), Some(expiry)) => Some(deleted.min(expiry)),
        (deleted, expiry) => deleted.or(expiry),
    }
}

/// Whether a version reads as deleted now.
fn deleted_now(h: &HistoryEntry, settings: &Settings) -> bool {
    deletion_ms(h, settings).is_some_and(|at| at <= super::tokens::now_ms())
}

/// A version's metadata, as KV v2 shows it.
fn version_metadata(h: &HistoryEntry, settings: &Settings) -> Value {
    json!({
        "created_time": time(Some(h.created_ms)),
        "custom_metadata": custom(settings),
        "deletion_time": time(deletion_ms(h, settings)),
        "destroyed": h.destroyed,
        "version": h.version,
    })
}

/// `GET secret/data/<p>[?version=N]`: a deleted version is a 404 that still carries its metadata.
async fn read(
    vault: &Vault,
    config: &KvConfig,
    path: &str,
    version: Option<u64>,
) -> Result<Response, ApiError> {
    read_shown(vault, config, path, version, "data", |data| data).await
}

/// `GET secret/subkeys/<p>[?version=N&depth=D]`: the secret's keys without its values (each
/// value `null`, objects followed `depth` levels down, 0: all), as Vault answers — for a client
/// that must know which fields a secret has and may not read them.
async fn subkeys(
    vault: &Vault,
    config: &KvConfig,
    path: &str,
    version: Option<u64>,
    depth: usize,
) -> Result<Response, ApiError> {
    read_shown(vault, config, path, version, "subkeys", |data| keys_of(data, depth)).await
}

/// `value` with every leaf `null`, objects followed `depth` levels (0: all; an object at the
/// last level is `null` too).
fn keys_of(value: Value, depth: usize) -> Value {
    fn walk(value: Value, left: Option<usize>) -> Value {
        match value {
            Value::Object(map) if left != Some(0) => {
                Value::Object(map.into_iter().map(|(k, v)| (k, walk(v, left.map(|l| l - 1)))).collect())
            }
            _ => Value::Null,
        }
    }
    match value {
        // The top level is always the secret's fields.
        Value::Object(map) => {
            let left = (depth > 0).then(|| depth - 1);
            Value::Object(map.into_iter().map(|(k, v)| (k, walk(v, left))).collect())
        }
        _ => Value::Null,
    }
}

/// The `depth` of a subkeys request (0: all).
fn depth(call: &Call) -> Result<usize, ApiError> {
    match call.query.get("depth").map(|v| v.parse::<usize>()) {
        None => Ok(0),
        Some(Ok(d)) => Ok(d),
        Some(Err(_)) => Err(ApiError::invalid("depth must be a number")),
    }
}

/// A version of `path` answered as `{<field>: show(data), "metadata": ...}` (404 with the
/// metadata and `null` when it is deleted or destroyed).
async fn read_shown(
    vault: &Vault,
    config: &KvConfig,
    path: &str,
    version: Option<u64>,
    field: &str,
    show: impl FnOnce(Value) -> Value,
) -> Result<Response, ApiError> {
    let settings = settings_in_force(vault, config, path).await?;
    // The version and the history in one read (one audit record).
    let (full, value) = match vault.get_with_history(path, version).await {
        Ok(found) => found,
        Err(tresor::Error::NoSuchVersion { .. }) => return Err(ApiError::not_found()),
        Err(e) => return Err(e.into()),
    };
    let history = visible(&full, &settings);
    let wanted = match version {
        Some(v) => history.iter().find(|h| h.version == v),
        None => history.last(),
    };
    // A version older than the newest `max_versions` reads as absent.
    let Some(entry) = wanted else { return Err(ApiError::not_found()) };
    let metadata = version_metadata(entry, &settings);
    // Past its `delete_version_after`: deleted, though no one deleted it.
    let value = value.filter(|_| !deleted_now(entry, &settings));
    match value {
        Some(value) => Ok(reply::ok(
            json!({ field: show(super::kvdata::decode(value.as_slice())), "metadata": metadata }),
            "kv",
        )),
        None => {
            let body = reply::envelope(json!({ field: null, "metadata": metadata }), "kv");
            Ok(reply::json(StatusCode::NOT_FOUND, &body))
        }
    }
}

/// The check-and-set version `options.cas` of a write or a patch (a number, or decimal text).
fn cas(body: &Value) -> Result<Option<u64>, ApiError> {
    match body.get("options") {
        None | Some(Value::Null) => Ok(None),
        Some(options) => super::fields::whole(options, "cas"),
    }
}

/// `POST`/`PUT secret/data/<p>` with `{"data": {...}, "options": {"cas": N}}`.
async fn write(vault: &Vault, config: &KvConfig, path: &str, body: &Value) -> Result<Response, ApiError> {
    let Some(data) = body.get("data").and_then(Value::as_object) else {
        return Err(ApiError::invalid("no data provided"));
    };
    let cas = cas(body)?;
    let settings = settings_in_force(vault, config, path).await?;
    if settings.cas_required && cas.is_none() {
        return Err(ApiError::invalid("check-and-set parameter required for this call"));
    }
    let bytes = super::kvdata::encode(data).map_err(ApiError::invalid)?;
    let version = match cas {
        Some(cas) => vault.set_cas_newest(path, &bytes, cas).await?,
        None => vault.set(path, &bytes).await?,
    };
    prune(vault, path, version, &settings).await;
    Ok(written(vault, path, version, &settings))
}

/// Vault's `max_versions`: once a secret has more versions than it keeps, the oldest are
/// destroyed — their values taken out of the store, not only hidden (until review they were
/// only hidden: a client lowering `max_versions` to drop an old leaked password kept it). As in
/// Vault, it happens at a data write (which needs `create` or `update` on the data): a settings
/// write alone destroys nothing, and each write destroys every version past the newest
/// `max_versions` that is not destroyed yet. The write has landed whatever happens here: a
/// failure is logged, and the next write takes it again.
async fn prune(vault: &Vault, path: &str, version: u64, settings: &Settings) {
    let max = settings.max_versions;
    if max == 0 || version <= max {
        return;
    }
    let pruned = async {
        let history = vault.history(path).await?;
        let newest = history.last().map_or(version, |h| h.version.max(version));
        let out: Vec<u64> = history
            .iter()
            .filter(|h| !h.destroyed && h.version.saturating_add(max) <= newest)
            .map(|h| h.version)
            .collect();
        if out.is_empty() { Ok(()) } else { destroy(vault, path, &out).await }
    };
    if let Err(e) = pruned.await {
        let e: ApiError = e;
        tracing::warn!(
            "versions of a secret past its max_versions were not destroyed yet: {}",
            e.messages.join("; ")
        );
    }
}

/// What a write or a patch answers: the new version's metadata, with the time its commit
/// recorded (what a read of it shows later).
fn written(vault: &Vault, path: &str, version: u64, settings: &Settings) -> Response {
    let now = vault.created_ms(path, version).unwrap_or_else(super::tokens::now_ms);
    let entry =
        HistoryEntry { version, size: 0, created_ms: now, deleted_ms: None, destroyed: false, current: true };
    reply::ok(
        json!({
            "version": version,
            "created_time": time(Some(now)),
            "deletion_time": time(deletion_ms(&entry, settings)),
            "destroyed": false,
            "custom_metadata": custom(settings),
        }),
        "kv",
    )
}

/// The custom metadata to show (`null` when there is none, as Vault shows it).
fn custom(settings: &Settings) -> Value {
    if settings.custom_metadata.is_empty() { Value::Null } else { json!(settings.custom_metadata) }
}

/// `PATCH secret/data/<p>` with `{"data": {...}, "options": {"cas": N}}`: a JSON merge patch
/// (RFC 7386: `null` removes a key, objects merge) of the newest version, written as the next
/// version only if no one wrote in between (what `vault kv patch` sends).
async fn patch(vault: &Vault, config: &KvConfig, path: &str, body: &Value) -> Result<Response, ApiError> {
    let Some(changes) = body.get("data").filter(|d| d.is_object()) else {
        return Err(ApiError::invalid("no data provided"));
    };
    let history = vault.history(path).await?;
    let Some(current) = history.last().filter(|h| h.deleted_ms.is_none()) else {
        return Err(ApiError::not_found());
    };
    let cas = cas(body)?;
    // As a write: a secret (or mount) that requires check-and-set requires it of a patch too.
    if cas.is_none() && settings_in_force(vault, config, path).await?.cas_required {
        return Err(ApiError::invalid("check-and-set parameter required for this call"));
    }
    if let Some(cas) = cas
        && cas != current.version
    {
        return Err(ApiError::invalid("check-and-set parameter did not match the current version"));
    }
    let mut data = super::kvdata::decode(vault.get(path, Some(current.version)).await?.as_slice());
    merge(&mut data, changes);
    let bytes = match &data {
        Value::Object(map) => super::kvdata::encode(map).map_err(ApiError::invalid)?,
        other => {
            zeroize::Zeroizing::new(serde_json::to_vec(other).map_err(|e| ApiError::internal(e.to_string()))?)
        }
    };
    let version = vault.set_cas(path, &bytes, current.version).await?;
    let settings = settings_in_force(vault, config, path).await?;
    prune(vault, path, version, &settings).await;
    Ok(written(vault, path, version, &settings))
}

/// RFC 7386 JSON merge patch of `target` by `patch`.
fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(changes) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(map) = target {
        for (key, value) in changes {
            if value.is_null() {
                map.remove(key);
            } else {
                merge(map.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// `LIST secret/metadata/<p>`: the names right under `p` (folders end in `/`); none is a 404.
async fn list(vault: &Vault, mount: &str, path: &str) -> Result<Response, ApiError> {
    let prefix = if path.is_empty() { format!("{mount}/") } else { format!("{mount}/{path}/") };
    // Every secret with metadata, as Vault lists: a soft-deleted one too (how one finds what to
    // undelete; found by review).
    let mut entries = vault.list(&prefix).await?;
    entries.extend(vault.list_deleted(&prefix).await?);
    let keys: BTreeSet<String> = entries
        .into_iter()
        .filter_map(|e| {
            let rest = e.path.strip_prefix(&prefix)?;
            Some(match rest.split_once('/') {
                Some((folder, _)) => format!("{folder}/"),
                None => rest.to_string(),
            })
        })
        .collect();
    if keys.is_empty() {
        return Err(ApiError::not_found());
    }
    Ok(reply::ok(json!({ "keys": keys }), "kv"))
}

/// `GET secret/metadata/<p>`: every version's times.
async fn metadata(vault: &Vault, config: &KvConfig, path: &str) -> Result<Response, ApiError> {
    let (own, settings_version) = settings(vault, path).await?;
    // Versions and deletion times as they are in force; the settings shown are the secret's own.
    let settings = within(own.clone(), config);
    let full = match vault.history(path).await {
        Ok(h) => h,
        Err(tresor::Error::NotFound { .. }) if settings_version > 0 => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let history = visible(&full, &settings);
    let versions: Map<String, Value> = history
        .iter()
        .map(|h| {
            let mut m = version_metadata(h, &settings);
            if let Some(o) = m.as_object_mut() {
                o.remove("version");
                o.remove("custom_metadata");
            }
            (h.version.to_string(), m)
        })
        .collect();
    let (first, last) = (history.first(), history.last());
    if !full.is_empty() && full.iter().all(|h| h.destroyed) {
        // Every version destroyed (its metadata deleted, or each destroyed): nothing left to
        // show; Vault shows what `destroy` alone left, tresor treats both alike.
        return Err(ApiError::not_found());
    }
    let delete_after = super::auth::go_duration(own.delete_version_after);
    Ok(reply::ok(
        json!({
            "cas_required": own.cas_required,
            "created_time": time(full.first().map(|h| h.created_ms)),
            "current_version": last.map_or(0, |h| h.version),
            "custom_metadata": custom(&settings),
            "delete_version_after": delete_after,
            "max_versions": own.max_versions,
            "oldest_version": first.map_or(0, |h| h.version),
            "updated_time": time(last.map(|h| h.created_ms)),
            "versions": versions,
        }),
        "kv",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A secret's settings within its mount's config: either may require cas, the secret's own
    /// max_versions holds when set, and the narrower delete_version_after wins.
    #[test]
    fn a_secrets_settings_apply_within_its_mounts() {
        let own = Settings { max_versions: 5, delete_version_after: 60, ..Settings::default() };
        let none = within(own.clone(), &KvConfig::default());
        assert_eq!((none.max_versions, none.cas_required, none.delete_after_for(0)), (5, false, 60));
        let mount = KvConfig {
            cas_required: true,
            max_versions: 3,
            delete_version_after: 600,
            delete_version_after_since_ms: 1_000,
        };
        // The secret's own max_versions holds when set (Vault's documented rule).
        let both = within(own, &mount);
        assert_eq!((both.max_versions, both.cas_required, both.delete_after_for(2_000)), (5, true, 60));
        let only_mount = within(Settings::default(), &mount);
        assert_eq!((only_mount.max_versions, only_mount.delete_after_for(2_000)), (3, 600));
        // The mount's delete_version_after binds the versions written since it was set only.
        assert_eq!(only_mount.delete_after_for(999), 0);
    }

    /// Subkeys as Vault shows them: every value null, objects followed `depth` levels (0: all).
    #[test]
    fn subkeys_hide_every_value_to_the_depth_asked() {
        let data = json!({ "foo": "abc", "bar": { "baz": "def", "deep": { "x": 1 } }, "list": [1, 2] });
        assert_eq!(
            keys_of(data.clone(), 0),
            json!({ "foo": null, "bar": { "baz": null, "deep": { "x": null } }, "list": null })
        );
        assert_eq!(keys_of(data.clone(), 1), json!({ "foo": null, "bar": null, "list": null }));
        assert_eq!(
            keys_of(data, 2),
            json!({ "foo": null, "bar": { "baz": null, "deep": null }, "list": null })
        );
        assert_eq!(keys_of(json!("a lone value"), 0), Value::Null);
    }

    /// Each version gets the `delete_version_after` in force when it was written; settings from
    /// before the changes were kept apply theirs to every older version; the list stays bounded.
    #[test]
    fn delete_version_after_applies_from_when_it_was_set() {
        let mut s = Settings { delete_version_after: 60, ..Settings::default() };
        assert_eq!((s.delete_after_for(5), s.delete_after_for(5_000)), (60, 60));
        s.set_delete_after(0, 1_000);
        assert_eq!((s.delete_after_for(999), s.delete_after_for(1_000)), (60, 0));
        s.set_delete_after(30, 2_000);
        assert_eq!((s.delete_after_for(1_500), s.delete_after_for(2_500)), (0, 30));
        let mut fresh = Settings::default();
        fresh.set_delete_after(10, 1_000);
        assert_eq!((fresh.delete_after_for(999), fresh.delete_after_for(1_000)), (0, 10));
        for n in 0..100 {
            fresh.set_delete_after(n, 2_000 + n);
        }
        assert_eq!(fresh.delete_after_since.len(), DELETE_AFTER_CHANGES);
        assert_eq!(fresh.delete_after_since[0].0, 0, "the oldest kept reaches back to the start");
        assert_eq!(fresh.delete_after_for(2_099), 99);
    }

    /// Regression (review): settings stored before durations were checked could hold text that
    /// is no duration; reading them failed, and with them every request on the secret.
    #[test]
    fn regression_old_settings_with_a_bad_duration_still_read() {
        let s: Settings =
            serde_json::from_str(r#"{"delete_version_after":"1.5h","max_versions":3}"#).unwrap();
        assert_eq!((s.delete_version_after, s.max_versions), (0, 3));
        let s: Settings = serde_json::from_str(r#"{"delete_version_after":"2h"}"#).unwrap();
        assert_eq!(s.delete_version_after, 7200);
        let s: Settings = serde_json::from_str(r#"{"delete_version_after":90}"#).unwrap();
        assert_eq!(s.delete_version_after, 90);
    }

    #[test]
    fn merge_patch_follows_rfc_7386() {
        // The examples of RFC 7386 §3.
        let mut doc = json!({"title": "Goodbye!", "author": {"givenName": "John", "familyName": "Doe"},
                             "tags": ["example", "sample"], "content": "This will be unchanged"});
        merge(
            &mut doc,
            &json!({"title": "Hello!", "phoneNumber": "+01-123-456-7890",
                                "author": {"familyName": null}, "tags": ["example"]}),
        );
        assert_eq!(
            doc,
            json!({"title": "Hello!", "author": {"givenName": "John"}, "tags": ["example"],
                               "content": "This will be unchanged", "phoneNumber": "+01-123-456-7890"})
        );
        for (original, patch, result) in [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "b"}), json!({"b": "c"}), json!({"a": "b", "b": "c"})),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (json!({"a": [{"b": "c"}]}), json!({"a": [1]}), json!({"a": [1]})),
            (json!({"e": null}), json!({"a": 1}), json!({"e": null, "a": 1})),
            (json!({}), json!({"a": {"bb": {"ccc": null}}}), json!({"a": {"bb": {}}})),
        ] {
            let mut doc = original.clone();
            merge(&mut doc, &patch);
            assert_eq!(doc, result, "{original} + {patch}");
        }
    }
}
