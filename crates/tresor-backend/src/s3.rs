//! S3 locations (`s3://BUCKET[/PREFIX]`), and the settings of their bucket the way the AWS tools
//! find them: aws-config resolves them from the [`BackendConfig`]'s variables and the AWS
//! profile files; object_store talks to the bucket with them.
//!
//! - **Credentials**: aws-config's default chain, in its order — `AWS_ACCESS_KEY_ID` +
//!   `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`); the profile (static keys, `role_arn` with
//!   `source_profile` or `credential_source`, `sso_*` / `sso_session`, `credential_process`,
//!   `web_identity_token_file`); web identity from `AWS_WEB_IDENTITY_TOKEN_FILE` +
//!   `AWS_ROLE_ARN`; container credentials (`AWS_CONTAINER_CREDENTIALS_*`); instance metadata
//!   (IMDS, unless `AWS_EC2_METADATA_DISABLED=true`). Temporary credentials are refreshed
//!   before they expire ([`crate::credentials`]). Nothing is asked for until the first request.
//! - **Region**: aws-config's region chain without its last step: `AWS_REGION`,
//!   `AWS_DEFAULT_REGION`, the profile's `region` (following `source_profile`); else
//!   [`DEFAULT_REGION`]. Instance metadata is not asked: on a machine that is not on EC2 that
//!   question waits seconds for an answer that never comes. On EC2, set `AWS_REGION` or a
//!   profile region when the bucket is elsewhere than `us-east-1`.
//! - **Endpoint**: `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`, the profile's `services` section
//!   (`s3 =` / `endpoint_url =`), the profile's `endpoint_url`, all ignored with
//!   `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true` (or the profile's
//!   `ignore_configured_endpoint_urls`), as aws-config resolves them for S3; then object_store's
//!   older `AWS_ENDPOINT`; else AWS. An endpoint must be `https://`, or `http://` with
//!   `AWS_ALLOW_HTTP=true`, and carry no user information.
//! - **Profile**: `AWS_PROFILE`, else `default`; one named by `AWS_PROFILE` must exist. Files:
//!   `AWS_CONFIG_FILE` (default `~/.aws/config`) and `AWS_SHARED_CREDENTIALS_FILE` (default
//!   `~/.aws/credentials`).
//! - Every other `AWS_*` variable object_store knows (`AWS_VIRTUAL_HOSTED_STYLE_REQUEST`,
//!   `AWS_ALLOW_HTTP`, `AWS_S3_EXPRESS`, timeouts, ...) is handed to it unchanged.
//!
//! Messages name variables, settings, profiles and files, never a credential value. An empty
//! variable counts as unset.

use crate::config::BackendConfig;
use crate::credentials::{AwsConfigCredentials, chain};
use crate::versions::S3Versions;
use aws_config::{BehaviorVersion, Region};
use aws_types::os_shim_internal::{Env, Fs};
use aws_types::service_config::ServiceConfigKey;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::client::{HttpConnector, ReqwestConnector};
use object_store::path::Path;
use object_store::{ClientConfigKey, ClientOptions};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use tresor::store::redact;
use tresor::{Error, Result, Store};

/// The region when none is set anywhere (the one object_store and the AWS CLI also fall back to).
pub const DEFAULT_REGION: &str = "us-east-1";

/// An `s3://BUCKET[/PREFIX]` location, checked and in its one canonical spelling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Location {
    bucket: String,
    /// Segments joined by `/`, none empty; empty for the bucket's top.
    prefix: String,
}

impl S3Location {
    /// Parses `location` (`s3://BUCKET[/PREFIX]`): the bucket name must follow S3's naming
    /// rules, so no `user:password@` ever reaches a URL or a message; the prefix's segments are
    /// tresor object name components; empty segments are dropped (`s3://b//p/` is `s3://b/p`:
    /// one vault, one trust state).
    pub fn parse(location: &str) -> Result<S3Location> {
        let Some(rest) = location.strip_prefix("s3://") else {
            return Err(Error::Invalid(format!("{}: not an s3:// location", redact(location))));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(Error::Invalid(format!("{}: no bucket name", redact(location))));
        }
        let valid = (3..=63).contains(&bucket.len())
            && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !valid {
            return Err(Error::Invalid(format!(
                "{}: not a valid S3 bucket name (3 to 63 lowercase letters, digits, '-' and '.'; credentials \
                 belong in AWS_* variables or a profile, never in the location)",
                redact(location)
            )));
        }
        let segments: Vec<&str> = prefix.split('/').filter(|s| !s.is_empty()).collect();
        if !segments.iter().all(|s| tresor::local::valid_component(s)) {
            return Err(Error::Invalid(format!(
                "{location}: a prefix is made of segments of ASCII letters, digits, '-', '_' and '.' (not '.' or '..')"
            )));
        }
        Ok(S3Location { bucket: bucket.to_string(), prefix: segments.join("/") })
    }

