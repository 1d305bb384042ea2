//! Old object versions: what a store still holds of objects after they were deleted, and their
//! removal from S3 buckets that keep them.
//!
//! On a bucket whose versioning is enabled (or was enabled, then suspended), a DELETE only adds a
//! delete marker: every older version stays readable by anyone allowed `s3:GetObjectVersion`.
//! Deleting a destroyed epoch's objects would then destroy nothing. [`S3Versions::purge`] removes
//! every version and delete marker under some key prefixes and then lists them again, so that its
//! [`Residue`] says what is left, not what was attempted.
//!
//! `object_store` has no API for versions, so this module sends the three requests it needs
//! itself: GetBucketVersioning, ListObjectVersions (paginated) and DeleteObject with a
//! `versionId` (a few at a time). They go to the bucket URL `object_store` uses for the vault (the
//! same endpoint, path-style or virtual-hosted addressing, region and plain-HTTP policy, taken
//! from the same [`AmazonS3Builder`]) with the vault store's own credential provider, signed with
//! AWS Signature Version 4 (HMAC-SHA256 from the `hmac` and `sha2` crates).
//!
//! Outcomes:
//! - the bucket never had versioning enabled: [`Residue::NotKept`];
//! - every version and delete marker under the prefixes is gone: [`Residue::Removed`];
//! - the store refused something (an S3 error answer: `AccessDenied` from Object Lock, MFA delete
//!   or a missing permission, `NotImplemented` from a store without the API, ...) and versions
//!   remain, or cannot be counted: [`Residue::Kept`], with the operations and S3 error codes;
//! - the store could not be reached, kept failing (5xx, after retries) or answered something
//!   that does not parse: an [`Error::Store`]. The purge can be run again: it is idempotent.
//!
//! Errors and logs name operations, S3 error codes, HTTP statuses and the endpoint's host; never
//! credentials, signatures or object names.

use crate::error::{Error, Result};
use futures::StreamExt;
use hmac::{Hmac, KeyInit, Mac};
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey, AwsCredential, AwsCredentialProvider};
use object_store::{ClientConfigKey, ObjectStore};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use zeroize::Zeroizing;

/// What a store still holds of objects after they were deleted.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Residue {
    /// The store keeps no older versions of deleted objects (a local directory, memory, or a
    /// bucket whose versioning was never enabled).
    NotKept,
    /// The bucket keeps versions; this many old versions and delete markers under the prefixes
    /// were removed, none remain.
    Removed {
        /// Versions and delete markers removed.
        versions: usize,
    },
    /// Versions remain and could not be removed (count, and why: e.g. Object Lock, access
    /// denied, unsupported API) — never claim success we did not have. A count of 0 with a reason
    /// means the versions could not be counted.
    Kept {
        /// Versions and delete markers still listed (0 if they could not be listed).
        versions: usize,
        /// Why they remain: the operations refused and the S3 error codes.
        reason: String,
    },
}

/// The residue of a store without a versions API (anything but S3): none for a local directory or
/// memory (also behind [`crate::fault::FaultStore`]), unknown for anything else. `local` says the
/// store is a local directory.
pub fn residue_without_versions_api(store: &dyn ObjectStore, local: bool) -> Residue {
    // `object_store` offers no way to ask a backend what it is but its `Display`.
    let shown = store.to_string();
    let mut inner = shown.as_str();
    // Wrappers (`FaultStore(...)`, a test's gate) show what they wrap in parentheses.
    let local_dir = |s: &str| s.starts_with("LocalFileSystem(") || s.starts_with("LocalDirectory(");
    while !local_dir(inner)
        && let Some((name, rest)) = inner.split_once('(')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && let Some(wrapped) = rest.strip_suffix(')')
    {
        inner = wrapped;
    }
    if local || inner == "InMemory" || local_dir(inner) {
        Residue::NotKept
    } else {
        Residue::Kept { versions: 0, reason: "cannot inspect versions of this store".to_string() }
    }
}

