//! S3 settings taken the way the AWS tools take them: environment variables first, then the
//! profile in the shared `config` and `credentials` files.
//!
//! `object_store` reads `AWS_*` variables but no profile files, so this module resolves the
//! settings that matter (credentials, region, endpoint) itself and hands the result to an
//! [`AmazonS3Builder`]. Each setting is taken from the first source that has it:
//!
//! - **Credentials**, as one unit (a key id is never paired with a secret from elsewhere):
//!   `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`); then web identity
//!   (`AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`, done by `object_store`); then the profile's
//!   `aws_access_key_id` + `aws_secret_access_key` (+ `aws_session_token`); then whatever
//!   `object_store` finds by itself (container credentials, instance metadata).
//! - **Region**: `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's `region`; else `us-east-1`.
//! - **Endpoint**: `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL` (or `object_store`'s older name
//!   `AWS_ENDPOINT`), `endpoint_url` under `s3` in the profile's `services` section, `endpoint_url`
//!   under `s3` in the profile itself, the profile's `endpoint_url`; else AWS. All of them are
//!   ignored when `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS` (or the profile's
//!   `ignore_configured_endpoint_urls`) is `true`.
//!
//! The profile is `AWS_PROFILE`, else `default`; a profile named by `AWS_PROFILE` must exist. The
//! files are `AWS_CONFIG_FILE` (default `~/.aws/config`, sections `[default]`,
//! `[profile NAME]`, `[services NAME]`) and `AWS_SHARED_CREDENTIALS_FILE` (default
//! `~/.aws/credentials`, sections `[NAME]`); a profile found in both is merged, the credentials file
//! winning. Missing files are fine. Credential sources tresor cannot use (`role_arn`,
//! `source_profile`, `credential_source`, `web_identity_token_file`, `credential_process`,
//! `sso_*`) are refused with an error naming the setting, rather than silently skipped.
//!
//! Plain HTTP is used only when asked: an `http://` endpoint is refused unless `AWS_ALLOW_HTTP` is
//! `true`. Every other `AWS_*` variable `object_store` knows (`AWS_ALLOW_HTTP`,
//! `AWS_VIRTUAL_HOSTED_STYLE_REQUEST`, `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`, ...) is passed to
//! it unchanged.
//!
//! Error messages name variables, settings and files, never a value read from a credentials
//! source.

use crate::error::{Error, Result};
use crate::store::redact;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// The profile used when `AWS_PROFILE` is not set.
pub const DEFAULT_PROFILE: &str = "default";

/// Profile settings naming credential sources that tresor does not implement.
const UNSUPPORTED: &[&str] =
    &["role_arn", "source_profile", "credential_source", "web_identity_token_file", "credential_process"];

/// A snapshot of environment variables: the process environment ([`Environment::from_process`]),
/// or any set of variables (tests, or a caller that wants to control what is read).
///
/// An empty value counts as unset, as in the AWS tools. `Debug` shows the names only.
#[derive(Clone, Default)]
pub struct Environment {
    vars: BTreeMap<String, String>,
}

impl Environment {
    /// The current process environment (variables whose name and value are valid UTF-8).
    pub fn from_process() -> Environment {
        std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect()
    }

    /// The value of `name`, if set and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// The first of `names` that is set, with its value.
    fn first<'a>(&'a self, names: &[&'static str]) -> Option<(&'static str, &'a str)> {
        names.iter().find_map(|&n| self.get(n).map(|v| (n, v)))
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Environment {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Environment { vars: iter.into_iter().map(|(k, v)| (k.into(), v.into())).collect() }
    }
}

impl fmt::Debug for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.vars.keys()).finish()
    }
}

/// Where a setting came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// An environment variable.
    Env(&'static str),
    /// A profile setting.
    Profile {
        /// The profile's name.
        profile: String,
        /// The setting, as written (`region`, or `s3.endpoint_url` for a nested one).
        setting: String,
        /// The file it was read from.
        file: PathBuf,
    },
    /// A setting of a `[services NAME]` section of the config file, named by the profile.
    Services {
        /// The section's name.
        section: String,
        /// The setting (`s3.endpoint_url`).
        setting: String,
        /// The config file.
        file: PathBuf,
    },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Env(name) => write!(f, "{name}"),
            Source::Profile { profile, setting, file } => {
                write!(f, "`{setting}` of profile `{profile}` in {}", file.display())
            }
            Source::Services { section, setting, file } => {
                write!(f, "`{setting}` of `[services {section}]` in {}", file.display())
            }
        }
    }
}

/// A resolved setting that is not secret, and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    /// The value.
    pub value: String,
    /// Its source.
    pub source: Source,
}

/// Static credentials. `Debug` shows the access key id and the source, never the secret key or
/// the session token.
#[derive(Clone)]
pub struct Credentials {
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: Zeroizing<String>,
    /// The session token of temporary credentials.
    pub session_token: Option<Zeroizing<String>>,
    /// Where the access key id came from (the other parts come from the same place).
    pub source: Source,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("session_token", &self.session_token.as_ref().map(|_| "<redacted>"))
            .field("source", &self.source)
            .finish()
    }
}

/// The S3 settings resolved from the environment and the profile files.
#[derive(Clone, Debug)]
pub struct S3Settings {
    /// The profile consulted (`AWS_PROFILE`, or `default`).
    pub profile: String,
    /// Static credentials; `None` leaves the choice to `object_store` (web identity, container
    /// credentials, instance metadata).
    pub credentials: Option<Credentials>,
    /// The region; `None` means `object_store`'s default, `us-east-1`.
    pub region: Option<Setting>,
    /// A custom endpoint (another provider, or a local server); `None` means AWS.
    pub endpoint: Option<Setting>,
    /// `AWS_ALLOW_HTTP`: whether an `http://` endpoint is allowed.
    pub allow_http: bool,
}