    /// The bucket's name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The prefix inside the bucket (`a/b`), empty for the bucket's top.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The canonical spelling: `s3://BUCKET` or `s3://BUCKET/PREFIX`.
    pub fn canonical(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

/// Opens the vault store at `location` (`s3://BUCKET[/PREFIX]`) with the settings `config`
/// leads to (see the module documentation), old-version removal attached. Creates use
/// `If-None-Match: *`.
pub async fn open(location: &str, config: &BackendConfig) -> Result<Store> {
    let location = S3Location::parse(location)?;
    let canonical = location.canonical();
    let in_location = |e| match e {
        Error::Invalid(m) => Error::Invalid(format!("{canonical}: {m}")),
        e => e,
    };
    let settings = S3Settings::resolve(config).await.map_err(in_location)?;
    let (s3, versions) = settings.connect(location.bucket()).map_err(in_location)?;
    let prefix = (!location.prefix().is_empty()).then(|| Path::from(location.prefix()));
    Ok(Store::from_object_store(Arc::new(s3), prefix, &canonical).with_old_versions(Arc::new(versions)))
}

/// A resolved setting that is not secret, and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    /// The value.
    pub value: String,
    /// Where it came from, for messages: a variable's name, or a profile setting.
    pub source: String,
}

/// The settings of S3 buckets resolved from a [`BackendConfig`]: what [`open`] connects with.
/// `Debug` shows no credential and no option value.
pub struct S3Settings {
    /// The AWS profile consulted (`AWS_PROFILE`, else `default`), whether or not it exists.
    pub profile: String,
    /// The region.
    pub region: Setting,
    /// A custom endpoint (another provider, a local server); `None` means AWS.
    pub endpoint: Option<Setting>,
    /// `AWS_ALLOW_HTTP`: whether an `http://` endpoint is allowed.
    pub allow_http: bool,
    credentials: Arc<AwsConfigCredentials>,
    client_options: ClientOptions,
    /// The other object_store settings from `AWS_*` variables.
    options: Vec<(AmazonS3ConfigKey, String)>,
}

impl fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let options: Vec<String> = self.options.iter().map(|(k, _)| k.as_ref().to_string()).collect();
        f.debug_struct("S3Settings")
            .field("profile", &self.profile)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("allow_http", &self.allow_http)
            .field("options", &options)
            .finish_non_exhaustive()
    }
}