/// Requests in flight at once while deleting versions.
const CONCURRENCY: usize = 8;
/// Attempts per request on connection failures and 5xx/429 answers.
const ATTEMPTS: u32 = 4;
/// Largest answer body read (a page of 1,000 versions is well under 1 MiB): a store cannot make
/// tresor buffer more.
const MAX_BODY: usize = 8 << 20;

/// The body of `response`, chunk by chunk, refused once it passes `cap` bytes.
async fn read_capped(
    mut response: reqwest::Response,
    cap: usize,
) -> std::result::Result<bytes::Bytes, String> {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) if body.len() + chunk.len() > cap => {
                return Err(format!("the answer is larger than {cap} bytes"));
            }
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => return Ok(bytes::Bytes::from(body)),
            Err(e) => return Err(describe(e)),
        }
    }
}

/// SHA-256 of the empty payload (every request here has an empty body).
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Access to the versions of one S3 bucket: where it is and how to sign for it. Built from the
/// builder and the store of a vault on S3 ([`S3Versions::new`]); `Debug` shows the bucket URL and
/// region only.
pub struct S3Versions {
    /// The bucket's URL (`https://s3.REGION.amazonaws.com/BUCKET`, `ENDPOINT/BUCKET`, ...), without
    /// a trailing slash.
    base: String,
    /// The host the URL names, for messages.
    host: String,
    region: String,
    credentials: AwsCredentialProvider,
    allow_http: bool,
    /// An S3 Express One Zone directory bucket, which does not support versioning.
    directory_bucket: bool,
    /// `max-keys` of listings; `None` is the store's default (1000 on S3).
    page_size: Option<usize>,
}

impl fmt::Debug for S3Versions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Versions").field("host", &self.host).field("region", &self.region).finish()
    }
}

impl S3Versions {
    /// The versions of the bucket `store` was built for by `builder` (the builder before
    /// `build()`, from [`crate::aws::s3_builder`]). Addresses the bucket as `object_store` does:
    /// `ENDPOINT/BUCKET` (path-style) with an endpoint, `ENDPOINT` as is with
    /// `AWS_VIRTUAL_HOSTED_STYLE_REQUEST=true`; without an endpoint
    /// `https://s3.REGION.amazonaws.com/BUCKET`, or `https://BUCKET.s3.REGION.amazonaws.com`
    /// virtual-hosted.
    pub fn new(builder: &AmazonS3Builder, store: &AmazonS3) -> Result<S3Versions> {
        let flag = |key: AmazonS3ConfigKey| {
            builder.get_config_value(&key).is_some_and(|v| crate::aws::parse_bool(&v) == Some(true))
        };
        let bucket = builder
            .get_config_value(&AmazonS3ConfigKey::Bucket)
            .ok_or_else(|| Error::Invalid("no S3 bucket name".to_string()))?;
        let region =
            builder.get_config_value(&AmazonS3ConfigKey::Region).unwrap_or_else(|| "us-east-1".into());
        let endpoint = builder
            .get_config_value(&AmazonS3ConfigKey::S3Endpoint)
            .or_else(|| builder.get_config_value(&AmazonS3ConfigKey::Endpoint));
        let base = match (endpoint, flag(AmazonS3ConfigKey::VirtualHostedStyleRequest)) {
            (Some(endpoint), true) => endpoint.trim_end_matches('/').to_string(),
            (Some(endpoint), false) => format!("{}/{bucket}", endpoint.trim_end_matches('/')),
            (None, true) => format!("https://{bucket}.s3.{region}.amazonaws.com"),
            (None, false) => format!("https://s3.{region}.amazonaws.com/{bucket}"),
        };
        let url = reqwest::Url::parse(&base)
            .map_err(|e| Error::Invalid(format!("the S3 bucket URL for `{bucket}` is not a URL: {e}")))?;
        let host = url.host_str().unwrap_or_default().to_string();
        Ok(S3Versions {
            base,
            host,
            region,
            credentials: Arc::clone(store.credentials()),
            allow_http: flag(AmazonS3ConfigKey::Client(ClientConfigKey::AllowHttp)),
            directory_bucket: flag(AmazonS3ConfigKey::S3Express),
            page_size: None,
        })
    }