/// An [`AmazonS3Builder`] for `bucket`, configured from `env` and the profile files it points to
/// (see the module documentation). Call `build()` on it to connect.
pub fn s3_builder(bucket: &str, env: &Environment) -> Result<AmazonS3Builder> {
    let settings = resolve(env)?;
    let mut builder = AmazonS3Builder::new();
    // Everything else object_store reads from the environment, as `AmazonS3Builder::from_env`
    // would; the settings resolved above are set explicitly below instead.
    for (name, value) in &env.vars {
        if !name.starts_with("AWS_") || value.is_empty() {
            continue;
        }
        let Ok(key) = name.to_ascii_lowercase().parse::<AmazonS3ConfigKey>() else { continue };
        let resolved_here = matches!(
            key,
            AmazonS3ConfigKey::AccessKeyId
                | AmazonS3ConfigKey::SecretAccessKey
                | AmazonS3ConfigKey::Token
                | AmazonS3ConfigKey::Region
                | AmazonS3ConfigKey::DefaultRegion
                | AmazonS3ConfigKey::Endpoint
                | AmazonS3ConfigKey::S3Endpoint
                | AmazonS3ConfigKey::Bucket
        );
        if !resolved_here {
            builder = builder.with_config(key, value.as_str());
        }
    }
    builder = builder.with_bucket_name(bucket);
    if let Some(region) = settings.region {
        builder = builder.with_region(region.value);
    }
    if let Some(endpoint) = settings.endpoint {
        builder = builder.with_endpoint(endpoint.value);
    }
    if let Some(c) = settings.credentials {
        builder =
            builder.with_access_key_id(c.access_key_id).with_secret_access_key(c.secret_access_key.as_str());
        if let Some(token) = &c.session_token {
            builder = builder.with_token(token.as_str());
        }
    }
    Ok(builder)
}

/// Resolves credentials, region and endpoint from `env` and the profile files (see the module
/// documentation), and checks the endpoint: a URL with a scheme, plain HTTP only with
/// `AWS_ALLOW_HTTP=true`.
pub fn resolve(env: &Environment) -> Result<S3Settings> {
    let home = home_dir(env);
    let (profile_name, explicit) = match env.get("AWS_PROFILE") {
        Some(p) => (p.to_string(), true),
        None => (DEFAULT_PROFILE.to_string(), false),
    };
    let config_path = file_path(env, "AWS_CONFIG_FILE", "config", home.as_deref());
    let credentials_path = file_path(env, "AWS_SHARED_CREDENTIALS_FILE", "credentials", home.as_deref());
    let config = match &config_path {
        Some(p) => load(p, FileKind::Config)?,
        None => None,
    };
    let credentials_file = match &credentials_path {
        Some(p) => load(p, FileKind::Credentials)?,
        None => None,
    };
    let profile = Profile::merge(&profile_name, config.as_ref(), credentials_file.as_ref());
    if explicit && !profile.found {
        return Err(Error::Invalid(format!(
            "AWS_PROFILE names the profile `{profile_name}`, which is in neither {} nor {}",
            describe(config_path.as_deref(), config.is_some()),
            describe(credentials_path.as_deref(), credentials_file.is_some()),
        )));
    }

    let credentials = resolve_credentials(env, &profile)?;
    let region = match env.first(&["AWS_REGION", "AWS_DEFAULT_REGION"]) {
        Some((name, value)) => Some(Setting { value: value.to_string(), source: Source::Env(name) }),
        None => profile.setting("region"),
    };
    let endpoint = resolve_endpoint(env, &profile, config.as_ref())?;
    let allow_http = match env.get("AWS_ALLOW_HTTP") {
        Some(v) => parse_bool(v)
            .ok_or_else(|| Error::Invalid("AWS_ALLOW_HTTP must be `true` or `false`".to_string()))?,
        None => false,
    };
    if let Some(endpoint) = &endpoint {
        check_endpoint(endpoint, allow_http)?;
    }
    Ok(S3Settings { profile: profile_name, credentials, region, endpoint, allow_http })
}

fn resolve_credentials(env: &Environment, profile: &Profile) -> Result<Option<Credentials>> {
    match (env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")) {
        (Some(id), Some(secret)) => {
            let session_token = env
                .first(&["AWS_SESSION_TOKEN", "AWS_TOKEN"])
                .map(|(_, token)| Zeroizing::new(token.to_string()));
            return Ok(Some(Credentials {
                access_key_id: id.to_string(),
                secret_access_key: Zeroizing::new(secret.to_string()),
                session_token,
                source: Source::Env("AWS_ACCESS_KEY_ID"),
            }));
        }
        (Some(_), None) => {
            return Err(Error::Invalid(
                "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not: set both, or neither to \
                 use a profile"
                    .to_string(),
            ));
        }
        (None, Some(_)) => {
            return Err(Error::Invalid(
                "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not: set both, or neither to \
                 use a profile"
                    .to_string(),
            ));
        }
        (None, None) => {}
    }
    profile.check_supported()?;
    // Web identity from the environment comes before the profile's keys, as in the AWS CLI.
    if env.get("AWS_WEB_IDENTITY_TOKEN_FILE").is_some() && env.get("AWS_ROLE_ARN").is_some() {
        return Ok(None);
    }
    let id = profile.props.get("aws_access_key_id");
    let secret = profile.props.get("aws_secret_access_key");
    let token = profile.props.get("aws_session_token");
    match (id, secret) {
        (Some(id), Some(secret)) => Ok(Some(Credentials {
            access_key_id: id.value.to_string(),
            secret_access_key: secret.value.clone(),
            session_token: token.map(|t| t.value.clone()),
            source: profile.source("aws_access_key_id", &id.file),
        })),
        (None, None) if token.is_none() => Ok(None),
        (id, _) => {
            let missing = if id.is_none() { "aws_access_key_id" } else { "aws_secret_access_key" };
            Err(Error::Invalid(format!(
                "profile `{}` has incomplete credentials: `{missing}` is missing (a profile needs both \
                 aws_access_key_id and aws_secret_access_key, and may add aws_session_token)",
                profile.name
            )))
        }
    }
}

fn resolve_endpoint(
    env: &Environment,
    profile: &Profile,
    config: Option<&ParsedFile>,
) -> Result<Option<Setting>> {
    let ignore = match env.first(&["AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"]) {
        Some((name, v)) => {
            parse_bool(v).ok_or_else(|| Error::Invalid(format!("{name} must be `true` or `false`")))?
        }
        None => match profile.props.get("ignore_configured_endpoint_urls") {
            Some(p) => parse_bool(&p.value).ok_or_else(|| {
                Error::Invalid(format!(
                    "{} must be `true` or `false`",
                    profile.source("ignore_configured_endpoint_urls", &p.file)
                ))
            })?,
            None => false,
        },
    };
    if ignore {
        return Ok(None);
    }
    if let Some((name, value)) = env.first(&["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"]) {
        return Ok(Some(Setting { value: value.to_string(), source: Source::Env(name) }));
    }
    if let Some(section_name) = profile.props.get("services") {
        let section = config.and_then(|c| c.services.get(section_name.value.as_str()));
        let Some(section) = section else {
            return Err(Error::Invalid(format!(
                "{} names `[services {}]`, which is not in the config file",
                profile.source("services", &section_name.file),
                section_name.value.as_str()
            )));
        };
        if let Some(url) = section.get("s3").and_then(|s3| nested(s3, "endpoint_url")) {
            return Ok(Some(Setting {
                value: url,
                source: Source::Services {
                    section: section_name.value.to_string(),
                    setting: "s3.endpoint_url".to_string(),
                    file: section_name.file.clone(),
                },
            }));
        }
    }
    if let Some(s3) = profile.props.get("s3")
        && let Some(url) = nested(&s3.value, "endpoint_url")
    {
        return Ok(Some(Setting { value: url, source: profile.source("s3.endpoint_url", &s3.file) }));
    }
    Ok(profile.setting("endpoint_url"))
}

