//! Temporary credentials through aws-config's real providers are renewed before they expire:
//! container credentials (`AWS_CONTAINER_CREDENTIALS_FULL_URI`) from a credentials endpoint this
//! test serves on 127.0.0.1, which hands out short-lived keys and counts the requests.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

use object_store::CredentialProvider;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tresor_backend::BackendConfig;
use tresor_backend::s3::S3Settings;

/// Serves container credentials valid for `lifetime`, `KEY<n>` for the n-th request (from 1).
async fn credentials_endpoint(lifetime: Duration) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/credentials", listener.local_addr().unwrap());
    let served = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&served);
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else { return };
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let n = count.fetch_add(1, Ordering::SeqCst) + 1;
            let expiration =
                (chrono::Utc::now() + lifetime).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let body = format!(
                "{{\"AccessKeyId\": \"KEY{n}\", \"SecretAccessKey\": \"SECRET-MUST-NOT-SHOW\", \
                 \"Token\": \"TOKEN-MUST-NOT-SHOW\", \"Expiration\": \"{expiration}\"}}"
            );
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
            let _ = socket.shutdown().await;
        }
    });
    (url, served)
}

fn container_config(url: &str, home: &std::path::Path) -> BackendConfig {
    BackendConfig::default()
        .with_var("HOME", home.to_str().unwrap())
        .with_var("AWS_EC2_METADATA_DISABLED", "true")
        .with_var("AWS_CONTAINER_CREDENTIALS_FULL_URI", url)
}

#[tokio::test]
async fn container_credentials_are_renewed_before_they_expire() {
    let home = tempfile::tempdir().unwrap();
    // Four seconds: kept for two (half their lifetime, as that is below five minutes).
    let (url, served) = credentials_endpoint(Duration::from_secs(4)).await;
    let settings = S3Settings::resolve(&container_config(&url, home.path())).await.unwrap();
    assert_eq!(served.load(Ordering::SeqCst), 0, "nothing is asked for before the first request");
    let credentials = settings.credentials();
    let first = credentials.get_credential().await.unwrap();
    assert_eq!(first.key_id, "KEY1");
    assert_eq!(first.token.as_deref(), Some("TOKEN-MUST-NOT-SHOW"));
    for _ in 0..10 {
        assert_eq!(credentials.get_credential().await.unwrap().key_id, "KEY1");
    }
    assert_eq!(served.load(Ordering::SeqCst), 1, "kept while fresh");
    assert!(credentials.source().await.unwrap().contains("CredentialsHttp"));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(credentials.get_credential().await.unwrap().key_id, "KEY2", "renewed before expiry");
    assert_eq!(served.load(Ordering::SeqCst), 2);
    let shown = format!("{settings:?} {first:?}");
    assert!(!shown.contains("SECRET-MUST-NOT-SHOW") && !shown.contains("TOKEN-MUST-NOT-SHOW"), "{shown}");

    // Long-lived ones are asked for once.
    let (url, served) = credentials_endpoint(Duration::from_secs(3600)).await;
    let settings = S3Settings::resolve(&container_config(&url, home.path())).await.unwrap();
    for _ in 0..5 {
        assert_eq!(settings.credentials().get_credential().await.unwrap().key_id, "KEY1");
    }
    assert_eq!(served.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn no_credentials_anywhere_is_an_error_at_the_first_request() {
    let home = tempfile::tempdir().unwrap();
    let config = BackendConfig::default()
        .with_var("HOME", home.path().to_str().unwrap())
        .with_var("AWS_EC2_METADATA_DISABLED", "true");
    let settings = S3Settings::resolve(&config).await.unwrap();
    let e = settings.credentials().get_credential().await.unwrap_err().to_string();
    assert!(e.contains("cannot get AWS credentials"), "{e}");
}
