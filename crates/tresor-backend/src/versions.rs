//! Removing old object versions from an S3 bucket that keeps them: the core's
//! [`OldVersions`] for buckets opened by [`crate::s3`].
//!
//! On a bucket whose versioning is enabled (or was enabled, then suspended), a DELETE only adds a
//! delete marker: every older version stays readable by anyone allowed `s3:GetObjectVersion`.
//! [`S3Versions::purge`] removes every version and delete marker under some key prefixes and
//! then lists them again, so that its [`Residue`] says what is left, not what was attempted.
//!
//! object_store has no API for versions, so this module sends the requests itself:
//! GetBucketVersioning, ListObjectVersions (paginated) and DeleteObjects (`POST ?delete`, up to
//! 1,000 keys with their version ids per request, with the `Content-MD5` S3 requires). They go
//! to the bucket URL object_store uses for the vault (the same endpoint, path-style or
//! virtual-hosted addressing and region, taken from the same [`AmazonS3Builder`]), through an
//! object_store HTTP client made with the same client options, signed by object_store's own
//! SigV4 signer ([`AwsAuthorizer`]) with the vault store's credential provider.
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

use base64ct::Encoding;
use bytes::Bytes;
use futures::StreamExt;
use http::{Method, Request, Uri};
use md5::{Digest, Md5};
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey, AwsAuthorizer, AwsCredentialProvider};
use object_store::client::{HttpClient, HttpRequestBody, HttpResponse};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tresor::versions::{OldVersions, Residue};
use tresor::{Error, Result};

/// Keys per DeleteObjects request at most: S3's limit.
pub const DELETE_BATCH: usize = 1000;
/// Attempts per request on connection failures and 5xx/429 answers.
const ATTEMPTS: u32 = 4;
/// Largest answer body read (a page of 1,000 versions, or the result of deleting 1,000, is well
/// under 1 MiB): a store cannot make tresor buffer more.
const MAX_BODY: usize = 8 << 20;
/// Query values are sent with everything but `A-Z a-z 0-9 - _ . ~` percent-encoded (what SigV4's
/// canonical form uses; the signer re-encodes them the same way).
const QUERY: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// Access to the versions of one S3 bucket: where it is, how to reach it and how to sign for it.
/// `Debug` shows the host and region only.
pub struct S3Versions {
    /// The bucket's URL (`https://s3.REGION.amazonaws.com/BUCKET`, `ENDPOINT/BUCKET`, ...), without
    /// a trailing slash.
    base: String,
    /// The host the URL names, for messages.
    host: String,
    /// Whether `base` has a path (`/BUCKET`, path-style): requests to the bucket go to `base`
    /// itself, else to `base/`.
    has_path: bool,
    region: String,
    credentials: AwsCredentialProvider,
    client: HttpClient,
    /// An S3 Express One Zone directory bucket, which does not support versioning.
    directory_bucket: bool,
    /// `max-keys` of listings; `None` is the store's default (1000 on S3).
    page_size: Option<usize>,
    /// Keys per DeleteObjects request.
    delete_batch: usize,
}

impl fmt::Debug for S3Versions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Versions").field("host", &self.host).field("region", &self.region).finish()
    }
}