impl S3Settings {
    /// Resolves the settings from `config` and the profile files it leads to (see the module
    /// documentation). Reads the profile files; sends nothing: credentials are asked for at the
    /// first request.
    pub async fn resolve(config: &BackendConfig) -> Result<S3Settings> {
        let allow_http = match config.var("AWS_ALLOW_HTTP") {
            Some(v) => parse_bool(v)
                .ok_or_else(|| Error::Invalid("AWS_ALLOW_HTTP must be `true` or `false`".to_string()))?,
            None => false,
        };
        let env = aws_env(config);
        let fs = Fs::real();
        let files = aws_runtime::env_config::file::EnvConfigFiles::default();
        let profiles = aws_config::profile::load(&fs, &env, &files, None)
            .await
            .map_err(|e| Error::Invalid(format!("cannot read the AWS profile files: {}", chain(&e))))?;
        let profile_name = profiles.selected_profile().to_string();
        let profile = profiles.get_profile(&profile_name);
        if config.var("AWS_PROFILE").is_some() && profile.is_none() {
            return Err(Error::Invalid(format!(
                "AWS_PROFILE names the profile `{profile_name}`, which is in neither the config file ({}) nor \
                 the credentials file ({})",
                config.var("AWS_CONFIG_FILE").unwrap_or("~/.aws/config"),
                config.var("AWS_SHARED_CREDENTIALS_FILE").unwrap_or("~/.aws/credentials"),
            )));
        }

        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        // aws-config's region chain with instance metadata switched off, then everything else
        // with that region (or the default) and the snapshot as it is.
        let mut without_imds: HashMap<String, String> =
            config.vars().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        without_imds.insert("AWS_EC2_METADATA_DISABLED".to_string(), "true".to_string());
        let found = aws_config::defaults(BehaviorVersion::latest())
            .env(Env::from(without_imds))
            .fs(fs.clone())
            .http_client(http.clone())
            .no_credentials()
            .load()
            .await
            .region()
            .map(|r| r.as_ref().to_string());
        let region = match found {
            Some(value) => {
                let source = ["AWS_REGION", "AWS_DEFAULT_REGION"]
                    .into_iter()
                    .find(|name| config.var(name) == Some(value.as_str()))
                    .map_or_else(|| format!("the region of AWS profile `{profile_name}`"), str::to_string);
                Setting { value, source }
            }
            None => Setting {
                value: DEFAULT_REGION.to_string(),
                source: "the default (no AWS_REGION, AWS_DEFAULT_REGION or profile region)".to_string(),
            },
        };
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .env(env)
            .fs(fs)
            .http_client(http)
            .region(Region::new(region.value.clone()))
            .load()
            .await;
        let Some(provider) = sdk.credentials_provider() else {
            return Err(Error::Invalid("aws-config built no credentials provider".to_string()));
        };

        // The endpoint as an S3 client of the AWS SDK would take it.
        let key = ServiceConfigKey::builder()
            .service_id("s3")
            .env("AWS_ENDPOINT_URL")
            .profile("endpoint_url")
            .build();
        let configured = match (sdk.service_config(), key) {
            (Some(services), Ok(key)) => services.load_config(key),
            _ => None,
        }
        .or_else(|| sdk.endpoint_url().map(str::to_string));
        let endpoint = match configured {
            Some(value) => {
                let source = endpoint_source(config, profile, &profile_name, &value);
                Some(Setting { value, source })
            }
            None if !ignore_endpoints(config, profile)? => config
                .var("AWS_ENDPOINT")
                .map(|v| Setting { value: v.to_string(), source: "AWS_ENDPOINT".to_string() }),
            None => None,
        };
        if let Some(endpoint) = &endpoint {
            check_endpoint(endpoint, allow_http)?;
        }

        // Everything else object_store reads from the environment, as `AmazonS3Builder::from_env`
        // would; the settings resolved above are set explicitly instead.
        let mut client_options = ClientOptions::new();
        let mut options = Vec::new();
        for (name, value) in config.vars() {
            if !name.starts_with("AWS_") {
                continue;
            }
            let Ok(key) = name.to_ascii_lowercase().parse::<AmazonS3ConfigKey>() else { continue };
            match key {
                AmazonS3ConfigKey::Client(k) => client_options = client_options.with_config(k, value),
                AmazonS3ConfigKey::AccessKeyId
                | AmazonS3ConfigKey::SecretAccessKey
                | AmazonS3ConfigKey::Token
                | AmazonS3ConfigKey::Region
                | AmazonS3ConfigKey::DefaultRegion
                | AmazonS3ConfigKey::Endpoint
                | AmazonS3ConfigKey::Bucket => {}
                key => options.push((key, value.to_string())),
            }
        }
        client_options = client_options.with_config(ClientConfigKey::AllowHttp, allow_http.to_string());
        Ok(S3Settings {
            profile: profile_name,
            region,
            endpoint,
            allow_http,
            credentials: Arc::new(AwsConfigCredentials::new(provider)),
            client_options,
            options,
        })
    }

    /// The credentials requests are signed with.
    pub fn credentials(&self) -> &Arc<AwsConfigCredentials> {
        &self.credentials
    }

    /// An object_store builder for `bucket` with these settings; `build()` connects.
    pub fn builder(&self, bucket: &str) -> AmazonS3Builder {
        crate::install_tls_provider();
        let mut builder = AmazonS3Builder::new();
        for (key, value) in &self.options {
            builder = builder.with_config(*key, value);
        }
        builder = builder
            .with_bucket_name(bucket)
            .with_region(&self.region.value)
            .with_client_options(self.client_options.clone())
            .with_credentials(Arc::clone(&self.credentials) as object_store::aws::AwsCredentialProvider);
        if let Some(endpoint) = &self.endpoint {
            builder = builder.with_endpoint(&endpoint.value);
        }
        builder
    }

    /// The bucket's store and its versions API, which signs with the store's credentials.
    pub fn connect(&self, bucket: &str) -> Result<(AmazonS3, S3Versions)> {
        let builder = self.builder(bucket);
        let s3 = builder.clone().build().map_err(|e| Error::Invalid(redact(&e.to_string())))?;
        let client = ReqwestConnector::default().connect(&self.client_options).map_err(|e| {
            Error::Invalid(format!("cannot set up an HTTP client for S3: {}", redact(&e.to_string())))
        })?;
        let versions = S3Versions::new(&builder, &s3, client)?;
        Ok((s3, versions))
    }
}

/// The snapshot as aws-config's `Env`.
fn aws_env(config: &BackendConfig) -> Env {
    Env::from(config.vars().map(|(k, v)| (k.to_string(), v.to_string())).collect::<HashMap<_, _>>())
}

