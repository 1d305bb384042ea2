//! The server against its own OpenAPI document, with schemathesis (PyPI): thousands of generated
//! requests on every route (with a root token), and not one answer is a server error or differs
//! from what the document says. Sealing and revoking the token itself are left out (they would
//! end the run, not test it).
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

use crate::http::{python, request, start};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_every_answer_matches_the_document() {
    let Some(python) = python() else { return };
    // schemathesis lives beside the Python the client tests use (its virtualenv).
    let schemathesis = std::path::Path::new(&python).with_file_name("schemathesis");
    if !schemathesis.exists() {
        assert!(std::env::var_os("TRESOR_REQUIRE_CLIENTS").is_none(), "no {}", schemathesis.display());
        eprintln!("skipped: no {}", schemathesis.display());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let base = format!("http://{}/v1", s.addr);
    let (status, content_type, document) =
        request(s.addr, "GET", "/v1/sys/internal/specs/openapi", None, "").await;
    assert_eq!((status, content_type.as_str()), (200, "application/json"));
    assert_eq!(document["openapi"], "3.1.0");
    // Logins and the password route first left out: their failures count toward the per-address
    // rate limit, which would soon answer every generated request with 429.
    let logins = ["/auth/approle/login", "/tresor/unseal"];
    let excluded: Vec<&str> = ["/sys/seal", "/auth/token/revoke-self"].into_iter().chain(logins).collect();
    let main = schemathesis_run(&schemathesis, &base, &s.token, dir.path(), &excluded, &[]).await;
    println!("openapi: schemathesis, every route but the logins: {main}");
    // The server is whole after it: the token still works, a write still reads back.
    let root = s.token.clone();
    let (status, _, _) =
        request(s.addr, "POST", "/v1/secret/data/after", Some(&root), r#"{"data":{"k":"v"}}"#).await;
    assert_eq!(status, 200);
    let (status, _, read) = request(s.addr, "GET", "/v1/secret/data/after", Some(&root), "").await;
    assert_eq!((status, &read["data"]["data"]["k"]), (200, &serde_json::json!("v")));
    let logins = schemathesis_run(&schemathesis, &base, &s.token, dir.path(), &[], &logins).await;
    println!("openapi: schemathesis, the logins: {logins}");
    s.stop().await;
}

/// One schemathesis run, without the paths `exclude` (or only the paths `include`): its summary
/// line ("N generated, N passed"); it must have passed.
async fn schemathesis_run(
    schemathesis: &std::path::Path,
    base: &str,
    token: &str,
    dir: &std::path::Path,
    exclude: &[&str],
    include: &[&str],
) -> String {
    let mut cmd = tokio::process::Command::new(schemathesis);
    cmd.args(["run", &format!("{base}/sys/internal/specs/openapi"), "--url", base])
        .args(["--header", &format!("X-Vault-Token: {token}")])
        .args(["--checks", "not_a_server_error,response_schema_conformance"])
        .args(["--max-examples", "15", "--seed", "20261206", "--phases", "examples,coverage,fuzzing"])
        .env("NO_COLOR", "1")
        .current_dir(dir)
        .kill_on_drop(true);
    for path in exclude {
        cmd.args(["--exclude-path", path]);
    }
    for path in include {
        cmd.args(["--include-path", path]);
    }
    let out = tokio::time::timeout(Duration::from_secs(600), cmd.output()).await.unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "schemathesis failed\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let summary = stdout.lines().find(|l| l.contains(" generated, ")).unwrap_or_default().trim().to_string();
    assert!(summary.contains("passed") && !summary.contains("failed"), "{stdout}");
    summary
}