impl S3Versions {
    /// The versions of the bucket `store` was built for by `builder` (the builder before
    /// `build()`), reached through `client`. Addresses the bucket as object_store does:
    /// `ENDPOINT/BUCKET` (path-style) with an endpoint, `ENDPOINT` as is with
    /// `AWS_VIRTUAL_HOSTED_STYLE_REQUEST=true`; without an endpoint
    /// `https://s3.REGION.amazonaws.com/BUCKET`, or `https://BUCKET.s3.REGION.amazonaws.com`
    /// virtual-hosted. Signs with `store`'s credential provider.
    pub fn new(builder: &AmazonS3Builder, store: &AmazonS3, client: HttpClient) -> Result<S3Versions> {
        let flag = |key: AmazonS3ConfigKey| {
            builder.get_config_value(&key).is_some_and(|v| crate::s3::parse_bool(&v) == Some(true))
        };
        let bucket = builder
            .get_config_value(&AmazonS3ConfigKey::Bucket)
            .ok_or_else(|| Error::Invalid("no S3 bucket name".to_string()))?;
        let region = builder
            .get_config_value(&AmazonS3ConfigKey::Region)
            .unwrap_or_else(|| crate::s3::DEFAULT_REGION.into());
        let endpoint = builder
            .get_config_value(&AmazonS3ConfigKey::S3Endpoint)
            .or_else(|| builder.get_config_value(&AmazonS3ConfigKey::Endpoint));
        let base = match (endpoint, flag(AmazonS3ConfigKey::VirtualHostedStyleRequest)) {
            (Some(endpoint), true) => endpoint.trim_end_matches('/').to_string(),
            (Some(endpoint), false) => format!("{}/{bucket}", endpoint.trim_end_matches('/')),
            (None, true) => format!("https://{bucket}.s3.{region}.amazonaws.com"),
            (None, false) => format!("https://s3.{region}.amazonaws.com/{bucket}"),
        };
        let uri: Uri = base
            .parse()
            .map_err(|e| Error::Invalid(format!("the S3 bucket URL for `{bucket}` is not a URL: {e}")))?;
        let host = uri.host().unwrap_or_default().to_string();
        let has_path = !matches!(uri.path(), "" | "/");
        Ok(S3Versions {
            base,
            host,
            has_path,
            region,
            credentials: Arc::clone(store.credentials()),
            client,
            directory_bucket: flag(AmazonS3ConfigKey::S3Express),
            page_size: None,
            delete_batch: DELETE_BATCH,
        })
    }

    /// Lists at most `n` versions per request (at least 1) instead of the store's default: small
    /// pages exercise pagination in tests.
    pub fn with_page_size(mut self, n: usize) -> S3Versions {
        self.page_size = Some(n.max(1));
        self
    }