    /// Lists at most `n` versions per request (at least 1) instead of the store's default: small
    /// pages exercise pagination in tests.
    pub fn with_page_size(mut self, n: usize) -> S3Versions {
        self.page_size = Some(n.max(1));
        self
    }

    /// Removes every version and delete marker of every object whose key (in the bucket, vault
    /// prefix included) starts with one of `key_prefixes`, then lists them again to say what is
    /// left (see the module documentation).
    pub async fn purge(&self, key_prefixes: &[String]) -> Result<Residue> {
        if self.directory_bucket {
            // Directory buckets (S3 Express One Zone) do not support versioning.
            return Ok(Residue::NotKept);
        }
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .https_only(!self.allow_http)
            .build()
            .map_err(|e| Error::store(format!("cannot set up an HTTP client for S3: {}", describe(e))))?;
        let versioning = match self.versioning(&client).await? {
            Ok(v) => v,
            Err(refusal) => {
                return Ok(Residue::Kept {
                    versions: 0,
                    reason: format!("cannot tell whether the bucket keeps old versions: {refusal}"),
                });
            }
        };
        if versioning.status.as_deref().is_none_or(str::is_empty) {
            return Ok(Residue::NotKept);
        }
        let mut tally = Tally::default();
        for prefix in key_prefixes {
            self.remove_under(&client, prefix, &mut tally).await?;
        }
        let remaining = match self.count(&client, key_prefixes).await? {
            Ok(n) => n,
            Err(refusal) => {
                return Ok(Residue::Kept {
                    versions: 0,
                    reason: format!(
                        "{} versions removed, but what remains cannot be listed: {refusal}",
                        tally.removed
                    ),
                });
            }
        };
        tracing::debug!(removed = tally.removed, remaining, "purged old object versions");
        if remaining == 0 {
            return Ok(Residue::Removed { versions: tally.removed });
        }
        let mut reasons: Vec<String> = tally
            .refused
            .iter()
            .map(|(r, n)| {
                let s = if *n == 1 { "" } else { "s" };
                format!("{} refused for {n} version{s}: {} (HTTP {})", r.operation, r.code, r.status)
            })
            .collect();
        reasons.extend(tally.list_refused.iter().map(ToString::to_string));
        if versioning.mfa_delete.as_deref() == Some("Enabled") {
            reasons.push("MFA delete is enabled on the bucket".to_string());
        }
        if reasons.is_empty() {
            reasons.push("still listed after they were removed (written meanwhile?)".to_string());
        }
        Ok(Residue::Kept { versions: remaining, reason: reasons.join("; ") })
    }

    /// The bucket's versioning configuration.
    async fn versioning(&self, client: &reqwest::Client) -> Result<Answer<VersioningConfiguration>> {
        match self
            .send(client, "GetBucketVersioning", reqwest::Method::GET, None, &[("versioning", "")])
            .await?
        {
            Ok(body) => Ok(Ok(parse("GetBucketVersioning", &body)?)),
            Err(refusal) => Ok(Err(refusal)),
        }
    }

