//! `tresor relay`: a store-and-forward relay for sync groups that knows only cells and
//! mailboxes (ARCHITECTURE.md, "Sharing and sync through a relay"). No accounts, no listing, no
//! names: members upload whole 1,024-byte cells, a power of two at a time, to a mailbox id and
//! download them by position. It logs counts, never a mailbox id.
//!
//! ```text
//! POST /v1/relay/<mailbox hex>            body: cells → {"length": n}
//! GET  /v1/relay/<mailbox hex>?from=N     → cells N.. (at most 1,024), header x-tresor-length
//! GET  /v1/relay/health                   → {"relay": "tresor"}
//! ```

pub mod store;

use crate::http::listen::{self, TlsFiles};
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use std::sync::Arc;
use store::{CellStore, MAX_FETCH_CELLS, Mailbox, RelayStoreError};
use tresor_crypto::cell::CELL_LEN;

/// Most cells one upload carries.
pub const MAX_UPLOAD_CELLS: usize = 1024;

/// How long an upload's body may take to arrive once its headers have: a client that announces a
/// body and stops sending must not hold its connection (one of a bounded number) for ever.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// The header a download names the mailbox's length in (cells).
pub const LENGTH_HEADER: &str = "x-tresor-length";

/// How a relay runs.
pub struct RelaySettings {
    /// The directory it keeps cells in.
    pub data: std::path::PathBuf,
    /// Serve HTTPS with this certificate and key.
    pub tls: Option<TlsFiles>,
    /// How much it keeps in all.
    pub quota: store::Quota,
}

/// Why the relay could not start.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The data directory cannot be used.
    #[error("{0}")]
    Data(String),
    /// The TLS certificate or key could not be used.
    #[error("TLS: {0}")]
    Tls(String),
}

/// Serves the relay on `listener` until `shutdown` resolves.
pub async fn launch(
    settings: RelaySettings,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), RelayError> {
    let store = CellStore::open(&settings.data, settings.quota)
        .map_err(|e| RelayError::Data(format!("{}: {e}", settings.data.display())))?;
    let (acceptor, reloader) = listen::start_tls(settings.tls.as_ref()).map_err(RelayError::Tls)?;
    listen::serve(listener, acceptor, router(Arc::new(store)), shutdown).await;
    if let Some(reloader) = reloader {
        reloader.abort();
    }
    Ok(())
}

/// The relay's routes over `store`.
fn router(store: Arc<CellStore>) -> Router {
    Router::new()
        .route("/v1/relay/health", get(|| async { axum::Json(serde_json::json!({"relay": "tresor"})) }))
        .route("/v1/relay/{mailbox}", get(download).post(upload))
        .fallback(|| async { refuse(StatusCode::NOT_FOUND, "no such route") })
        .with_state(store)
}

/// A `{"errors": [...]}` answer.
fn refuse(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "errors": [message] }))).into_response()
}

/// The mailbox id in a path: exactly 64 hex digits.
fn mailbox(text: &str) -> Option<Mailbox> {
    let mut id = [0u8; 32];
    (text.len() == 64 && hex::decode_to_slice(text, &mut id).is_ok()).then_some(id)
}

/// The answer to a mailbox id that is not one.
fn bad_mailbox() -> Response {
    refuse(StatusCode::BAD_REQUEST, "a mailbox id is 64 hex digits")
}

fn store_error(e: &RelayStoreError) -> Response {
    match e {
        RelayStoreError::Full => refuse(StatusCode::INSUFFICIENT_STORAGE, "the mailbox is full"),
        RelayStoreError::RelayFull(_) | RelayStoreError::TooManyMailboxes(_) => {
            tracing::warn!("an upload was refused: {e}");
            refuse(StatusCode::INSUFFICIENT_STORAGE, &e.to_string())
        }
        RelayStoreError::Io(e) => {
            tracing::error!("relay storage: {e}");
            refuse(StatusCode::INSUFFICIENT_STORAGE, "the relay could not store or read cells")
        }
    }
}

async fn upload(
    State(store): State<Arc<CellStore>>,
    Path(id): Path<String>,
    body: axum::body::Body,
) -> Response {
    let Some(mailbox) = mailbox(&id) else { return bad_mailbox() };
    let body =
        match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, MAX_UPLOAD_CELLS * CELL_LEN))
            .await
        {
            Ok(Ok(body)) => body,
            Ok(Err(_)) => {
                return refuse(StatusCode::PAYLOAD_TOO_LARGE, "the upload is too large or was cut off");
            }
            Err(_) => return refuse(StatusCode::REQUEST_TIMEOUT, "the upload took too long to arrive"),
        };
    let count = body.len() / CELL_LEN;
    if !body.len().is_multiple_of(CELL_LEN) || !count.is_power_of_two() || count > MAX_UPLOAD_CELLS {
        return refuse(
            StatusCode::BAD_REQUEST,
            "an upload is 1 to 1024 whole cells of 1024 bytes, a power of two",
        );
    }
    match tokio::task::spawn_blocking(move || store.append(&mailbox, &body)).await {
        Ok(Ok(length)) => {
            tracing::debug!("stored {count} cells");
            axum::Json(serde_json::json!({ "length": length })).into_response()
        }
        Ok(Err(e)) => store_error(&e),
        Err(_) => refuse(StatusCode::INTERNAL_SERVER_ERROR, "the upload was cut off"),
    }
}

/// A download's query.
#[derive(Deserialize)]
struct From {
    #[serde(default)]
    from: u64,
}

async fn download(
    State(store): State<Arc<CellStore>>,
    Path(id): Path<String>,
    query: Result<Query<From>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Some(mailbox) = mailbox(&id) else { return bad_mailbox() };
    let Ok(Query(From { from })) = query else {
        return refuse(StatusCode::BAD_REQUEST, "from is a cell position (a number)");
    };
    match tokio::task::spawn_blocking(move || store.fetch(&mailbox, from)).await {
        Ok(Ok((cells, length))) => {
            debug_assert!(cells.len() <= MAX_FETCH_CELLS as usize * CELL_LEN);
            let mut answer = (StatusCode::OK, cells).into_response();
            let headers = answer.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
            headers.insert(LENGTH_HEADER, HeaderValue::from(length));
            answer
        }
        Ok(Err(e)) => store_error(&e),
        Err(_) => refuse(StatusCode::INTERNAL_SERVER_ERROR, "the download was cut off"),
    }
}