/// An endpoint must be `https://...`, or `http://...` when `AWS_ALLOW_HTTP` is true.
fn check_endpoint(endpoint: &Setting, allow_http: bool) -> Result<()> {
    let url = endpoint.value.as_str();
    if redact(url) != url {
        return Err(Error::Invalid(format!(
            "the S3 endpoint {} (from {}) carries user information (user:password@): credentials \
             belong in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or a profile, never in a URL",
            shown(url),
            endpoint.source
        )));
    }
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("https") => Ok(()),
        Some("http") if allow_http => {
            if !is_loopback(url) {
                tracing::warn!(
                    "the S3 endpoint {} is plain HTTP to another machine: requests, including a \
                     session token, cross the network unencrypted",
                    shown(url)
                );
            }
            Ok(())
        }
        Some("http") => Err(Error::Invalid(format!(
            "the S3 endpoint {} (from {}) is plain HTTP, which is refused unless AWS_ALLOW_HTTP=true \
             is set (for a local test server; anything else should use https://)",
            shown(url),
            endpoint.source
        ))),
        _ => Err(Error::Invalid(format!(
            "the S3 endpoint {} (from {}) is not a URL: it must start with https:// (or http:// with \
             AWS_ALLOW_HTTP=true)",
            shown(url),
            endpoint.source
        ))),
    }
}

/// The authority (`host[:port]`) of a URL, without user information.
fn host_port(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    authority.rsplit_once('@').map_or(authority, |(_, h)| h)
}

/// Whether a URL points at this machine.
fn is_loopback(url: &str) -> bool {
    let hp = host_port(url);
    let host = if let Some(v6) = hp.strip_prefix('[') {
        v6.split(']').next().unwrap_or(v6)
    } else {
        hp.rsplit_once(':').map_or(hp, |(h, _)| h)
    };
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn shown(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            let (authority, path) = rest.split_at(authority_end);
            match authority.rsplit_once('@') {
                Some((_, host)) => format!("{scheme}://…@{host}{path}"),
                None => url.to_string(),
            }
        }
        None if url.contains('@') => "(a value with user information)".to_string(),
        None => url.to_string(),
    }
}

/// Booleans as `object_store` reads them.
pub(crate) fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "on" | "yes" | "y" => Some(true),
        "0" | "false" | "off" | "no" | "n" => Some(false),
        _ => None,
    }
}

/// The home directory, from the environment: `HOME`, then (on Windows) `USERPROFILE` and
/// `HOMEDRIVE` + `HOMEPATH`.
fn home_dir(env: &Environment) -> Option<PathBuf> {
    if let Some(home) = env.get("HOME") {
        return Some(PathBuf::from(home));
    }
    if cfg!(windows) {
        if let Some(profile) = env.get("USERPROFILE") {
            return Some(PathBuf::from(profile));
        }
        if let (Some(drive), Some(path)) = (env.get("HOMEDRIVE"), env.get("HOMEPATH")) {
            return Some(PathBuf::from(format!("{drive}{path}")));
        }
    }
    None
}

/// The file named by `var` (a leading `~` meaning the home directory), else `~/.aws/NAME`.
fn file_path(env: &Environment, var: &str, name: &str, home: Option<&Path>) -> Option<PathBuf> {
    match env.get(var) {
        Some(p) => {
            let rest = p.strip_prefix("~/").or_else(|| p.strip_prefix("~\\")).or((p == "~").then_some(""));
            match (rest, home) {
                (Some(rest), Some(home)) => Some(home.join(rest)),
                _ => Some(PathBuf::from(p)),
            }
        }
        None => home.map(|h| h.join(".aws").join(name)),
    }
}

fn describe(path: Option<&Path>, exists: bool) -> String {
    match (path, exists) {
        (Some(p), true) => p.display().to_string(),
        (Some(p), false) => format!("{} (missing)", p.display()),
        (None, _) => "the default files (no home directory: HOME is not set)".to_string(),
    }
}

/// The value of `key` among the nested settings of a property written as `s3 =` followed by
/// indented `key = value` lines.
fn nested(value: &str, key: &str) -> Option<String> {
    value.lines().filter_map(|l| l.split_once('=')).find_map(|(k, v)| {
        (k.trim().eq_ignore_ascii_case(key) && !v.trim().is_empty()).then(|| v.trim().to_string())
    })
}

/// The selected profile, merged from both files.
struct Profile {
    name: String,
    /// Settings (names lowercased) and the file each was read from.
    props: BTreeMap<String, Prop>,
    /// Whether either file has a section for this profile.
    found: bool,
}

/// A setting's value and its file.
#[derive(Clone)]
struct Prop {
    value: Zeroizing<String>,
    file: PathBuf,
}

impl Profile {
    fn merge(name: &str, config: Option<&ParsedFile>, credentials: Option<&ParsedFile>) -> Profile {
        let mut props = BTreeMap::new();
        let mut found = false;
        // Config first, then credentials: the credentials file wins, as in the AWS tools.
        for file in [config, credentials].into_iter().flatten() {
            if let Some(section) = file.profiles.get(name) {
                found = true;
                for (k, v) in section {
                    props.insert(k.clone(), Prop { value: v.clone(), file: file.path.clone() });
                }
            }
        }
        Profile { name: name.to_string(), props, found }
    }

    fn source(&self, setting: &str, file: &Path) -> Source {
        Source::Profile { profile: self.name.clone(), setting: setting.to_string(), file: file.to_path_buf() }
    }

    /// A non-secret setting with its source.
    fn setting(&self, key: &str) -> Option<Setting> {
        let p = self.props.get(key)?;
        Some(Setting { value: p.value.to_string(), source: self.source(key, &p.file) })
    }

