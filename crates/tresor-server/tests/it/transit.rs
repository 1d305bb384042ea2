//! The transit mount and tresor's own key routes against what an attacker's review found: a
//! request that crashed the server, rotations and configurations that undid one another, a batch
//! that wrote one audit record per item, Vault features taken silently and not applied, a
//! setting sent as text and ignored, and a token allowed only to encrypt that could make keys.

use crate::http::{request, start};
use serde_json::{Value, json};
use std::net::SocketAddr;

/// A token whose only policy is `hcl` (named `name`).
async fn token_with(addr: SocketAddr, root: &str, name: &str, hcl: &str) -> String {
    let policy = json!({ "policy": hcl }).to_string();
    assert_eq!(
        request(addr, "PUT", &format!("/v1/sys/policies/acl/{name}"), Some(root), &policy).await.0,
        204
    );
    let body = json!({ "policies": [name] }).to_string();
    let (status, _, made) = request(addr, "POST", "/v1/auth/token/create", Some(root), &body).await;
    assert_eq!(status, 200, "{made}");
    made["auth"]["client_token"].as_str().unwrap().to_string()
}

/// The records of the audit trail with operation `op`.
async fn audited(addr: SocketAddr, root: &str, op: &str) -> Vec<Value> {
    let (status, _, trail) = request(addr, "GET", &format!("/v1/tresor/audit?op={op}"), Some(root), "").await;
    assert_eq!(status, 200, "{trail}");
    trail["data"]["records"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_epochs_destroy_with_no_number_crashed_the_server() {
    // `epochs/destroy` matched both "starts with epochs/" and "ends with /destroy", and the slice
    // between them ran backwards: a panic, and with panic=abort the whole server went down.
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let token = token_with(
        s.addr,
        &s.token,
        "epochs",
        r#"path "tresor/epochs/*" { capabilities = ["update", "sudo"] }"#,
    )
    .await;
    for path in
        ["epochs/destroy", "epochs//destroy", "epochs/%2Fdestroy", "epochs/+1/destroy", "epochs/01/destroy"]
    {
        let (status, kind, body) =
            request(s.addr, "POST", &format!("/v1/tresor/{path}"), Some(&token), "").await;
        assert!(status == 400 || status == 404, "{path}: {status} {body}");
        assert_eq!(kind, "application/json", "{path}");
    }
    assert_eq!(request(s.addr, "GET", "/v1/sys/health", None, "").await.0, 200);
    // Signing with no input is refused, as Vault does, instead of signing the empty message.
    let body = json!({ "path": "m/74'/0'/0'" }).to_string();
    let (status, _, answer) = request(s.addr, "POST", "/v1/tresor/keys/sign", Some(&s.token), &body).await;
    assert_eq!(status, 400, "{answer}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_concurrent_rotations_and_a_configuration_lost_or_undid_one_another() {
    // A change read the key, then its version, apart: a change landing between the two was
    // overwritten (a rotation lost, a raised min_decryption_version put back).
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let (addr, root) = (s.addr, s.token.clone());
    assert_eq!(request(addr, "POST", "/v1/transit/keys/k", Some(&root), "{}").await.0, 204);
    assert_eq!(request(addr, "POST", "/v1/transit/keys/k/rotate", Some(&root), "").await.0, 200);
    const ROTATIONS: u64 = 12;
    let mut tasks = Vec::new();
    for n in 0..=ROTATIONS {
        let root = root.clone();
        tasks.push(tokio::spawn(async move {
            if n == ROTATIONS {
                let body = r#"{"min_decryption_version":2}"#;
                request(addr, "POST", "/v1/transit/keys/k/config", Some(&root), body).await
            } else {
                request(addr, "POST", "/v1/transit/keys/k/rotate", Some(&root), "").await
            }
        }));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (n, task) in tasks.into_iter().enumerate() {
        let (status, _, answer) = task.await.unwrap();
        assert_eq!(status, 200, "{answer}");
        if n < ROTATIONS as usize {
            assert!(
                seen.insert(answer["data"]["latest_version"].as_u64().unwrap()),
                "two rotations made one version"
            );
        }
    }
    let (_, _, key) = request(addr, "GET", "/v1/transit/keys/k", Some(&root), "").await;
    assert_eq!(key["data"]["latest_version"].as_u64(), Some(2 + ROTATIONS), "{key}");
    assert_eq!(key["data"]["min_decryption_version"].as_u64(), Some(2), "{key}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_a_batch_wrote_one_audit_record_per_item() {
    // 220,000 empty items in one 4 MiB request wrote 220,000 audit objects (870 MB on disk).
    // Now a batch is one call to the vault and one record, and a batch has a bound.
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let (addr, root) = (s.addr, s.token.as_str());
    assert_eq!(request(addr, "POST", "/v1/transit/keys/k", Some(root), "{}").await.0, 204);
    let before = (audited(addr, root, "encrypt").await.len(), audited(addr, root, "decrypt").await.len());
    let items: Vec<Value> =
        (0..1000).map(|i| json!({ "plaintext": base64(format!("item {i}").as_bytes()) })).collect();
    let body = json!({ "batch_input": items }).to_string();
    let (status, _, sealed) = request(addr, "POST", "/v1/transit/encrypt/k", Some(root), &body).await;
    assert_eq!(status, 200, "{sealed}");
    let mut results = sealed["data"]["batch_results"].as_array().unwrap().clone();
    assert_eq!(results.len(), 1000);
    // One bad item among good ones fails alone; the answer is Vault's 400, the results in it.
    results[7] = json!({ "ciphertext": "vault:v1:AAAA" });
    let body = json!({ "batch_input": results }).to_string();
    let (status, _, opened) = request(addr, "POST", "/v1/transit/decrypt/k", Some(root), &body).await;
    assert_eq!(status, 400, "{opened}");
    let opened = opened["data"]["batch_results"].as_array().unwrap();
    assert!(opened[7]["error"].is_string(), "{}", opened[7]);
    assert_eq!(opened[8]["plaintext"], json!(base64(b"item 8")));
    let encrypts = audited(addr, root, "encrypt").await;
    let decrypts = audited(addr, root, "decrypt").await;
    assert_eq!((encrypts.len(), decrypts.len()), (before.0 + 1, before.1 + 1));
    let last = decrypts.last().unwrap();
    assert!(last["detail"].as_str().unwrap().contains("1000 items"), "{last}");
    assert!(last["outcome"].to_string().contains("1 of 1000"), "{last}");
    // A partial-failure status must carry the results (review: 100 made an empty 500, 204 and
    // 304 dropped the body).
    for code in [100, 204, 304, 600] {
        let body = json!({ "batch_input": results, "partial_failure_response_code": code }).to_string();
        let (status, _, answer) = request(addr, "POST", "/v1/transit/decrypt/k", Some(root), &body).await;
        assert_eq!(status, 400, "{code}: {answer}");
        assert!(answer["errors"][0].as_str().unwrap().contains("partial_failure_response_code"), "{answer}");
    }
    let body = json!({ "batch_input": results, "partial_failure_response_code": 207 }).to_string();
    assert_eq!(request(addr, "POST", "/v1/transit/decrypt/k", Some(root), &body).await.0, 207);
    // Past the bound: refused whole, nothing done.
    let many: Vec<Value> = (0..=tresor_server::http::MAX_BATCH).map(|_| json!({ "plaintext": "" })).collect();
    let body = json!({ "batch_input": many }).to_string();
    assert_eq!(request(addr, "POST", "/v1/transit/encrypt/k", Some(root), &body).await.0, 400);
    assert_eq!(audited(addr, root, "encrypt").await.len(), before.0 + 1);
    // A batch of signatures, too: one call, one record.
    assert_eq!(request(addr, "POST", "/v1/transit/keys/s", Some(root), r#"{"type":"ed25519"}"#).await.0, 204);
    let signs = audited(addr, root, "sign").await.len();
    let items: Vec<Value> =
        (0..500).map(|i| json!({ "input": base64(format!("m {i}").as_bytes()) })).collect();
    let body = json!({ "batch_input": items }).to_string();
    let (status, _, signed) = request(addr, "POST", "/v1/transit/sign/s", Some(root), &body).await;
    assert_eq!(status, 200, "{signed}");
    assert_eq!(signed["data"]["batch_results"].as_array().unwrap().len(), 500);
    let records = audited(addr, root, "sign").await;
    assert_eq!(records.len(), signs + 1);
    assert!(records.last().unwrap()["detail"].as_str().unwrap().contains("500 items"), "{records:?}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_derived_keys_contexts_and_associated_data_were_taken_and_ignored() {
    // A ciphertext made for one tenant's context decrypted under another's: the key was never
    // derived. What this mount does not do is now refused, never taken silently.
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let (addr, root) = (s.addr, s.token.as_str());
    for body in [r#"{"derived":true}"#, r#"{"convergent_encryption":true}"#, r#"{"exportable":true}"#] {
        let (status, _, answer) = request(addr, "POST", "/v1/transit/keys/d", Some(root), body).await;
        assert_eq!(status, 400, "{body}: {answer}");
    }
    assert_eq!(request(addr, "GET", "/v1/transit/keys/d", Some(root), "").await.0, 404);
    let context = base64(b"tenant-a");
    for field in ["context", "associated_data", "nonce"] {
        let body = json!({ "plaintext": base64(b"hello"), field: context }).to_string();
        let (status, _, answer) = request(addr, "POST", "/v1/transit/encrypt/e", Some(root), &body).await;
        assert_eq!(status, 400, "{field}: {answer}");
    }
    let body = json!({ "plaintext": base64(b"hello") }).to_string();
    let (status, _, sealed) = request(addr, "POST", "/v1/transit/encrypt/e", Some(root), &body).await;
    assert_eq!(status, 200, "{sealed}");
    let body = json!({ "ciphertext": sealed["data"]["ciphertext"], "context": context }).to_string();
    assert_eq!(request(addr, "POST", "/v1/transit/decrypt/e", Some(root), &body).await.0, 400);
    // False flags, as clients send defaults, are fine.
    let body = r#"{"derived":false,"exportable":false,"type":"aes256-gcm96"}"#;
    assert_eq!(request(addr, "POST", "/v1/transit/keys/plain", Some(root), body).await.0, 204);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_a_minimum_version_sent_as_text_was_ignored() {
    // `vault write transit/keys/k/config min_decryption_version=2` sends "2": it was answered 200
    // and the old version stayed usable.
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let (addr, root) = (s.addr, s.token.as_str());
    let body = json!({ "plaintext": base64(b"old") }).to_string();
    let (_, _, old) = request(addr, "POST", "/v1/transit/encrypt/k", Some(root), &body).await;
    assert_eq!(request(addr, "POST", "/v1/transit/keys/k/rotate", Some(root), "").await.0, 200);
    let (status, _, key) =
        request(addr, "POST", "/v1/transit/keys/k/config", Some(root), r#"{"min_decryption_version":"2"}"#)
            .await;
    assert_eq!((status, key["data"]["min_decryption_version"].as_u64()), (200, Some(2)), "{key}");
    let body = json!({ "ciphertext": old["data"]["ciphertext"] }).to_string();
    assert_eq!(request(addr, "POST", "/v1/transit/decrypt/k", Some(root), &body).await.0, 400);
    for bad in [
        r#"{"min_decryption_version":"2.0"}"#,
        r#"{"min_decryption_version":-1}"#,
        r#"{"min_decryption_version":1.5}"#,
        r#"{"deletion_allowed":true}"#,
        r#"{"min_encryption_version":2}"#,
    ] {
        let (status, _, answer) = request(addr, "POST", "/v1/transit/keys/k/config", Some(root), bad).await;
        assert_eq!(status, 400, "{bad}: {answer}");
    }
    // A key version given as -1 or as text other than a number is refused, not read as the latest.
    for version in [json!(-1), json!("latest"), json!(1.5)] {
        let body = json!({ "plaintext": base64(b"x"), "key_version": version }).to_string();
        assert_eq!(
            request(addr, "POST", "/v1/transit/encrypt/k", Some(root), &body).await.0,
            400,
            "{version}"
        );
    }
    for text in ["vault:v02:AAAA", "vault:v+2:AAAA"] {
        let body = json!({ "ciphertext": text }).to_string();
        let (status, _, answer) = request(addr, "POST", "/v1/transit/decrypt/k", Some(root), &body).await;
        assert!(status == 400 && answer.to_string().contains("invalid ciphertext"), "{text}: {answer}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_a_token_allowed_to_encrypt_could_make_keys_of_any_type() {
    // Creating a key takes `create`, using one `update` (Vault's existence check): a token with
    // only `update` on transit/encrypt/* made keys by encrypting, signing keys included, and a
    // key cannot be deleted here, so the name was taken for good.
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let (addr, root) = (s.addr, s.token.as_str());
    let token =
        token_with(addr, root, "enc", r#"path "transit/encrypt/*" { capabilities = ["update"] }"#).await;
    let body = json!({ "plaintext": base64(b"x"), "type": "ed25519" }).to_string();
    assert_eq!(request(addr, "POST", "/v1/transit/encrypt/prod-signing", Some(&token), &body).await.0, 403);
    let body = json!({ "plaintext": base64(b"x") }).to_string();
    assert_eq!(request(addr, "POST", "/v1/transit/encrypt/prod-signing", Some(&token), &body).await.0, 403);
    assert_eq!(request(addr, "GET", "/v1/transit/keys/prod-signing", Some(root), "").await.0, 404);
    // Even root: an encryption that would make a signing key is refused before it is made.
    let body = json!({ "plaintext": base64(b"x"), "type": "ed25519" }).to_string();
    assert_eq!(request(addr, "POST", "/v1/transit/encrypt/prod-signing", Some(root), &body).await.0, 400);
    assert_eq!(request(addr, "GET", "/v1/transit/keys/prod-signing", Some(root), "").await.0, 404);
    // Once the key exists, the token uses it.
    assert_eq!(request(addr, "POST", "/v1/transit/keys/app", Some(root), "{}").await.0, 204);
    let body = json!({ "plaintext": base64(b"x") }).to_string();
    assert_eq!(request(addr, "POST", "/v1/transit/encrypt/app", Some(&token), &body).await.0, 200);
    let create =
        token_with(addr, root, "make", r#"path "transit/encrypt/*" { capabilities = ["create", "update"] }"#)
            .await;
    assert_eq!(request(addr, "POST", "/v1/transit/encrypt/new-one", Some(&create), &body).await.0, 200);
    s.stop().await;
}

fn base64(bytes: &[u8]) -> String {
    use base64ct::Encoding;
    base64ct::Base64::encode_string(bytes)
}

/// What real clients saw differ from Vault (found by review): a batch with failed items answered
/// 200 and dropped each item's `reference`; Base64 with line breaks (what `base64` prints) was
/// refused; a key made without a type was not Vault's default type; `min_decryption_version: 0`
/// was refused; Vault endpoints tresor lacks answered 404, which clients read as "no such key".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_transit_answers_differed_from_vaults() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let (addr, root) = (s.addr, Some(s.token.as_str()));
    let batch = json!({ "batch_input": [
        { "plaintext": base64(b"a"), "reference": "r1" },
        { "plaintext": "!!", "reference": "r2" },
    ]})
    .to_string();
    let (status, _, answer) = request(addr, "POST", "/v1/transit/encrypt/k", root, &batch).await;
    assert_eq!(status, 400, "{answer}");
    let results = answer["data"]["batch_results"].as_array().unwrap();
    assert_eq!((&results[0]["reference"], &results[1]["reference"]), (&json!("r1"), &json!("r2")));
    assert!(results[0]["ciphertext"].is_string() && results[1]["error"].is_string(), "{answer}");
    let partial = json!({ "batch_input": [{ "plaintext": base64(b"a") }, { "plaintext": "!!" }],
        "partial_failure_response_code": 207 })
    .to_string();
    assert_eq!(request(addr, "POST", "/v1/transit/encrypt/k", root, &partial).await.0, 207);
    let (_, _, key) = request(addr, "GET", "/v1/transit/keys/k", root, "").await;
    assert_eq!(key["data"]["type"], json!("aes256-gcm96"), "{key}");
    // Base64 as `base64` prints it: 76 columns, a newline at the end.
    let long = vec![b'x'; 100];
    let wrapped = format!("{}\n{}\n", &base64(&long)[..76], &base64(&long)[76..]);
    let body = json!({ "plaintext": wrapped }).to_string();
    let (status, _, sealed) = request(addr, "POST", "/v1/transit/encrypt/k", root, &body).await;
    assert_eq!(status, 200, "{sealed}");
    let body = json!({ "ciphertext": sealed["data"]["ciphertext"] }).to_string();
    let (_, _, opened) = request(addr, "POST", "/v1/transit/decrypt/k", root, &body).await;
    assert_eq!(opened["data"]["plaintext"], json!(base64(&long)));
    let config = r#"{"min_decryption_version": 0}"#;
    let (status, _, key) = request(addr, "POST", "/v1/transit/keys/k/config", root, config).await;
    assert_eq!((status, &key["data"]["min_decryption_version"]), (200, &json!(1)), "{key}");
    for path in ["/v1/transit/hmac/k", "/v1/transit/random/32", "/v1/transit/keys/k/trim"] {
        let (status, _, body) = request(addr, "POST", path, root, "{}").await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body["errors"][0].as_str().unwrap().contains("not supported by tresor"), "{path}: {body}");
    }
    let (status, _, body) = request(addr, "DELETE", "/v1/transit/keys/k", root, "").await;
    assert_eq!((status, &body["errors"][0]), (400, &json!("deletion is not allowed for this key")));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_update_alone_let_a_token_destroy_an_epoch() {
    // Destroying an epoch takes every value sealed in it out of reach for good; rotating and
    // re-encrypting change the vault's keys. Vault asks `sudo` for such routes (`sys/rotate`).
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let write = r#"{"data":{"k":"v"}}"#;
    assert_eq!(request(s.addr, "POST", "/v1/secret/data/app/db", Some(&s.token), write).await.0, 200);
    let update =
        token_with(s.addr, &s.token, "update", r#"path "tresor/epochs/*" { capabilities = ["update"] }"#)
            .await;
    let sudo = token_with(
        s.addr,
        &s.token,
        "sudo",
        r#"path "tresor/epochs/*" { capabilities = ["update", "sudo"] }
path "tresor/epochs" { capabilities = ["read"] }"#,
    )
    .await;
    let routes = [
        ("/v1/tresor/epochs/rotate", ""),
        ("/v1/tresor/epochs/reencrypt", ""),
        ("/v1/tresor/epochs/policy", r#"{"rotate_every":"1h"}"#),
        ("/v1/tresor/epochs/1/destroy", ""),
    ];
    for (route, body) in routes {
        let (status, _, answer) = request(s.addr, "POST", route, Some(&update), body).await;
        assert_eq!(status, 403, "{route} with update alone: {answer}");
    }
    // Nothing was destroyed: the value still reads.
    let (status, _, read) = request(s.addr, "GET", "/v1/secret/data/app/db", Some(&s.token), "").await;
    assert_eq!((status, &read["data"]["data"]["k"]), (200, &json!("v")), "{read}");
    for (route, body) in routes {
        let (status, _, answer) = request(s.addr, "POST", route, Some(&sudo), body).await;
        assert!(status == 200 || status == 204, "{route} with update and sudo: {status} {answer}");
    }
    s.stop().await;
}