    /// One page of ListObjectVersions under `prefix`, after `marker`.
    async fn list_page(
        &self,
        client: &reqwest::Client,
        prefix: &str,
        marker: Option<&Entry>,
    ) -> Result<Answer<Page>> {
        let max_keys = self.page_size.map(|n| n.to_string());
        let mut params = vec![("versions", ""), ("prefix", prefix)];
        if let Some(n) = &max_keys {
            params.push(("max-keys", n));
        }
        if let Some(m) = marker {
            params.push(("key-marker", &m.key));
            params.push(("version-id-marker", &m.version_id));
        }
        let body = match self.send(client, "ListObjectVersions", reqwest::Method::GET, None, &params).await? {
            Ok(body) => body,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let result: ListVersionsResult = parse("ListObjectVersions", &body)?;
        let next = if result.is_truncated {
            match (result.next_key_marker, result.next_version_id_marker) {
                (Some(key), Some(version_id)) if !key.is_empty() && !version_id.is_empty() => {
                    Some(Entry { key, version_id })
                }
                _ => {
                    return Err(Error::store(
                        "S3 ListObjectVersions answered a truncated page without its next markers",
                    ));
                }
            }
        } else {
            None
        };
        if next.is_some() && next.as_ref() == marker {
            return Err(Error::store("S3 ListObjectVersions answered the same page twice"));
        }
        // The listing is by prefix already; never touch anything outside it, whatever is listed.
        let entries = result
            .versions
            .into_iter()
            .chain(result.delete_markers)
            .map(|e| Entry { key: e.key, version_id: e.version_id })
            .filter(|e| e.key.starts_with(prefix))
            .collect();
        Ok(Ok(Page { entries, next }))
    }

    /// Deletes every version and delete marker under `prefix`, page by page.
    ///
    /// The entry a page's next markers name is deleted only after the next page was listed:
    /// moto (unlike S3) finds the place to continue by looking the marker's version up, and lists
    /// nothing more once it is gone.
    async fn remove_under(&self, client: &reqwest::Client, prefix: &str, tally: &mut Tally) -> Result<()> {
        let mut marker: Option<Entry> = None;
        loop {
            let page = match self.list_page(client, prefix, marker.as_ref()).await? {
                Ok(page) => page,
                Err(refusal) => {
                    tally.list_refused.get_or_insert(refusal);
                    return Ok(());
                }
            };
            let mut batch: Vec<Entry> =
                page.entries.into_iter().filter(|e| Some(e) != page.next.as_ref()).collect();
            batch.extend(marker.take());
            let outcomes: Vec<Result<Answer<bytes::Bytes>>> =
                futures::stream::iter(batch.into_iter().map(|e: Entry| async move {
                    // Owned entries: a future borrowing from the iterator would not be `Send` for
                    // every lifetime, and the agent runs this on a multi-threaded runtime.
                    let params = [("versionId", e.version_id.as_str())];
                    self.send(client, "DeleteObject", reqwest::Method::DELETE, Some(&e.key), &params).await
                }))
                .buffer_unordered(CONCURRENCY)
                .collect()
                .await;
            for outcome in outcomes {
                match outcome? {
                    Ok(_) => tally.removed += 1,
                    // Gone already (removed by someone else): nothing left, nothing removed here.
                    Err(refusal) if refusal.status == 404 => {}
                    Err(refusal) => *tally.refused.entry(refusal).or_default() += 1,
                }
            }
            match page.next {
                Some(next) => marker = Some(next),
                None => return Ok(()),
            }
        }
    }

    /// How many versions and delete markers are listed under `key_prefixes`.
    async fn count(&self, client: &reqwest::Client, key_prefixes: &[String]) -> Result<Answer<usize>> {
        let mut n = 0;
        for prefix in key_prefixes {
            let mut marker: Option<Entry> = None;
            loop {
                let page = match self.list_page(client, prefix, marker.as_ref()).await? {
                    Ok(page) => page,
                    Err(refusal) => return Ok(Err(refusal)),
                };
                n += page.entries.len();
                match page.next {
                    Some(next) => marker = Some(next),
                    None => break,
                }
            }
        }
        Ok(Ok(n))
    }

    /// Sends one signed request with an empty body: the answer's body, or the store's refusal.
    /// Connection failures, 5xx and 429 are retried; they are errors once attempts run out.
    async fn send(
        &self,
        client: &reqwest::Client,
        operation: &'static str,
        method: reqwest::Method,
        key: Option<&str>,
        params: &[(&str, &str)],
    ) -> Result<Answer<bytes::Bytes>> {
        let query = canonical_query(params);
        let mut url = self.base.clone();
        if let Some(key) = key {
            url.push('/');
            url.push_str(&uri_encode(key, true));
        }
        if !query.is_empty() {
            url.push('?');
            url.push_str(&query);
        }
        let url = reqwest::Url::parse(&url)
            .map_err(|e| Error::store(format!("S3 {operation}: cannot form a request URL: {e}")))?;
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            (None, _) => return Err(Error::store(format!("S3 {operation}: the bucket URL names no host"))),
        };
        let mut delay = Duration::from_millis(100);
        let mut attempt = 1;
        loop {
            let credential = self.credentials.get_credential().await.map_err(|e| {
                Error::store(format!("S3 {operation}: cannot get credentials for {}: {e}", self.host))
            })?;
            let amz_date = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
            let request = Canonical::new(method.as_str(), url.path(), &query, &host, &amz_date, &credential);
            let authorization = request.authorization(&credential, &self.region, "s3");
            let mut builder = client.request(method.clone(), url.clone());
            for (name, value) in &request.headers {
                if name != "host" {
                    builder = builder.header(name.as_str(), value.as_str());
                }
            }
            let failure = match builder.header("authorization", authorization.as_str()).send().await {
                Ok(response) => {
                    let status = response.status();
                    match read_capped(response, MAX_BODY).await {
                        Ok(body) if status.is_success() => return Ok(Ok(body)),
                        Ok(body) if status.is_server_error() || status.as_u16() == 429 => {
                            format!("{} (HTTP {})", error_code(&body), status.as_u16())
                        }
                        Ok(body) => {
                            return Ok(Err(Refusal {
                                operation,
                                code: error_code(&body),
                                status: status.as_u16(),
                            }));
                        }
                        Err(e) => e,
                    }
                }
                Err(e) => describe(e),
            };
            if attempt >= ATTEMPTS {
                return Err(Error::store(format!(
                    "S3 {operation} on {} failed {ATTEMPTS} times, the last with: {failure}",
                    self.host
                )));
            }
            tracing::debug!(operation, attempt, failure, "S3 request failed, retrying");
            tokio::time::sleep(delay).await;
            delay *= 2;
            attempt += 1;
        }
    }
}