    /// Refuses credential sources this module does not implement.
    fn check_supported(&self) -> Result<()> {
        let has_keys = self.props.contains_key("aws_access_key_id");
        let unsupported = self.props.iter().find(|(k, _)| {
            // The AWS CLI prefers a profile's static keys to its credential_process.
            (UNSUPPORTED.contains(&k.as_str()) && !(k.as_str() == "credential_process" && has_keys))
                || k.starts_with("sso_")
        });
        let Some((key, prop)) = unsupported else { return Ok(()) };
        Err(Error::Invalid(format!(
            "profile `{}` in {} sets `{key}`, which tresor does not support. From a profile, tresor \
             reads static credentials (aws_access_key_id, aws_secret_access_key, aws_session_token), \
             region, endpoint_url and services; it does not assume roles or run SSO or credential \
             processes. Use static keys, or put temporary ones in the environment, e.g. \
             eval \"$(aws configure export-credentials --profile {} --format env)\"",
            self.name,
            prop.file.display(),
            self.name
        )))
    }
}

/// Which of the two files is being parsed: they name profile sections differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FileKind {
    /// `config`: `[default]`, `[profile NAME]`, `[services NAME]`, `[sso-session NAME]`.
    Config,
    /// `credentials`: `[NAME]`.
    Credentials,
}

/// Settings of one section, names lowercased.
type Section = BTreeMap<String, Zeroizing<String>>;

/// The sections of one file that matter here.
#[derive(Default)]
struct ParsedFile {
    path: PathBuf,
    profiles: BTreeMap<String, Section>,
    services: BTreeMap<String, Section>,
}

/// Reads and parses a file; a missing file is `None`.
fn load(path: &Path, kind: FileKind) -> Result<Option<ParsedFile>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => Zeroizing::new(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::Invalid(format!("cannot read {}: {e}", path.display()))),
    };
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| Error::Invalid(format!("{} is not valid UTF-8", path.display())))?;
    let mut parsed = parse(text, kind)
        .map_err(|e| Error::Invalid(format!("{}, line {}: {}", path.display(), e.line, e.what)))?;
    parsed.path = path.to_path_buf();
    Ok(Some(parsed))
}

/// A syntax error: its line (from 1) and what was wrong. Never the line's text, which may hold a
/// secret.
#[derive(Debug, PartialEq, Eq)]
struct ParseError {
    line: usize,
    what: &'static str,
}

/// Where the settings of the current section go.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Target {
    Profile(String),
    /// `[default]` in the config file: used only if there is no `[profile default]`.
    BareDefault,
    Services(String),
    /// A section that is not read here (`[sso-session x]`, an invalid name, ...).
    Ignored,
}

/// Parses the INI dialect of the AWS shared files: `[section]` headers (a `#` or `;` comment may
/// follow), `name = value` settings (a comment may follow after whitespace), full-line `#` and `;`
/// comments, and indented continuation lines (after `name =` with no value, a block of nested
/// `name = value` settings). Sections of the same name merge; a later setting wins.
fn parse(text: &str, kind: FileKind) -> std::result::Result<ParsedFile, ParseError> {
    let mut parsed = ParsedFile::default();
    let mut bare_default: Option<Section> = None;
    let mut ignored = Section::new();
    let mut target: Option<Target> = None;
    // The setting continuation lines extend, and whether it holds nested settings.
    let mut last: Option<(String, bool)> = None;
    for (index, line) in text.lines().enumerate() {
        let fail = |what| Err(ParseError { line: index + 1, what });
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with(['#', ';']) {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            let Some(t) = &target else { return fail("an indented line before any section header") };
            let Some((key, nested_block)) = &last else {
                return fail("an indented line that does not continue a setting");
            };
            if *nested_block {
                match trimmed.split_once('=') {
                    None => return fail("expected `name = value` in a nested setting"),
                    Some((name, _)) if name.trim().is_empty() => {
                        return fail("a nested setting without a name");
                    }
                    Some(_) => {}
                }
            }
            let section = section_mut(&mut parsed, &mut bare_default, &mut ignored, t);
            if let Some(value) = section.get_mut(key) {
                value.push('\n');
                value.push_str(trimmed);
            }
            continue;
        }
        if let Some(header) = line.strip_prefix('[') {
            let Some((name, after)) = header.split_once(']') else {
                return fail("a section header without a closing `]`");
            };
            let after = after.trim_start();
            if !after.is_empty() && !after.starts_with(['#', ';']) {
                return fail("unexpected text after a section header");
            }
            let t = classify(name.trim(), kind);
            // Make the section exist even if it stays empty: an empty profile is still a profile.
            section_mut(&mut parsed, &mut bare_default, &mut ignored, &t);
            target = Some(t);
            last = None;
            continue;
        }
        let Some(t) = &target else { return fail("a setting before any section header") };
        let Some((name, value)) = line.split_once('=') else { return fail("expected `name = value`") };
        let name = name.trim().to_ascii_lowercase();
        if name.is_empty() {
            return fail("a setting without a name");
        }
        let value = strip_comment(value).trim();
        last = Some((name.clone(), value.is_empty()));
        section_mut(&mut parsed, &mut bare_default, &mut ignored, t)
            .insert(name, Zeroizing::new(value.to_string()));
    }
    if let Some(section) = bare_default {
        parsed.profiles.entry(DEFAULT_PROFILE.to_string()).or_insert(section);
    }
    Ok(parsed)
}

fn section_mut<'a>(
    parsed: &'a mut ParsedFile,
    bare_default: &'a mut Option<Section>,
    ignored: &'a mut Section,
    target: &Target,
) -> &'a mut Section {
    match target {
        Target::Profile(name) => parsed.profiles.entry(name.clone()).or_default(),
        Target::Services(name) => parsed.services.entry(name.clone()).or_default(),
        Target::BareDefault => bare_default.get_or_insert_with(Section::new),
        Target::Ignored => ignored,
    }
}

/// What a section header names, in a file of `kind`.
fn classify(name: &str, kind: FileKind) -> Target {
    let valid = |n: &str| !n.is_empty() && !n.contains(char::is_whitespace);
    match kind {
        FileKind::Credentials if valid(name) => Target::Profile(name.to_string()),
        FileKind::Credentials => Target::Ignored,
        FileKind::Config if name == DEFAULT_PROFILE => Target::BareDefault,
        FileKind::Config => {
            let prefixed = |prefix: &str| {
                let rest = name.strip_prefix(prefix)?;
                rest.starts_with([' ', '\t']).then(|| rest.trim()).filter(|n| valid(n))
            };
            if let Some(n) = prefixed("profile") {
                Target::Profile(n.to_string())
            } else if let Some(n) = prefixed("services") {
                Target::Services(n.to_string())
            } else {
                Target::Ignored
            }
        }
    }
}