/// Where the endpoint aws-config found came from, for messages.
fn endpoint_source(
    config: &BackendConfig,
    profile: Option<&aws_config::profile::Profile>,
    profile_name: &str,
    value: &str,
) -> String {
    if let Some(name) =
        ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"].into_iter().find(|name| config.var(name) == Some(value))
    {
        return name.to_string();
    }
    match profile.and_then(|p| p.get("services")) {
        Some(section) if profile.and_then(|p| p.get("endpoint_url")) != Some(value) => {
            format!("`s3.endpoint_url` of `[services {section}]`, named by AWS profile `{profile_name}`")
        }
        _ => format!("`endpoint_url` of AWS profile `{profile_name}`"),
    }
}

/// `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`, else the profile's `ignore_configured_endpoint_urls`.
fn ignore_endpoints(config: &BackendConfig, profile: Option<&aws_config::profile::Profile>) -> Result<bool> {
    let (value, source) = match config.var("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS") {
        Some(v) => (v, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"),
        None => match profile.and_then(|p| p.get("ignore_configured_endpoint_urls")) {
            Some(v) => (v, "the profile's `ignore_configured_endpoint_urls`"),
            None => return Ok(false),
        },
    };
    parse_bool(value).ok_or_else(|| Error::Invalid(format!("{source} must be `true` or `false`")))
}

/// An endpoint must be `https://...`, or `http://...` when `AWS_ALLOW_HTTP` is true, and carry
/// no user information.
fn check_endpoint(endpoint: &Setting, allow_http: bool) -> Result<()> {
    let url = endpoint.value.as_str();
    if redact(url) != url || (!url.contains("://") && url.contains('@')) {
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
                    "the S3 endpoint {url} is plain HTTP to another machine: requests, including a \
                     session token, cross the network unencrypted"
                );
            }
            Ok(())
        }
        Some("http") => Err(Error::Invalid(format!(
            "the S3 endpoint {url} (from {}) is plain HTTP, which is refused unless AWS_ALLOW_HTTP=true \
             is set (for a local test server; anything else should use https://)",
            endpoint.source
        ))),
        _ => Err(Error::Invalid(format!(
            "the S3 endpoint {url} (from {}) is not a URL: it must start with https:// (or http:// with \
             AWS_ALLOW_HTTP=true)",
            endpoint.source
        ))),
    }
}

/// A URL fit for a message: the user information of a URL (`user:password@`) left out.
fn shown(url: &str) -> String {
    if url.contains("://") { redact(url) } else { "(a value with user information)".to_string() }
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

/// Booleans as object_store reads them.
pub(crate) fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "on" | "yes" | "y" => Some(true),
        "0" | "false" | "off" | "no" | "n" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn locations_have_one_spelling_and_valid_names() {
        for spelling in
            ["s3://tresor-test//team/prod/", "s3://tresor-test/team//prod", "s3://tresor-test/team/prod"]
        {
            let l = S3Location::parse(spelling).unwrap();
            assert_eq!((l.bucket(), l.prefix()), ("tresor-test", "team/prod"));
            assert_eq!(l.canonical(), "s3://tresor-test/team/prod");
        }
        assert_eq!(S3Location::parse("s3://bkt/").unwrap().canonical(), "s3://bkt");
        for bad in
            ["s3://", "s3:///p", "s3://ab", "s3://Bucket", "s3://b_x/p", "s3://bkt/a/../b", "file:///x"]
        {
            assert!(matches!(S3Location::parse(bad), Err(Error::Invalid(_))), "{bad}");
        }
        let e = S3Location::parse("s3://user:hunter2secret@bucket/p").unwrap_err().to_string();
        assert!(e.contains("not a valid S3 bucket name") && !e.contains("hunter2secret"), "{e}");
    }

    fn setting(value: &str) -> Setting {
        Setting { value: value.to_string(), source: "AWS_ENDPOINT_URL".to_string() }
    }

    #[test]
    fn endpoints_are_https_or_allowed_http_without_user_information() {
        assert!(check_endpoint(&setting("https://s3.example"), false).is_ok());
        let e = check_endpoint(&setting("http://127.0.0.1:9000"), false).unwrap_err().to_string();
        assert!(e.contains("AWS_ALLOW_HTTP=true") && e.contains("(from AWS_ENDPOINT_URL)"), "{e}");
        assert!(check_endpoint(&setting("http://127.0.0.1:9000"), true).is_ok());
        let e = check_endpoint(&setting("HTTP://user:pw@minio.local:9000/x"), true).unwrap_err().to_string();
        assert!(e.contains("user information") && e.contains("HTTP://…@minio.local:9000/x"), "{e}");
        assert!(!e.contains("user:pw"), "{e}");
        let e = check_endpoint(&setting("minio.local:9000"), false).unwrap_err().to_string();
        assert!(e.contains("not a URL") && e.contains("https://"), "{e}");
        let e = check_endpoint(&setting("user:pw@minio.local"), false).unwrap_err().to_string();
        assert!(e.contains("user information") && !e.contains("user:pw"), "{e}");
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
}
