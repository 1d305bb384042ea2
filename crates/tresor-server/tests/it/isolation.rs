//! Policy isolation over every route: a token whose policy reaches one KV prefix is refused
//! everywhere else with one and the same answer — 403, `{"errors":["permission denied"]}` — whether
//! what it names exists or not, so it learns nothing, not even existence; what its policy grants,
//! and its own token's routes, keep working.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

use crate::http::{request, start};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_without_the_capability_is_refused_on_every_route_and_learns_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let (addr, root) = (s.addr, s.token.clone());
    let as_root = |method: &'static str, path: &'static str, body: String| {
        let root = root.clone();
        async move { request(addr, method, path, Some(&root), &body).await }
    };
    // What exists: secrets inside and outside the prefix, a transit key, policies, an AppRole role.
    for path in ["/v1/secret/data/a/one", "/v1/secret/data/b/two"] {
        assert_eq!(as_root("POST", path, r#"{"data":{"k":"v"}}"#.into()).await.0, 200);
    }
    assert_eq!(as_root("POST", "/v1/transit/encrypt/k", r#"{"plaintext":"aGk="}"#.into()).await.0, 200);
    let policy = json!({ "policy": r#"path "secret/data/a/*" { capabilities = ["read"] }"# }).to_string();
    assert_eq!(as_root("PUT", "/v1/sys/policies/acl/only-a", policy).await.0, 204);
    let role = as_root("POST", "/v1/auth/approle/role/r", r#"{"token_policies":["only-a"]}"#.into()).await;
    assert!(role.0 == 204 || role.0 == 200, "{role:?}");
    let (status, _, created) =
        as_root("POST", "/v1/auth/token/create", r#"{"policies":["only-a"]}"#.into()).await;
    assert_eq!(status, 200, "{created}");
    let token = created["auth"]["client_token"].as_str().unwrap().to_string();
    let root_accessor =
        as_root("GET", "/v1/auth/token/lookup-self", String::new()).await.2["data"]["accessor"]
            .as_str()
            .unwrap()
            .to_string();

    let kv_write = r#"{"data":{"x":"y"}}"#;
    let versions = r#"{"versions":[1]}"#;
    let routes: Vec<(&str, String, String)> = [
        // KV v2 outside the prefix, existing and not, and writes inside it (read-only there).
        ("GET", "/v1/secret/data/b/two", ""),
        ("GET", "/v1/secret/data/b/none", ""),
        ("GET", "/v1/secret/data/b/two?version=1", ""),
        ("POST", "/v1/secret/data/b/two", kv_write),
        ("PUT", "/v1/secret/data/b/new", kv_write),
        ("POST", "/v1/secret/data/a/one", kv_write),
        ("PATCH", "/v1/secret/data/b/two", kv_write),
        ("DELETE", "/v1/secret/data/b/two", ""),
        ("DELETE", "/v1/secret/data/a/one", ""),
        ("GET", "/v1/secret/metadata/b/two", ""),
        ("GET", "/v1/secret/metadata/b/none", ""),
        ("GET", "/v1/secret/metadata/a/one", ""),
        ("LIST", "/v1/secret/metadata/", ""),
        ("LIST", "/v1/secret/metadata/b", ""),
        ("LIST", "/v1/secret/metadata/a", ""),
        ("GET", "/v1/secret/metadata/?list=true", ""),
        ("POST", "/v1/secret/metadata/b/two", r#"{"max_versions":1}"#),
        ("DELETE", "/v1/secret/metadata/b/two", ""),
        ("POST", "/v1/secret/delete/b/two", versions),
        ("POST", "/v1/secret/undelete/b/two", versions),
        ("POST", "/v1/secret/destroy/b/two", versions),
        ("POST", "/v1/secret/destroy/a/one", versions),
        ("GET", "/v1/secret/config", ""),
        // Transit.
        ("POST", "/v1/transit/encrypt/k", r#"{"plaintext":"aGk="}"#),
        ("POST", "/v1/transit/encrypt/new", r#"{"plaintext":"aGk="}"#),
        ("POST", "/v1/transit/decrypt/k", r#"{"ciphertext":"vault:v1:AAAA"}"#),
        ("POST", "/v1/transit/rewrap/k", r#"{"ciphertext":"vault:v1:AAAA"}"#),
        ("GET", "/v1/transit/keys/k", ""),
        ("GET", "/v1/transit/keys/none", ""),
        ("LIST", "/v1/transit/keys", ""),
        ("POST", "/v1/transit/keys/k/rotate", ""),
        ("POST", "/v1/transit/keys/k/config", r#"{"min_decryption_version":1}"#),
        ("POST", "/v1/transit/keys/s", r#"{"type":"ed25519"}"#),
        ("POST", "/v1/transit/sign/k", r#"{"input":"aGk="}"#),
        ("POST", "/v1/transit/datakey/plaintext/k", ""),
        // The system backend.
        ("GET", "/v1/sys/mounts", ""),
        ("POST", "/v1/sys/mounts/other", r#"{"type":"kv"}"#),
        ("GET", "/v1/sys/policies/acl", ""),
        ("LIST", "/v1/sys/policies/acl", ""),
        ("GET", "/v1/sys/policies/acl/only-a", ""),
        ("GET", "/v1/sys/policies/acl/none", ""),
        ("PUT", "/v1/sys/policies/acl/evil", r#"{"policy":"path \"*\" { capabilities = [\"sudo\"] }"}"#),
        ("DELETE", "/v1/sys/policies/acl/only-a", ""),
        ("GET", "/v1/sys/policy", ""),
        ("GET", "/v1/sys/policy/only-a", ""),
        ("PUT", "/v1/sys/seal", ""),
        ("GET", "/v1/sys/auth", ""),
        ("POST", "/v1/sys/auth/approle", r#"{"type":"approle"}"#),
        // Tokens other than its own, and AppRole administration.
        ("POST", "/v1/auth/token/create", r#"{"policies":["only-a"]}"#),
        ("POST", "/v1/auth/token/lookup", &format!(r#"{{"token":"{root}"}}"#)),
        ("POST", "/v1/auth/token/lookup-accessor", &format!(r#"{{"accessor":"{root_accessor}"}}"#)),
        ("POST", "/v1/auth/token/revoke", &format!(r#"{{"token":"{root}"}}"#)),
        ("POST", "/v1/auth/token/revoke-accessor", &format!(r#"{{"accessor":"{root_accessor}"}}"#)),
        ("POST", "/v1/auth/token/renew", &format!(r#"{{"token":"{root}"}}"#)),
        ("GET", "/v1/auth/approle/role/r", ""),
        ("LIST", "/v1/auth/approle/role", ""),
        ("GET", "/v1/auth/approle/role/r/role-id", ""),
        ("POST", "/v1/auth/approle/role/r/secret-id", ""),
        ("POST", "/v1/auth/approle/role/evil", r#"{"token_policies":["root"]}"#),
        ("DELETE", "/v1/auth/approle/role/r", ""),
        // tresor's own routes.
        ("POST", "/v1/tresor/token/revoke", &format!(r#"{{"accessor":"{root_accessor}","rotate":true}}"#)),
    ]
    .into_iter()
    .map(|(m, p, b)| (m, p.to_string(), b.to_string()))
    .collect();
    let denied = json!({ "errors": ["permission denied"] });
    let mut wrong = Vec::new();
    for (method, path, body) in &routes {
        let (status, content_type, answer) = request(addr, method, path, Some(&token), body).await;
        if status != 403 || answer != denied || content_type != "application/json" {
            wrong.push(format!("{method} {path}: {status} {content_type} {answer}"));
        }
    }
    assert!(wrong.is_empty(), "not refused as they should be:\n{}", wrong.join("\n"));

    // Nothing it tried changed anything: the root token still works, everything is as it was.
    let (status, _, read) = as_root("GET", "/v1/secret/data/b/two", String::new()).await;
    assert_eq!((status, &read["data"]["data"]), (200, &json!({ "k": "v" })));
    assert_eq!(as_root("GET", "/v1/sys/policies/acl/only-a", String::new()).await.0, 200);
    assert_eq!(as_root("GET", "/v1/sys/policies/acl/evil", String::new()).await.0, 404);
    // What the policy grants, and the token's own routes, still work.
    let (status, _, mine) = request(addr, "GET", "/v1/secret/data/a/one", Some(&token), "").await;
    assert_eq!((status, &mine["data"]["data"]), (200, &json!({ "k": "v" })));
    let (status, _, me) = request(addr, "GET", "/v1/auth/token/lookup-self", Some(&token), "").await;
    assert_eq!(status, 200);
    assert!(me["data"]["policies"].as_array().unwrap().contains(&json!("only-a")), "{me}");
    assert_eq!(request(addr, "POST", "/v1/auth/token/renew-self", Some(&token), "{}").await.0, 200);
    assert_eq!(request(addr, "POST", "/v1/auth/token/revoke-self", Some(&token), "").await.0, 204);
    let (status, _, gone) = request(addr, "GET", "/v1/secret/data/a/one", Some(&token), "").await;
    assert_eq!((status, gone), (403, Value::clone(&denied)), "a revoked token reads nothing");
    s.stop().await;
}
