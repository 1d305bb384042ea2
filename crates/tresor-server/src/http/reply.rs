//! What the server answers: Vault's response envelope, its error body, and the one place where
//! the core's errors become HTTP statuses (VAULT-API.md §1).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tresor::{Category, Error};

/// A JSON body with exactly `application/json` (hvac reads `errors` only then).
pub(crate) fn json(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// 204, no body.
pub(crate) fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// Vault's envelope with no data and one warning: 202 for an operation it started in the
/// background (a tidy), 200 for one it did not start (a tidy already running).
pub(crate) fn warning(status: StatusCode, warning: &str) -> Response {
    let mut body = envelope(Value::Null, "");
    body["warnings"] = json!([warning]);
    json(status, &body)
}

/// 200 with Vault's envelope around `data`; every key is always present.
pub(crate) fn ok(data: Value, mount_type: &str) -> Response {
    // Written straight from the envelope's fields: no map of the envelope is built first.
    let body = serde_json::to_string(&Envelope::around(&data, mount_type)).unwrap_or_default();
    let mut response = (StatusCode::OK, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Vault's response envelope, as a JSON value (for handlers that add `auth` or `wrap_info`).
pub(crate) fn envelope(data: Value, mount_type: &str) -> Value {
    serde_json::to_value(Envelope::around(&data, mount_type)).unwrap_or(Value::Null)
}

/// Vault's response envelope, its keys in the order `json!` would sort them.
#[derive(serde::Serialize)]
struct Envelope<'a> {
    auth: Option<()>,
    data: &'a Value,
    lease_duration: u64,
    lease_id: &'static str,
    mount_type: &'a str,
    renewable: bool,
    request_id: String,
    warnings: Option<()>,
    wrap_info: Option<()>,
}

impl<'a> Envelope<'a> {
    fn around(data: &'a Value, mount_type: &'a str) -> Envelope<'a> {
        Envelope {
            auth: None,
            data,
            lease_duration: 0,
            lease_id: "",
            mount_type,
            renewable: false,
            request_id: request_id(),
            warnings: None,
            wrap_info: None,
        }
    }
}

/// Random bytes for request ids, drawn from the operating system 32 ids at a time.
struct IdPool {
    bytes: [u8; 512],
    used: usize,
}

/// A random request id, a UUID of version 4 (what clients log). Ids are not secret: they come
/// from a small pool per thread, one system call per 32 ids rather than one per request.
fn request_id() -> String {
    thread_local! {
        static POOL: std::cell::RefCell<IdPool> = const {
            std::cell::RefCell::new(IdPool { bytes: [0; 512], used: 512 })
        };
    }
    let mut b = POOL.with_borrow_mut(|pool| {
        if pool.used == pool.bytes.len() {
            // Should the system's random source fail, ids are zeros (as before there was a
            // pool), never the bytes of ids already given.
            pool.bytes = tresor_crypto::random_array::<512>().unwrap_or([0; 512]);
            pool.used = 0;
        }
        let mut b = [0u8; 16];
        b.copy_from_slice(&pool.bytes[pool.used..pool.used + 16]);
        pool.used += 16;
        b
    });
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// A request refused or failed: its status and messages (`{"errors": [...]}`).
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) messages: Vec<String>,
}

impl ApiError {
    /// 404 with no message: how Vault answers a read of nothing, or an empty list.
    pub(crate) fn not_found() -> ApiError {
        ApiError { status: StatusCode::NOT_FOUND, messages: Vec::new() }
    }

    /// 403: no token, an unknown one, or a token without the capability (Vault never answers 401).
    pub(crate) fn denied() -> ApiError {
        ApiError::with(StatusCode::FORBIDDEN, "permission denied")
    }

    /// 429: too many failed authentications from this address.
    pub(crate) fn too_many() -> ApiError {
        ApiError::with(
            StatusCode::TOO_MANY_REQUESTS,
            "too many failed authentications from this address; try again later",
        )
    }

    /// 503: the vault is sealed.
    pub(crate) fn sealed() -> ApiError {
        ApiError::with(StatusCode::SERVICE_UNAVAILABLE, "Vault is sealed")
    }

    /// 400: the request itself is wrong.
    pub(crate) fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::with(StatusCode::BAD_REQUEST, message)
    }

    /// 405: no such operation on this path.
    pub(crate) fn method() -> ApiError {
        ApiError::with(StatusCode::METHOD_NOT_ALLOWED, "unsupported operation")
    }

    /// 500: the server failed (the detail stays in its log; the client learns the kind).
    pub(crate) fn internal(message: impl Into<String>) -> ApiError {
        ApiError::with(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// `status` with one message.
    pub(crate) fn with(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, messages: vec![message.into()] }
    }
}

/// The core's errors as HTTP statuses, by category: the only such mapping in the server.
impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        match e.category() {
            Category::NotFound => ApiError::not_found(),
            Category::Invalid => ApiError::invalid(e.to_string()),
            Category::Conflict => match e {
                Error::Conflict(_) => {
                    ApiError::invalid("check-and-set parameter did not match the current version")
                }
                e => ApiError::with(StatusCode::CONFLICT, e.to_string()),
            },
            Category::Locked => ApiError::sealed(),
            Category::Auth => ApiError::denied(),
            Category::Unsupported => ApiError::with(StatusCode::NOT_IMPLEMENTED, e.to_string()),
            Category::Indeterminate => {
                ApiError::internal("the store failed after the write was sent: it may or may not have landed")
            }
            Category::Audit => ApiError::internal("the audit record could not be written: nothing was done"),
            Category::Integrity | Category::Identity => {
                tracing::error!("the vault failed an integrity check: {e}");
                ApiError::internal(
                    "the store failed an integrity check; the operator must look at the server's log",
                )
            }
            _ => {
                tracing::error!("request failed: {e}");
                ApiError::internal("internal error")
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json(self.status, &json!({ "errors": self.messages }))
    }
}

/// Milliseconds since the epoch as RFC 3339 (what Vault's `created_time` looks like); "" for none.
pub(crate) fn time(ms: Option<u64>) -> String {
    ms.and_then(|ms| i64::try_from(ms).ok())
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_distinct_version_4_uuids_past_a_pool_refill() {
        let ids: Vec<String> = (0..100).map(|_| request_id()).collect();
        for id in &ids {
            let groups: Vec<&str> = id.split('-').collect();
            assert_eq!(groups.iter().map(|g| g.len()).collect::<Vec<_>>(), [8, 4, 4, 4, 12], "{id}");
            assert!(id.chars().all(|c| c == '-' || c.is_ascii_hexdigit()), "{id}");
            assert!(groups[2].starts_with('4'), "version 4: {id}");
            assert!(matches!(&groups[3][..1], "8" | "9" | "a" | "b"), "variant 1: {id}");
        }
        let distinct: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
    }

    #[test]
    fn the_envelope_holds_every_key_vault_clients_read() {
        let body = envelope(json!({ "a": 1 }), "kv");
        let keys: Vec<&str> =
            body.as_object().map(|m| m.keys().map(String::as_str).collect()).unwrap_or_default();
        assert_eq!(
            keys,
            [
                "auth",
                "data",
                "lease_duration",
                "lease_id",
                "mount_type",
                "renewable",
                "request_id",
                "warnings",
                "wrap_info"
            ]
        );
        assert_eq!(body["data"]["a"], 1);
        assert_eq!(body["mount_type"], "kv");
        assert_eq!(body["lease_id"], "");
        assert!(body["auth"].is_null() && body["warnings"].is_null() && body["wrap_info"].is_null());
    }
}