    /// Deletes at most `n` versions per DeleteObjects request (1 to [`DELETE_BATCH`]) instead of
    /// S3's maximum: small batches exercise batching in tests.
    pub fn with_delete_batch(mut self, n: usize) -> S3Versions {
        self.delete_batch = n.clamp(1, DELETE_BATCH);
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
        let versioning = match self.versioning().await? {
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
            self.remove_under(prefix, &mut tally).await?;
        }
        let remaining = match self.count(key_prefixes).await? {
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
                match r.status {
                    Some(status) => {
                        format!("{} refused for {n} version{s}: {} (HTTP {status})", r.operation, r.code)
                    }
                    None => format!("{} refused for {n} version{s}: {}", r.operation, r.code),
                }
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
    async fn versioning(&self) -> Result<Answer<VersioningConfiguration>> {
        match self.send("GetBucketVersioning", Method::GET, &[("versioning", "")], None).await? {
            Ok(body) => Ok(Ok(parse("GetBucketVersioning", &body)?)),
            Err(refusal) => Ok(Err(refusal)),
        }
    }

    /// One page of ListObjectVersions under `prefix`, after `marker`.
    async fn list_page(&self, prefix: &str, marker: Option<&Entry>) -> Result<Answer<Page>> {
        let max_keys = self.page_size.map(|n| n.to_string());
        let mut params = vec![("versions", ""), ("prefix", prefix)];
        if let Some(n) = &max_keys {
            params.push(("max-keys", n));
        }
        if let Some(m) = marker {
            params.push(("key-marker", &m.key));
            params.push(("version-id-marker", &m.version_id));
        }
        let body = match self.send("ListObjectVersions", Method::GET, &params, None).await? {
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

    /// Deletes every version and delete marker under `prefix`, page by page, each page in
    /// DeleteObjects batches.
    ///
    /// The entry a page's next markers name is deleted only after the next page was listed:
    /// moto (unlike S3) finds the place to continue by looking the marker's version up, and lists
    /// nothing more once it is gone.
    async fn remove_under(&self, prefix: &str, tally: &mut Tally) -> Result<()> {
        let mut marker: Option<Entry> = None;
        let mut seen = HashSet::new();
        loop {
            let page = match self.list_page(prefix, marker.as_ref()).await? {
                Ok(page) => page,
                Err(refusal) => {
                    tally.list_refused.get_or_insert(refusal);
                    return Ok(());
                }
            };
            let next =
                page.next.clone().map(|next| next_marker(&mut seen, marker.as_ref(), next)).transpose()?;
            let mut batch: Vec<Entry> =
                page.entries.into_iter().filter(|e| Some(e) != page.next.as_ref()).collect();
            batch.extend(marker.take());
            for chunk in batch.chunks(self.delete_batch) {
                self.delete_versions(chunk, tally).await?;
            }
            match next {
                Some(next) => marker = Some(next),
                None => return Ok(()),
            }
        }
    }

    /// One DeleteObjects request for `entries` (at most the batch size), its outcome added to
    /// `tally`: removed, gone already (not counted), or refused with the store's code.
    async fn delete_versions(&self, entries: &[Entry], tally: &mut Tally) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let request = DeleteRequest {
            xmlns: "http://s3.amazonaws.com/doc/2006-03-01/",
            quiet: false,
            objects: entries.iter().map(|e| ObjectId { key: &e.key, version_id: &e.version_id }).collect(),
        };
        let body = quick_xml::se::to_string(&request)
            .map_err(|e| Error::store(format!("S3 DeleteObjects: cannot write the request: {e}")))?;
        let body =
            match self.send("DeleteObjects", Method::POST, &[("delete", "")], Some(Bytes::from(body))).await?
            {
                Ok(body) => body,
                Err(refusal) => {
                    *tally.refused.entry(refusal).or_default() += entries.len();
                    return Ok(());
                }
            };
        let result: DeleteResult = parse("DeleteObjects", &body)?;
        tally.removed += result.deleted.len();
        for error in result.errors {
            // Gone already (removed by someone else): nothing left, nothing removed here.
            if matches!(error.code.as_str(), "NoSuchVersion" | "NoSuchKey") {
                continue;
            }
            let refusal = Refusal { operation: "DeleteObjects", code: clean_code(error.code), status: None };
            *tally.refused.entry(refusal).or_default() += 1;
        }
        Ok(())
    }

    /// How many versions and delete markers are listed under `key_prefixes`.
    async fn count(&self, key_prefixes: &[String]) -> Result<Answer<usize>> {
        let mut n = 0;
        for prefix in key_prefixes {
            let mut marker: Option<Entry> = None;
            let mut seen = HashSet::new();
            loop {
                let page = match self.list_page(prefix, marker.as_ref()).await? {
                    Ok(page) => page,
                    Err(refusal) => return Ok(Err(refusal)),
                };
                n += page.entries.len();
                match page.next {
                    Some(next) => marker = Some(next_marker(&mut seen, marker.as_ref(), next)?),
                    None => break,
                }
            }
        }
        Ok(Ok(n))
    }

    /// Sends one signed request to the bucket with `params` as its query: the answer's body, or
    /// the store's refusal. Connection failures, 5xx and 429 are retried; they are errors once
    /// attempts run out.
    async fn send(
        &self,
        operation: &'static str,
        method: Method,
        params: &[(&str, &str)],
        body: Option<Bytes>,
    ) -> Result<Answer<Bytes>> {
        let query: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{}={}", utf8_percent_encode(k, QUERY), utf8_percent_encode(v, QUERY)))
            .collect();
        let slash = if self.has_path { "" } else { "/" };
        let url = format!("{}{slash}?{}", self.base, query.join("&"));
        let uri: Uri = url
            .parse()
            .map_err(|e| Error::store(format!("S3 {operation}: cannot form a request URL: {e}")))?;
        let content_md5 = body.as_ref().map(|b| base64ct::Base64::encode_string(&Md5::digest(b)));
        let mut delay = Duration::from_millis(100);
        let mut attempt = 1;
        loop {
            let credential = self.credentials.get_credential().await.map_err(|e| {
                Error::store(format!("S3 {operation}: cannot get credentials for {}: {e}", self.host))
            })?;
            let mut builder = Request::builder().method(method.clone()).uri(uri.clone());
            if let Some(md5) = &content_md5 {
                builder =
                    builder.header("content-md5", md5.as_str()).header("content-type", "application/xml");
            }
            let mut request = builder
                .body(body.clone().map_or_else(HttpRequestBody::empty, HttpRequestBody::from))
                .map_err(|e| Error::store(format!("S3 {operation}: cannot form a request: {e}")))?;
            AwsAuthorizer::new(&credential, "s3", &self.region)
                .try_authorize(&mut request, None)
                .map_err(|e| Error::store(format!("S3 {operation}: cannot sign the request: {e}")))?;
            let failure = match self.client.execute(request).await {
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
                                status: Some(status.as_u16()),
                            }));
                        }
                        Err(e) => e,
                    }
                }
                Err(e) => crate::credentials::chain(&e),
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

#[async_trait::async_trait]
impl OldVersions for S3Versions {
    async fn purge(&self, key_prefixes: &[String]) -> Result<Residue> {
        S3Versions::purge(self, key_prefixes).await
    }
}

/// The body of `response`, chunk by chunk, refused once it passes `cap` bytes.
async fn read_capped(response: HttpResponse, cap: usize) -> std::result::Result<Bytes, String> {
    let mut stream = response.into_body().bytes_stream();
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| crate::credentials::chain(&e))?;
        if body.len() + chunk.len() > cap {
            return Err(format!("the answer is larger than {cap} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(body))
}

/// An answer of the store: what was asked, or its refusal.
type Answer<T> = std::result::Result<T, Refusal>;

/// The store's refusal of a request (an S3 error answer other than 5xx/429), or of one key of a
/// DeleteObjects request (no HTTP status of its own).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Refusal {
    operation: &'static str,
    /// The S3 error code (`AccessDenied`, ...), or a note that the answer had none.
    code: String,
    status: Option<u16>,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} refused: {}", self.operation, self.code)?;
        match self.status {
            Some(status) => write!(f, " (HTTP {status})"),
            None => Ok(()),
        }
    }
}