/// An answer of the store: what was asked, or its refusal.
type Answer<T> = std::result::Result<T, Refusal>;

/// The store's refusal of a request: an S3 error answer other than 5xx/429.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Refusal {
    operation: &'static str,
    /// The S3 error code (`AccessDenied`, ...), or a note that the answer had none.
    code: String,
    status: u16,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} refused: {} (HTTP {})", self.operation, self.code, self.status)
    }
}

/// What a purge did so far.
#[derive(Default)]
struct Tally {
    removed: usize,
    /// Refused deletes, by refusal.
    refused: BTreeMap<Refusal, usize>,
    /// The first refused listing.
    list_refused: Option<Refusal>,
}

/// One version or delete marker.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    key: String,
    version_id: String,
}

/// One page of a listing, and where the next one starts.
struct Page {
    entries: Vec<Entry>,
    next: Option<Entry>,
}

/// `<VersioningConfiguration>` (moto names the root `GetBucketVersioningResponse`).
#[derive(serde::Deserialize)]
struct VersioningConfiguration {
    #[serde(rename = "Status", default)]
    status: Option<String>,
    #[serde(rename = "MfaDelete", default)]
    mfa_delete: Option<String>,
}

/// `<ListVersionsResult>`: the elements used; versions and delete markers come interleaved.
#[derive(serde::Deserialize)]
struct ListVersionsResult {
    #[serde(rename = "IsTruncated")]
    is_truncated: bool,
    #[serde(rename = "NextKeyMarker", default)]
    next_key_marker: Option<String>,
    #[serde(rename = "NextVersionIdMarker", default)]
    next_version_id_marker: Option<String>,
    #[serde(rename = "Version", default)]
    versions: Vec<XmlEntry>,
    #[serde(rename = "DeleteMarker", default)]
    delete_markers: Vec<XmlEntry>,
}

/// A `<Version>` or `<DeleteMarker>`.
#[derive(serde::Deserialize)]
struct XmlEntry {
    #[serde(rename = "Key")]
    key: String,
    #[serde(rename = "VersionId")]
    version_id: String,
}

/// `<Error>`: the code only (messages may name principals and resources).
#[derive(serde::Deserialize)]
struct XmlError {
    #[serde(rename = "Code")]
    code: String,
}

fn parse<T: serde::de::DeserializeOwned>(operation: &str, body: &[u8]) -> Result<T> {
    let text = std::str::from_utf8(body)
        .map_err(|_| Error::store(format!("S3 {operation} answered something that is not UTF-8")))?;
    quick_xml::de::from_str(text)
        .map_err(|e| Error::store(format!("S3 {operation} answered XML that does not parse: {e}")))
}