/// A value without its trailing comment: `#` or `;` after whitespace starts one.
fn strip_comment(value: &str) -> &str {
    let mut previous_blank = false;
    for (i, c) in value.char_indices() {
        if previous_blank && (c == '#' || c == ';') {
            return &value[..i];
        }
        previous_blank = c == ' ' || c == '\t';
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_credentials_in_urls_never_reach_a_message() {
        assert_eq!(
            redact("error sending request for url (https://AKIA:s3cr3t@host:9000/b/k?x=1): refused"),
            "error sending request for url (https://…@host:9000/b/k?x=1): refused"
        );
        assert_eq!(redact("s3://bucket/p and http://u@h"), "s3://bucket/p and http://…@h");
        let setting = Setting {
            value: "https://user:s3cr3tpw@minio.example:9000".into(),
            source: Source::Env("AWS_ENDPOINT_URL"),
        };
        let e = check_endpoint(&setting, false).unwrap_err().to_string();
        assert!(e.contains("user information") && !e.contains("s3cr3tpw"), "{e}");
    }

    fn parse_ok(text: &str, kind: FileKind) -> ParsedFile {
        match parse(text, kind) {
            Ok(p) => p,
            Err(e) => panic!("parse failed: {e:?}"),
        }
    }

    fn section(p: &ParsedFile, profile: &str) -> BTreeMap<String, String> {
        p.profiles[profile].iter().map(|(k, v)| (k.clone(), v.to_string())).collect()
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn parses_sections_settings_and_comments() {
        let text = "# comment\n; another\n[default]\nregion = eu-west-1\n\n[profile dev] # trailing\n\
                    Region=us-east-2\nendpoint_url = http://localhost:9000 ; comment\n\
                    name = val=ue\nhash = a#b\nempty =\n[profile\tspaced  ]\nx = 1\r\n[sso-session s]\n\
                    sso_region = x\n[profilefoo]\ny = 2\n[services local]\ns3 =\n  endpoint_url = http://x\n";
        let p = parse_ok(text, FileKind::Config);
        assert_eq!(section(&p, "default"), map(&[("region", "eu-west-1")]));
        assert_eq!(
            section(&p, "dev"),
            map(&[
                ("region", "us-east-2"),
                ("endpoint_url", "http://localhost:9000"),
                ("name", "val=ue"),
                ("hash", "a#b"),
                ("empty", ""),
            ])
        );
        assert_eq!(section(&p, "spaced"), map(&[("x", "1")]));
        assert_eq!(p.profiles.len(), 3, "sso-session and [profilefoo] are not profiles");
        assert_eq!(p.services["local"]["s3"].as_str(), "\nendpoint_url = http://x");
        assert_eq!(nested(&p.services["local"]["s3"], "endpoint_url").as_deref(), Some("http://x"));
    }

    #[test]
    fn config_and_credentials_name_profiles_differently() {
        let config = parse_ok("[foo]\na = 1\n[profile bar]\nb = 2\n", FileKind::Config);
        assert_eq!(config.profiles.keys().collect::<Vec<_>>(), ["bar"]);
        let creds =
            parse_ok("[foo]\na = 1\n[profile bar]\nb = 2\n[ default ]\nc = 3\n", FileKind::Credentials);
        assert_eq!(creds.profiles.keys().collect::<Vec<_>>(), ["default", "foo"]);
    }

    #[test]
    fn profile_default_beats_bare_default_and_duplicates_merge() {
        let p = parse_ok("[default]\na = 1\n[profile default]\nb = 2\n", FileKind::Config);
        assert_eq!(section(&p, "default"), map(&[("b", "2")]));
        let p = parse_ok("[profile default]\nb = 2\n[default]\na = 1\n", FileKind::Config);
        assert_eq!(section(&p, "default"), map(&[("b", "2")]));
        let p = parse_ok("[profile x]\na = 1\nb = 1\n[profile y]\n[profile x]\nb = 2\n", FileKind::Config);
        assert_eq!(section(&p, "x"), map(&[("a", "1"), ("b", "2")]));
        assert!(p.profiles["y"].is_empty(), "an empty profile exists");
    }

    #[test]
    fn continuation_lines() {
        let p = parse_ok("[profile x]\na = one\n  two # kept\n\n\tthree\n", FileKind::Config);
        assert_eq!(p.profiles["x"]["a"].as_str(), "one\ntwo # kept\nthree");
    }

    #[test]
    fn syntax_errors_name_the_line_and_never_its_text() {
        let cases = [
            ("a = 1\n", 1, "a setting before any section header"),
            ("[default\n", 1, "a section header without a closing `]`"),
            ("[default] x\n", 1, "unexpected text after a section header"),
            ("[default]\nsecretvalue\n", 2, "expected `name = value`"),
            ("[default]\n= v\n", 2, "a setting without a name"),
            ("[default]\n  cont\n", 2, "an indented line that does not continue a setting"),
            ("  cont\n", 1, "an indented line before any section header"),
            ("[default]\ns3 =\n  secretvalue\n", 3, "expected `name = value` in a nested setting"),
            ("[default]\ns3 =\n  = v\n", 3, "a nested setting without a name"),
            ("[default]\na = 1\n[default]\n  cont\n", 4, "an indented line that does not continue a setting"),
        ];
        for (text, line, what) in cases {
            assert_eq!(parse(text, FileKind::Config).err(), Some(ParseError { line, what }), "{text:?}");
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials");
        std::fs::write(&path, "[default]\naws_access_key_id = AKIA\nwJalrXUtnFEMIK7MDENG\n").unwrap();
        let e = load(&path, FileKind::Credentials).err().unwrap().to_string();
        assert!(e.contains("line 3") && e.contains("credentials"), "{e}");
        assert!(!e.contains("wJalr") && !e.contains("AKIA"), "{e}");
    }

    #[test]
    fn comments_need_whitespace_before_them() {
        assert_eq!(strip_comment(" value # c"), " value ");
        assert_eq!(strip_comment(" value;c"), " value;c");
        assert_eq!(strip_comment(" a#b ;c"), " a#b ");
        assert_eq!(strip_comment(" # only"), " ");
    }

    /// A temporary home with `.aws/config` and `.aws/credentials`, and an environment pointing at it.
    struct Home {
        dir: tempfile::TempDir,
    }

    impl Home {
        fn new(config: &str, credentials: &str) -> Home {
            let dir = tempfile::tempdir().unwrap();
            std::fs::create_dir(dir.path().join(".aws")).unwrap();
            if !config.is_empty() {
                std::fs::write(dir.path().join(".aws/config"), config).unwrap();
            }
            if !credentials.is_empty() {
                std::fs::write(dir.path().join(".aws/credentials"), credentials).unwrap();
            }
            Home { dir }
        }

        fn env(&self, vars: &[(&str, &str)]) -> Environment {
            let home = self.dir.path().to_str().unwrap().to_string();
            std::iter::once(("HOME".to_string(), home))
                .chain(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
                .collect()
        }

        fn path(&self, name: &str) -> PathBuf {
            self.dir.path().join(".aws").join(name)
        }
    }

    const CONFIG: &str = "[default]\nregion = eu-west-1\n\n[profile dev]\nregion = eu-central-1\n\
                          endpoint_url = https://dev.example\n";
    const CREDENTIALS: &str = "[default]\naws_access_key_id = DEFAULTID\naws_secret_access_key = DEFAULTSECRET\n\n\
                               [dev]\naws_access_key_id = DEVID\naws_secret_access_key = DEVSECRET\n\
                               aws_session_token = DEVTOKEN\n";

    fn resolve_ok(env: &Environment) -> S3Settings {
        match resolve(env) {
            Ok(s) => s,
            Err(e) => panic!("resolve failed: {e}"),
        }
    }

    fn resolve_err(env: &Environment) -> String {
        match resolve(env) {
            Ok(s) => panic!("expected an error, got {s:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn default_profile_from_home() {
        let home = Home::new(CONFIG, CREDENTIALS);
        let s = resolve_ok(&home.env(&[]));
        assert_eq!(s.profile, "default");
        let c = s.credentials.unwrap();
        assert_eq!((c.access_key_id.as_str(), c.secret_access_key.as_str()), ("DEFAULTID", "DEFAULTSECRET"));
        assert!(c.session_token.is_none());
        assert_eq!(
            c.source,
            Source::Profile {
                profile: "default".into(),
                setting: "aws_access_key_id".into(),
                file: home.path("credentials")
            }
        );
        let region = s.region.unwrap();
        assert_eq!(region.value, "eu-west-1");
        assert_eq!(
            region.source.to_string(),
            format!("`region` of profile `default` in {}", home.path("config").display())
        );
        assert!(s.endpoint.is_none());
        assert!(!s.allow_http);
    }

    #[test]
    fn aws_profile_selects_the_profile() {
        let home = Home::new(CONFIG, CREDENTIALS);
        let s = resolve_ok(&home.env(&[("AWS_PROFILE", "dev")]));
        assert_eq!(s.profile, "dev");
        let c = s.credentials.unwrap();
        assert_eq!(c.access_key_id, "DEVID");
        assert_eq!(c.session_token.as_deref().map(String::as_str), Some("DEVTOKEN"));
        assert_eq!(s.region.unwrap().value, "eu-central-1");
        assert_eq!(s.endpoint.unwrap().value, "https://dev.example");
    }

    #[test]
    fn environment_variables_beat_the_profile() {
        let home = Home::new(CONFIG, CREDENTIALS);
        let s = resolve_ok(&home.env(&[
            ("AWS_PROFILE", "dev"),
            ("AWS_ACCESS_KEY_ID", "ENVID"),
            ("AWS_SECRET_ACCESS_KEY", "ENVSECRET"),
            ("AWS_DEFAULT_REGION", "ap-south-1"),
            ("AWS_ENDPOINT_URL", "https://env.example"),
        ]));
        let c = s.credentials.unwrap();
        assert_eq!((c.access_key_id.as_str(), c.secret_access_key.as_str()), ("ENVID", "ENVSECRET"));
        assert!(c.session_token.is_none(), "the profile's token never joins environment keys");
        assert_eq!(c.source, Source::Env("AWS_ACCESS_KEY_ID"));
        assert_eq!(
            s.region.unwrap(),
            Setting { value: "ap-south-1".into(), source: Source::Env("AWS_DEFAULT_REGION") }
        );
        assert_eq!(s.endpoint.unwrap().source, Source::Env("AWS_ENDPOINT_URL"));
        // AWS_REGION beats AWS_DEFAULT_REGION; AWS_ENDPOINT_URL_S3 beats AWS_ENDPOINT_URL.
        let s = resolve_ok(&home.env(&[
            ("AWS_REGION", "us-west-2"),
            ("AWS_DEFAULT_REGION", "ap-south-1"),
            ("AWS_ENDPOINT_URL", "https://env.example"),
            ("AWS_ENDPOINT_URL_S3", "https://s3.env.example"),
            ("AWS_SESSION_TOKEN", "ENVTOKEN"),
        ]));
        assert_eq!(s.region.unwrap().value, "us-west-2");
        assert_eq!(s.endpoint.unwrap().value, "https://s3.env.example");
        assert_eq!(s.credentials.unwrap().access_key_id, "DEFAULTID", "a lone token is not credentials");
        // Empty variables count as unset.
        let s = resolve_ok(&home.env(&[("AWS_REGION", ""), ("AWS_ACCESS_KEY_ID", "")]));
        assert_eq!(s.region.unwrap().value, "eu-west-1");
        assert_eq!(s.credentials.unwrap().access_key_id, "DEFAULTID");
    }

    #[test]
    fn credentials_file_beats_config_file() {
        let home = Home::new(
            "[profile p]\nregion = from-config\naws_access_key_id = CONFIGID\naws_secret_access_key = CONFIGSECRET\n",
            "[p]\nregion = from-credentials\n",
        );
        let s = resolve_ok(&home.env(&[("AWS_PROFILE", "p")]));
        assert_eq!(s.region.unwrap().value, "from-credentials");
        let c = s.credentials.unwrap();
        assert_eq!(c.access_key_id, "CONFIGID", "keys in the config file are read too");
        assert_eq!(
            c.source,
            Source::Profile {
                profile: "p".into(),
                setting: "aws_access_key_id".into(),
                file: home.path("config")
            }
        );
    }

    #[test]
    fn file_locations_from_the_environment() {
        let home = Home::new("", "");
        let other = tempfile::tempdir().unwrap();
        std::fs::write(other.path().join("c"), "[profile x]\nregion = r1\n").unwrap();
        std::fs::write(other.path().join("k"), "[x]\naws_access_key_id = I\naws_secret_access_key = S\n")
            .unwrap();
        let env = home.env(&[
            ("AWS_PROFILE", "x"),
            ("AWS_CONFIG_FILE", other.path().join("c").to_str().unwrap()),
            ("AWS_SHARED_CREDENTIALS_FILE", other.path().join("k").to_str().unwrap()),
        ]);
        let s = resolve_ok(&env);
        assert_eq!(s.region.unwrap().value, "r1");
        assert_eq!(s.credentials.unwrap().access_key_id, "I");
        // `~/` means the home directory.
        std::fs::write(home.path("elsewhere"), "[profile y]\nregion = r2\n").unwrap();
        let s = resolve_ok(&home.env(&[("AWS_PROFILE", "y"), ("AWS_CONFIG_FILE", "~/.aws/elsewhere")]));
        assert_eq!(s.region.unwrap().value, "r2");
    }

    #[test]
    fn missing_files_are_fine_but_a_missing_named_profile_is_not() {
        let home = Home::new("", "");
        let s = resolve_ok(&home.env(&[]));
        assert!(s.credentials.is_none() && s.region.is_none() && s.endpoint.is_none());
        // No home directory at all: no files, no error.
        let s = resolve_ok(&Environment::from_iter([("AWS_REGION", "r")]));
        assert_eq!(s.region.unwrap().value, "r");

        let e = resolve_err(&home.env(&[("AWS_PROFILE", "prod")]));
        assert!(e.contains("AWS_PROFILE") && e.contains("`prod`") && e.contains("(missing)"), "{e}");
        let home = Home::new(CONFIG, CREDENTIALS);
        let e = resolve_err(&home.env(&[("AWS_PROFILE", "prod")]));
        assert!(e.contains("`prod`") && e.contains(home.path("config").to_str().unwrap()), "{e}");
        // A profile named explicitly must exist even if it is `default`, as in the AWS CLI.
        let e = resolve_err(&Home::new("", "").env(&[("AWS_PROFILE", "default")]));
        assert!(e.contains("`default`"), "{e}");
    }

    #[test]
    fn unsupported_credential_sources_are_refused_by_name() {
        let cases = [
            ("role_arn = arn:aws:iam::1:role/r\nsource_profile = default\n", "role_arn"),
            ("source_profile = default\n", "source_profile"),
            ("credential_process = /bin/creds --secret hunter2\n", "credential_process"),
            ("sso_session = corp\nsso_account_id = 1\n", "sso_account_id"),
            ("sso_start_url = https://x\n", "sso_start_url"),
            ("web_identity_token_file = /t\nrole_arn = a\n", "role_arn"),
        ];
        for (settings, named) in cases {
            let home = Home::new(&format!("[profile p]\nregion = r\n{settings}"), "");
            let e = resolve_err(&home.env(&[("AWS_PROFILE", "p")]));
            assert!(e.contains(&format!("`{named}`")) && e.contains("profile `p`"), "{e}");
            assert!(e.contains("aws_access_key_id") && e.contains("export-credentials"), "{e}");
            assert!(!e.contains("hunter2") && !e.contains("arn:aws"), "{e}");
            // Credentials from the environment: the profile's credential settings do not matter,
            // and its other settings still apply.
            let s = resolve_ok(&home.env(&[
                ("AWS_PROFILE", "p"),
                ("AWS_ACCESS_KEY_ID", "I"),
                ("AWS_SECRET_ACCESS_KEY", "S"),
            ]));
            assert_eq!(s.region.unwrap().value, "r");
        }
        // Static keys win over credential_process in the AWS CLI, so that combination is fine.
        let home = Home::new(
            "[profile p]\ncredential_process = x\naws_access_key_id = I\naws_secret_access_key = S\n",
            "",
        );
        assert_eq!(resolve_ok(&home.env(&[("AWS_PROFILE", "p")])).credentials.unwrap().access_key_id, "I");
    }

    #[test]
    fn incomplete_credentials_are_refused_without_their_values() {
        let home = Home::new("", "[default]\naws_access_key_id = SOMEID\n");
        let e = resolve_err(&home.env(&[]));
        assert!(e.contains("`aws_secret_access_key` is missing") && !e.contains("SOMEID"), "{e}");
        let home = Home::new("", "[default]\naws_secret_access_key = SOMESECRET\n");
        let e = resolve_err(&home.env(&[]));
        assert!(e.contains("`aws_access_key_id` is missing") && !e.contains("SOMESECRET"), "{e}");
        let home = Home::new("", "[default]\naws_session_token = SOMETOKEN\n");
        let e = resolve_err(&home.env(&[]));
        assert!(e.contains("is missing") && !e.contains("SOMETOKEN"), "{e}");
        let home = Home::new("", "");
        let e = resolve_err(&home.env(&[("AWS_ACCESS_KEY_ID", "SOMEID")]));
        assert!(
            e.contains("AWS_SECRET_ACCESS_KEY is set") || e.contains("AWS_SECRET_ACCESS_KEY is not"),
            "{e}"
        );
        assert!(!e.contains("SOMEID"), "{e}");
        let e = resolve_err(&home.env(&[("AWS_SECRET_ACCESS_KEY", "SOMESECRET")]));
        assert!(e.contains("AWS_ACCESS_KEY_ID is not") && !e.contains("SOMESECRET"), "{e}");
    }

    #[test]
    fn web_identity_in_the_environment_comes_before_profile_keys() {
        let home = Home::new(CONFIG, CREDENTIALS);
        let s = resolve_ok(&home.env(&[("AWS_WEB_IDENTITY_TOKEN_FILE", "/t"), ("AWS_ROLE_ARN", "arn")]));
        assert!(s.credentials.is_none());
        assert_eq!(s.region.unwrap().value, "eu-west-1");
    }

    #[test]
    fn endpoint_precedence() {
        let config = "[profile p]\nendpoint_url = https://global.example\nservices = svc\n\
                      s3 =\n  endpoint_url = https://nested.example\n\
                      [services svc]\nsts =\n  endpoint_url = https://sts.example\n\
                      s3 =\n  addressing_style = path\n  endpoint_url = https://services.example\n";
        let home = Home::new(config, "");
        let endpoint = |vars: &[(&str, &str)]| {
            let mut all = vec![("AWS_PROFILE", "p")];
            all.extend_from_slice(vars);
            resolve_ok(&home.env(&all)).endpoint.map(|e| (e.value, e.source.to_string()))
        };
        let config_path = home.path("config").display().to_string();
        assert_eq!(
            endpoint(&[]),
            Some((
                "https://services.example".into(),
                format!("`s3.endpoint_url` of `[services svc]` in {config_path}")
            ))
        );
        assert_eq!(endpoint(&[("AWS_ENDPOINT", "https://old.example")]).unwrap().0, "https://old.example");
        assert_eq!(
            endpoint(&[("AWS_ENDPOINT_URL", "https://env.example")]).unwrap().0,
            "https://env.example"
        );
        assert_eq!(
            endpoint(&[
                ("AWS_ENDPOINT_URL", "https://env.example"),
                ("AWS_ENDPOINT_URL_S3", "https://s3.example")
            ])
            .unwrap()
            .0,
            "https://s3.example"
        );
        assert_eq!(endpoint(&[("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true")]), None);
        assert_eq!(
            endpoint(&[("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true"), ("AWS_ENDPOINT_URL", "https://e")]),
            None
        );

        let home = Home::new(
            "[profile p]\nendpoint_url = https://global.example\ns3 =\n  endpoint_url = https://nested.example\n",
            "",
        );
        let s = resolve_ok(&home.env(&[("AWS_PROFILE", "p")]));
        assert_eq!(s.endpoint.unwrap().value, "https://nested.example");
        let home = Home::new("[profile p]\nendpoint_url = https://global.example\n", "");
        assert_eq!(
            resolve_ok(&home.env(&[("AWS_PROFILE", "p")])).endpoint.unwrap().value,
            "https://global.example"
        );
        let home =
            Home::new("[profile p]\nendpoint_url = https://g\nignore_configured_endpoint_urls = true\n", "");
        assert!(resolve_ok(&home.env(&[("AWS_PROFILE", "p")])).endpoint.is_none());

        let home = Home::new("[profile p]\nservices = nowhere\n", "");
        let e = resolve_err(&home.env(&[("AWS_PROFILE", "p")]));
        assert!(e.contains("[services nowhere]"), "{e}");
    }

    #[test]
    fn plain_http_only_when_asked() {
        let home = Home::new("[default]\nendpoint_url = http://127.0.0.1:9000\n", "");
        let e = resolve_err(&home.env(&[]));
        assert!(e.contains("AWS_ALLOW_HTTP=true") && e.contains("http://127.0.0.1:9000"), "{e}");
        assert!(e.contains("`endpoint_url` of profile `default`"), "{e}");
        let e = resolve_err(&home.env(&[("AWS_ALLOW_HTTP", "false")]));
        assert!(e.contains("AWS_ALLOW_HTTP=true"), "{e}");
        let e = resolve_err(&home.env(&[("AWS_ALLOW_HTTP", "maybe")]));
        assert!(e.contains("AWS_ALLOW_HTTP must be"), "{e}");
        let s = resolve_ok(&home.env(&[("AWS_ALLOW_HTTP", "true")]));
        assert!(s.allow_http);
        assert_eq!(s.endpoint.unwrap().value, "http://127.0.0.1:9000");

        let e = resolve_err(&home.env(&[("AWS_ENDPOINT_URL", "HTTP://user:pw@minio.local:9000/x")]));
        assert!(e.contains("user information") && e.contains("(from AWS_ENDPOINT_URL)"), "{e}");
        assert!(e.contains("HTTP://…@minio.local:9000/x") && !e.contains("user:pw"), "{e}");
        let e = resolve_err(&home.env(&[("AWS_ENDPOINT_URL", "minio.local:9000")]));
        assert!(e.contains("not a URL") && e.contains("https://"), "{e}");
    }

    #[test]
    fn loopback_hosts() {
        for url in
            ["http://localhost:9000", "http://127.0.0.1", "http://[::1]:9000/x", "http://u:p@127.0.0.2:1"]
        {
            assert!(is_loopback(url), "{url}");
        }
        for url in ["http://minio.example:9000", "http://10.0.0.1", "http://[fd00::1]:9000"] {
            assert!(!is_loopback(url), "{url}");
        }
    }

    #[test]
    fn debug_output_holds_no_secret() {
        let home = Home::new("", CREDENTIALS);
        let s = resolve_ok(&home.env(&[("AWS_PROFILE", "dev")]));
        let shown = format!("{s:?} {:?}", home.env(&[("AWS_SECRET_ACCESS_KEY", "ENVSECRET")]));
        assert!(shown.contains("DEVID"), "{shown}");
        assert!(
            !shown.contains("DEVSECRET") && !shown.contains("DEVTOKEN") && !shown.contains("ENVSECRET"),
            "{shown}"
        );
    }

    #[test]
    fn builder_gets_the_resolved_settings_and_other_variables() {
        let home = Home::new(CONFIG, CREDENTIALS);
        let env = home.env(&[
            ("AWS_PROFILE", "dev"),
            ("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "true"),
            ("AWS_BUCKET", "not-this-one"),
            ("AWS_TOKEN", "IGNORED-WITHOUT-ENV-KEYS"),
            ("NOT_AWS", "x"),
        ]);
        let b = s3_builder("bucket", &env).unwrap();
        let get = |k: AmazonS3ConfigKey| b.get_config_value(&k);
        assert_eq!(get(AmazonS3ConfigKey::Bucket).as_deref(), Some("bucket"));
        assert_eq!(get(AmazonS3ConfigKey::AccessKeyId).as_deref(), Some("DEVID"));
        assert_eq!(get(AmazonS3ConfigKey::SecretAccessKey).as_deref(), Some("DEVSECRET"));
        assert_eq!(get(AmazonS3ConfigKey::Token).as_deref(), Some("DEVTOKEN"));
        assert_eq!(get(AmazonS3ConfigKey::Region).as_deref(), Some("eu-central-1"));
        assert_eq!(get(AmazonS3ConfigKey::Endpoint).as_deref(), Some("https://dev.example"));
        assert_eq!(get(AmazonS3ConfigKey::VirtualHostedStyleRequest).as_deref(), Some("true"));
        assert!(b.build().is_ok());
        // Nothing configured: object_store's own defaults and fallbacks.
        let b = s3_builder("bucket", &Environment::default()).unwrap();
        assert_eq!(b.get_config_value(&AmazonS3ConfigKey::AccessKeyId), None);
        assert_eq!(b.get_config_value(&AmazonS3ConfigKey::Endpoint), None);
    }
}