/// What a purge did so far.
#[derive(Default)]
struct Tally {
    removed: usize,
    /// Refused deletes, by refusal: how many versions each.
    refused: BTreeMap<Refusal, usize>,
    /// The first refused listing.
    list_refused: Option<Refusal>,
}

/// Where a listing goes next: refused when the store sends it back to a place it listed already
/// (a cycle of markers, which would list and delete for ever) or to a key before the last one
/// (S3 lists keys in order), so a listing always moves on.
fn next_marker(seen: &mut HashSet<Entry>, last: Option<&Entry>, next: Entry) -> Result<Entry> {
    if last.is_some_and(|last| next.key < last.key) || !seen.insert(next.clone()) {
        return Err(Error::store("S3 ListObjectVersions led back to a place it had listed already"));
    }
    Ok(next)
}

/// One version or delete marker.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Entry {
    key: String,
    version_id: String,
}

/// One page of a listing, and where the next one starts.
struct Page {
    entries: Vec<Entry>,
    next: Option<Entry>,
}

/// `<Delete>`: the body of DeleteObjects.
#[derive(serde::Serialize)]
#[serde(rename = "Delete")]
struct DeleteRequest<'a> {
    #[serde(rename = "@xmlns")]
    xmlns: &'static str,
    /// `false`: the answer lists what was deleted too, so that `Removed` counts what the store
    /// says it removed.
    #[serde(rename = "Quiet")]
    quiet: bool,
    #[serde(rename = "Object")]
    objects: Vec<ObjectId<'a>>,
}

/// `<Object>` of a `<Delete>`.
#[derive(serde::Serialize)]
struct ObjectId<'a> {
    #[serde(rename = "Key")]
    key: &'a str,
    #[serde(rename = "VersionId")]
    version_id: &'a str,
}

/// `<DeleteResult>`: what was deleted, and what was not with its code.
#[derive(serde::Deserialize)]
struct DeleteResult {
    #[serde(rename = "Deleted", default)]
    deleted: Vec<Deleted>,
    #[serde(rename = "Error", default)]
    errors: Vec<XmlError>,
}

/// A `<Deleted>` entry (its contents are not needed: it counts).
#[derive(serde::Deserialize)]
struct Deleted {}

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
    #[serde(rename = "Code", default)]
    code: String,
}

fn parse<T: serde::de::DeserializeOwned>(operation: &str, body: &[u8]) -> Result<T> {
    let text = std::str::from_utf8(body)
        .map_err(|_| Error::store(format!("S3 {operation} answered something that is not UTF-8")))?;
    quick_xml::de::from_str(text)
        .map_err(|e| Error::store(format!("S3 {operation} answered XML that does not parse: {e}")))
}

