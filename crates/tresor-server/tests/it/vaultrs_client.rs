//! vaultrs, the Rust Vault client, unchanged against a real `tresor server` on a loopback port:
//! KV v2 (write, read, versions, list, metadata, delete), tokens with a policy (a token reads its
//! own prefix and is refused the rest), transit (encrypt, decrypt, a tampered ciphertext), and
//! the seal status — each answer checked against what was sent.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

use super::http::{Running, start};
use serde_json::{Value, json};
use std::collections::HashMap;
use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};
use vaultrs::error::ClientError;

fn client(s: &Running, token: &str) -> VaultClient {
    // reqwest is built without a provider of its own here: ring, as everywhere in tresor.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let settings = VaultClientSettingsBuilder::default()
        .address(format!("http://{}", s.addr))
        .token(token)
        .build()
        .unwrap();
    VaultClient::new(settings).unwrap()
}

/// The HTTP status of a refused call: an error body (`{"errors": [...]}`), or a body vaultrs does
/// not read as one (a deleted version's 404 carries its metadata, as Vault's does).
fn status(e: ClientError) -> u16 {
    match e {
        ClientError::APIError { code, .. } => code,
        ClientError::RestClientError {
            source: rustify::errors::ClientError::ServerResponseError { code, .. },
        } => code,
        other => panic!("not an answer from the server: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vaultrs_works_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let root = client(&s, &s.token);

    let status_now = vaultrs::sys::status(&root).await.unwrap();
    assert!(matches!(status_now, vaultrs::sys::ServerStatus::OK), "{status_now:?}");

    // KV v2: versions, reads by version, list, metadata, delete.
    let first = HashMap::from([("password", "hunter2")]);
    let written = vaultrs::kv2::set(&root, "secret", "app/db", &first).await.unwrap();
    assert_eq!(written.version, 1);
    let second = HashMap::from([("password", "correct horse")]);
    assert_eq!(vaultrs::kv2::set(&root, "secret", "app/db", &second).await.unwrap().version, 2);
    let now: HashMap<String, String> = vaultrs::kv2::read(&root, "secret", "app/db").await.unwrap();
    assert_eq!(now["password"], "correct horse");
    let then: HashMap<String, String> =
        vaultrs::kv2::read_version(&root, "secret", "app/db", 1).await.unwrap();
    assert_eq!(then["password"], "hunter2");
    vaultrs::kv2::set(&root, "secret", "other/key", &HashMap::from([("k", "v")])).await.unwrap();
    let mut top = vaultrs::kv2::list(&root, "secret", "").await.unwrap();
    top.sort();
    assert_eq!(top, ["app/", "other/"]);
    assert_eq!(vaultrs::kv2::list(&root, "secret", "app").await.unwrap(), ["db"]);
    let meta = vaultrs::kv2::read_metadata(&root, "secret", "app/db").await.unwrap();
    assert_eq!(meta.current_version, 2);
    assert_eq!(meta.versions.len(), 2);
    vaultrs::kv2::delete_latest(&root, "secret", "app/db").await.unwrap();
    let gone = vaultrs::kv2::read::<Value>(&root, "secret", "app/db").await.unwrap_err();
    assert_eq!(status(gone), 404);
    let missing = vaultrs::kv2::read::<Value>(&root, "secret", "never/written").await.unwrap_err();
    assert_eq!(status(missing), 404);

    // A token with a policy for its own prefix.
    let policy = r#"path "secret/data/agents/a/*" { capabilities = ["create", "read", "update"] }"#;
    vaultrs::sys::policy::set(&root, "agent-a", policy).await.unwrap();
    assert_eq!(vaultrs::sys::policy::read(&root, "agent-a").await.unwrap().rules, policy);
    assert!(vaultrs::sys::policy::list(&root).await.unwrap().policies.contains(&"agent-a".to_string()));
    let bad = vaultrs::sys::policy::set(&root, "broken", "path {").await.unwrap_err();
    assert_eq!(status(bad), 400);
    let mut opts = vaultrs::api::token::requests::CreateTokenRequest::builder();
    opts.policies(vec!["agent-a".to_string()]).ttl("1h");
    let auth = vaultrs::token::new(&root, Some(&mut opts)).await.unwrap();
    assert!(auth.policies.contains(&"agent-a".to_string()), "{:?}", auth.policies);
    let agent = client(&s, &auth.client_token);
    let looked = vaultrs::token::lookup_self(&agent).await.unwrap();
    assert_eq!(looked.accessor, auth.accessor);
    vaultrs::kv2::set(&agent, "secret", "agents/a/key", &HashMap::from([("k", "mine")])).await.unwrap();
    let mine: HashMap<String, String> = vaultrs::kv2::read(&agent, "secret", "agents/a/key").await.unwrap();
    assert_eq!(mine["k"], "mine");
    let refused = vaultrs::kv2::read::<Value>(&agent, "secret", "other/key").await.unwrap_err();
    assert_eq!(status(refused), 403);
    let refused = vaultrs::kv2::set(&agent, "secret", "agents/b/key", &json!({"k": "x"})).await.unwrap_err();
    assert_eq!(status(refused), 403);
    vaultrs::token::revoke(&root, &auth.client_token).await.unwrap();
    let revoked = vaultrs::kv2::read::<Value>(&agent, "secret", "agents/a/key").await.unwrap_err();
    assert_eq!(status(revoked), 403);

    // Transit: a round trip, and a ciphertext changed in transit is refused.
    use base64ct::Encoding;
    let plaintext = base64ct::Base64::encode_string(b"attack at dawn");
    let sealed = vaultrs::transit::data::encrypt(&root, "transit", "orders", &plaintext, None).await.unwrap();
    assert!(sealed.ciphertext.starts_with("vault:v1:"), "{}", sealed.ciphertext);
    let opened =
        vaultrs::transit::data::decrypt(&root, "transit", "orders", &sealed.ciphertext, None).await.unwrap();
    assert_eq!(opened.plaintext, plaintext);
    let mut tampered = sealed.ciphertext.clone().into_bytes();
    let last = tampered.len() - 3;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let refused =
        vaultrs::transit::data::decrypt(&root, "transit", "orders", &tampered, None).await.unwrap_err();
    assert_eq!(status(refused), 400);
    s.stop().await;
}
