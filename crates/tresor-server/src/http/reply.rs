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

/// 200 with Vault's envelope around `data`; every key is always present.
pub(crate) fn ok(data: Value, mount_type: &str) -> Response {
    json(StatusCode::OK, &envelope(data, mount_type))
}

/// Vault's response envelope.
pub(crate) fn envelope(data: Value, mount_type: &str) -> Value {
    json!({
        "request_id": request_id(),
        "lease_id": "",
        "renewable": false,
        "lease_duration": 0,
        "data": data,
        "wrap_info": null,
        "warnings": null,
        "auth": null,
        "mount_type": mount_type,
    })
}

/// A random request id in UUID form (what clients log).
fn request_id() -> String {
    let b = tresor_crypto::random_array::<16>().unwrap_or_default();
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

    fn with(status: StatusCode, message: impl Into<String>) -> ApiError {
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