/// The S3 error code of an error answer's body.
fn error_code(body: &[u8]) -> String {
    match parse::<XmlError>("", body) {
        Ok(e) if !e.code.is_empty() && e.code.chars().all(|c| c.is_ascii_alphanumeric() || c == '.') => {
            e.code
        }
        _ => "no S3 error code".to_string(),
    }
}

/// A `reqwest` error and its causes, without the URL.
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// URI-encodes as SigV4 requires: everything but `A-Z a-z 0-9 - _ . ~` (and `/` in paths) as
/// `%XX`, uppercase.
fn uri_encode(s: &str, path: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(char::from(b)),
            b'/' if path => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The canonical query string: encoded `name=value` pairs sorted by name, then value.
fn canonical_query(params: &[(&str, &str)]) -> String {
    let mut pairs: Vec<(String, String)> =
        params.iter().map(|(k, v)| (uri_encode(k, false), uri_encode(v, false))).collect();
    pairs.sort();
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

/// HMAC-SHA256, the one primitive of SigV4.
fn hmac_sha256(key: &[u8], data: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(data);
    Zeroizing::new(mac.finalize().into_bytes().into())
}

/// The SigV4 signing key: `aws4_request` under `service` under `region` under `date`
/// (`YYYYMMDD`) under the secret key.
fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Zeroizing<[u8; 32]> {
    let first = Zeroizing::new(format!("AWS4{secret}"));
    let k_date = hmac_sha256(first.as_bytes(), date.as_bytes());
    let k_region = hmac_sha256(k_date.as_ref(), region.as_bytes());
    let k_service = hmac_sha256(k_region.as_ref(), service.as_bytes());
    hmac_sha256(k_service.as_ref(), b"aws4_request")
}

/// A request in SigV4's canonical form.
struct Canonical<'a> {
    method: &'a str,
    /// The URI-encoded path, as sent.
    uri: &'a str,
    /// The canonical query string.
    query: &'a str,
    /// Lowercase names and trimmed values, sorted by name.
    headers: Vec<(String, String)>,
    /// Hex SHA-256 of the payload.
    payload_hash: &'a str,
    /// `YYYYMMDDTHHMMSSZ`.
    amz_date: &'a str,
}

impl<'a> Canonical<'a> {
    /// An S3 request with an empty body: signs `host`, `x-amz-content-sha256`, `x-amz-date` and,
    /// for temporary credentials, `x-amz-security-token`.
    fn new(
        method: &'a str,
        uri: &'a str,
        query: &'a str,
        host: &str,
        amz_date: &'a str,
        credential: &AwsCredential,
    ) -> Canonical<'a> {
        let mut headers = vec![
            ("host", host.to_string()),
            ("x-amz-content-sha256", EMPTY_SHA256.to_string()),
            ("x-amz-date", amz_date.to_string()),
        ];
        if let Some(token) = &credential.token {
            headers.push(("x-amz-security-token", token.clone()));
        }
        Canonical::with_headers(method, uri, query, &headers, EMPTY_SHA256, amz_date)
    }

    fn with_headers(
        method: &'a str,
        uri: &'a str,
        query: &'a str,
        headers: &[(&str, String)],
        payload_hash: &'a str,
        amz_date: &'a str,
    ) -> Canonical<'a> {
        let mut headers: Vec<(String, String)> =
            headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string())).collect();
        headers.sort();
        Canonical { method, uri, query, headers, payload_hash, amz_date }
    }

    fn signed_headers(&self) -> String {
        self.headers.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(";")
    }

    /// The canonical request.
    fn text(&self) -> String {
        let mut out = format!("{}\n{}\n{}\n", self.method, self.uri, self.query);
        for (name, value) in &self.headers {
            out.push_str(&format!("{name}:{value}\n"));
        }
        out.push_str(&format!("\n{}\n{}", self.signed_headers(), self.payload_hash));
        out
    }

    /// The string to sign, for `scope` (`DATE/REGION/SERVICE/aws4_request`).
    fn string_to_sign(&self, scope: &str) -> String {
        format!("AWS4-HMAC-SHA256\n{}\n{scope}\n{}", self.amz_date, hex::encode(Sha256::digest(self.text())))
    }

    /// The hex signature.
    fn signature(&self, secret: &str, region: &str, service: &str) -> String {
        let date = self.amz_date.get(..8).unwrap_or_default();
        let scope = format!("{date}/{region}/{service}/aws4_request");
        let key = signing_key(secret, date, region, service);
        hex::encode(hmac_sha256(key.as_ref(), self.string_to_sign(&scope).as_bytes()).as_ref())
    }

    /// The `Authorization` header's value.
    fn authorization(&self, credential: &AwsCredential, region: &str, service: &str) -> String {
        let date = self.amz_date.get(..8).unwrap_or_default();
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{date}/{region}/{service}/aws4_request, SignedHeaders={}, \
             Signature={}",
            credential.key_id,
            self.signed_headers(),
            self.signature(&credential.secret_key, region, service)
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    #[test]
    fn signing_key_matches_the_aws_example() {
        // "Examples of how to derive a signing key for Signature Version 4" (AWS General Reference).
        let key = signing_key(SECRET, "20150830", "us-east-1", "iam");
        assert_eq!(
            hex::encode(key.as_ref()),
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
        );
    }

    fn vanilla(query: &str) -> String {
        let headers =
            [("Host", "example.amazonaws.com".to_string()), ("X-Amz-Date", "20150830T123600Z".to_string())];
        Canonical::with_headers("GET", "/", query, &headers, EMPTY_SHA256, "20150830T123600Z").signature(
            SECRET,
            "us-east-1",
            "service",
        )
    }

    #[test]
    fn signatures_match_the_aws_test_suite() {
        // get-vanilla and get-vanilla-query-order-key-case of the Signature Version 4 test suite.
        assert_eq!(vanilla(""), "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
        let query = canonical_query(&[("Param2", "value2"), ("Param1", "value1")]);
        assert_eq!(query, "Param1=value1&Param2=value2");
        assert_eq!(vanilla(&query), "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
    }

    #[test]
    fn signature_matches_the_s3_get_object_example() {
        // "Example: GET Object" of the S3 API reference (Signature Version 4, Authorization header).
        let headers = [
            ("Host", "examplebucket.s3.amazonaws.com".to_string()),
            ("Range", "bytes=0-9".to_string()),
            ("x-amz-content-sha256", EMPTY_SHA256.to_string()),
            ("x-amz-date", "20130524T000000Z".to_string()),
        ];
        let c = Canonical::with_headers("GET", "/test.txt", "", &headers, EMPTY_SHA256, "20130524T000000Z");
        assert_eq!(
            c.string_to_sign("20130524/us-east-1/s3/aws4_request"),
            "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n\
             7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972"
        );
        assert_eq!(
            c.signature("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "us-east-1", "s3"),
            "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
        assert_eq!(hex::encode(Sha256::digest(b"")), EMPTY_SHA256);
    }

    #[test]
    fn authorization_names_the_key_id_and_never_the_secret_or_token() {
        let credential = AwsCredential {
            key_id: "AKIDEXAMPLE".into(),
            secret_key: SECRET.into(),
            token: Some("SESSION-TOKEN".into()),
        };
        let c = Canonical::new("DELETE", "/b/k", "versionId=1", "h:9000", "20150830T123600Z", &credential);
        assert_eq!(c.signed_headers(), "host;x-amz-content-sha256;x-amz-date;x-amz-security-token");
        let a = c.authorization(&credential, "us-east-1", "s3");
        assert!(
            a.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/s3/aws4_request, ")
        );
        assert!(!a.contains(SECRET) && !a.contains("SESSION-TOKEN"), "{a}");
    }

    #[test]
    fn uri_encoding() {
        assert_eq!(uri_encode("blob/0000000001/a b+c~d_e.f-g", true), "blob/0000000001/a%20b%2Bc~d_e.f-g");
        assert_eq!(uri_encode("a/b=é", false), "a%2Fb%3D%C3%A9");
        assert_eq!(
            canonical_query(&[("versions", ""), ("prefix", "v/blob/")]),
            "prefix=v%2Fblob%2F&versions="
        );
    }

    #[test]
    fn listings_and_errors_parse() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
            <ListVersionsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
              <Name>b</Name><Prefix>p/</Prefix><KeyMarker/><VersionIdMarker/>
              <NextKeyMarker>p/b</NextKeyMarker><NextVersionIdMarker>v3</NextVersionIdMarker>
              <MaxKeys>3</MaxKeys><IsTruncated>true</IsTruncated>
              <Version><Key>p/a</Key><VersionId>v1</VersionId><IsLatest>true</IsLatest>
                <Owner><ID>x</ID></Owner></Version>
              <DeleteMarker><Key>p/b</Key><VersionId>v2</VersionId><IsLatest>true</IsLatest></DeleteMarker>
              <Version><Key>p/b</Key><VersionId>v3</VersionId><IsLatest>false</IsLatest></Version>
            </ListVersionsResult>"#;
        let r: ListVersionsResult = parse("test", xml.as_bytes()).unwrap();
        assert!(r.is_truncated);
        assert_eq!(
            (r.next_key_marker.as_deref(), r.next_version_id_marker.as_deref()),
            (Some("p/b"), Some("v3"))
        );
        let ids: Vec<_> = r.versions.iter().chain(&r.delete_markers).map(|e| e.version_id.as_str()).collect();
        assert_eq!(ids, ["v1", "v3", "v2"]);
        let v: VersioningConfiguration =
            parse("test", b"<VersioningConfiguration><Status>Suspended</Status></VersioningConfiguration>")
                .unwrap();
        assert_eq!(v.status.as_deref(), Some("Suspended"));
        let v: VersioningConfiguration = parse("test", b"<VersioningConfiguration/>").unwrap();
        assert!(v.status.is_none() && v.mfa_delete.is_none());
        assert_eq!(
            error_code(b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"),
            "AccessDenied"
        );
        assert_eq!(error_code(b""), "no S3 error code");
        assert_eq!(error_code(b"<Error><Code>a b</Code></Error>"), "no S3 error code");
        assert!(parse::<ListVersionsResult>("test", b"<ListVersionsResult><Version>").is_err());
    }

    #[test]
    fn stores_without_versions_api() {
        let memory = object_store::memory::InMemory::new();
        assert_eq!(residue_without_versions_api(&memory, false), Residue::NotKept);
        let faulty = crate::fault::FaultStore::new(Arc::new(object_store::memory::InMemory::new()));
        assert_eq!(residue_without_versions_api(&faulty, false), Residue::NotKept);
        let s3 = object_store::aws::AmazonS3Builder::new().with_bucket_name("b").build().unwrap();
        assert!(matches!(residue_without_versions_api(&s3, false), Residue::Kept { versions: 0, .. }));
    }

    #[test]
    fn bucket_urls_as_object_store_forms_them() {
        let url = |b: AmazonS3Builder| {
            let b = b.with_bucket_name("bkt");
            let s = b.clone().build().unwrap();
            S3Versions::new(&b, &s).unwrap().base
        };
        assert_eq!(
            url(AmazonS3Builder::new().with_region("eu-west-1")),
            "https://s3.eu-west-1.amazonaws.com/bkt"
        );
        assert_eq!(
            url(AmazonS3Builder::new().with_region("eu-west-1").with_virtual_hosted_style_request(true)),
            "https://bkt.s3.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            url(AmazonS3Builder::new().with_endpoint("http://127.0.0.1:9000/")),
            "http://127.0.0.1:9000/bkt"
        );
        assert_eq!(
            url(AmazonS3Builder::new()
                .with_endpoint("https://bkt.example")
                .with_virtual_hosted_style_request(true)),
            "https://bkt.example"
        );
        let b = AmazonS3Builder::new().with_bucket_name("bkt").with_region("r");
        let s = b.clone().build().unwrap();
        let shown = format!("{:?}", S3Versions::new(&b, &s).unwrap());
        assert!(shown.contains("s3.r.amazonaws.com") && !shown.contains("credentials"), "{shown}");
    }
}