/// An S3 error code as shown: the code if it looks like one, else a note that there was none.
fn clean_code(code: String) -> String {
    if !code.is_empty() && code.chars().all(|c| c.is_ascii_alphanumeric() || c == '.') {
        code
    } else {
        "no S3 error code".to_string()
    }
}

/// The S3 error code of an error answer's body.
fn error_code(body: &[u8]) -> String {
    clean_code(parse::<XmlError>("", body).map(|e| e.code).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use object_store::client::{HttpConnector, ReqwestConnector};

    #[test]
    fn listings_results_and_errors_parse() {
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
        let d: DeleteResult = parse(
            "test",
            br#"<DeleteResult><Deleted><Key>a</Key><VersionId>1</VersionId></Deleted>
                <Error><Key>b</Key><VersionId>2</VersionId><Code>AccessDenied</Code><Message>no</Message></Error>
                <Deleted><Key>c</Key><VersionId>3</VersionId><DeleteMarker>true</DeleteMarker></Deleted>
              </DeleteResult>"#,
        )
        .unwrap();
        assert_eq!(d.deleted.len(), 2);
        assert_eq!(d.errors.iter().map(|e| e.code.as_str()).collect::<Vec<_>>(), ["AccessDenied"]);
        let d: DeleteResult = parse("test", b"<DeleteResult/>").unwrap();
        assert!(d.deleted.is_empty() && d.errors.is_empty());
        assert_eq!(
            error_code(b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"),
            "AccessDenied"
        );
        assert_eq!(error_code(b""), "no S3 error code");
        assert_eq!(error_code(b"<Error><Code>a b</Code></Error>"), "no S3 error code");
        assert!(parse::<ListVersionsResult>("test", b"<ListVersionsResult><Version>").is_err());
    }

    #[test]
    fn delete_requests_are_xml_with_every_key_and_version() {
        let request = DeleteRequest {
            xmlns: "http://s3.amazonaws.com/doc/2006-03-01/",
            quiet: false,
            objects: vec![
                ObjectId { key: "v/blob/0000000001/a", version_id: "1" },
                ObjectId { key: "a&b<c", version_id: "x\"y" },
            ],
        };
        let xml = quick_xml::se::to_string(&request).unwrap();
        assert_eq!(
            xml,
            "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Quiet>false</Quiet>\
             <Object><Key>v/blob/0000000001/a</Key><VersionId>1</VersionId></Object>\
             <Object><Key>a&amp;b&lt;c</Key><VersionId>x\"y</VersionId></Object></Delete>"
        );
    }

    #[test]
    fn bucket_urls_as_object_store_forms_them() {
        crate::install_tls_provider();
        let client = || ReqwestConnector::default().connect(&object_store::ClientOptions::new()).unwrap();
        let url = |b: AmazonS3Builder| {
            let b = b.with_bucket_name("bkt");
            let s = b.clone().build().unwrap();
            S3Versions::new(&b, &s, client()).unwrap().base
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
        let shown = format!("{:?}", S3Versions::new(&b, &s, client()).unwrap());
        assert!(shown.contains("s3.r.amazonaws.com") && !shown.contains("credentials"), "{shown}");
    }

    fn entry(key: &str, version_id: &str) -> Entry {
        Entry { key: key.into(), version_id: version_id.into() }
    }

    #[test]
    fn a_listing_that_cycles_or_goes_back_is_refused_not_followed_for_ever() {
        let mut seen = HashSet::new();
        let a = next_marker(&mut seen, None, entry("v/a", "1")).ok();
        let b = next_marker(&mut seen, a.as_ref(), entry("v/a", "2")).ok();
        assert!(b.is_some(), "another version of the same key moves on");
        let c = next_marker(&mut seen, b.as_ref(), entry("v/b", "1")).ok();
        assert!(c.is_some());
        // Back to a place listed already, and back to an earlier key.
        assert!(next_marker(&mut seen, c.as_ref(), entry("v/a", "2")).is_err());
        assert!(next_marker(&mut seen, c.as_ref(), entry("v/a", "9")).is_err());
        assert!(next_marker(&mut seen, c.as_ref(), entry("v/b", "1")).is_err());
    }
}
