//! A vault on a real S3-compatible server (moto, started by `.ci/run`) whose credentials, region
//! and endpoint come only from AWS profile files: the environment handed to `tresor::aws` holds
//! `AWS_PROFILE`, `AWS_CONFIG_FILE`, `AWS_SHARED_CREDENTIALS_FILE` and `AWS_ALLOW_HTTP`, nothing else.
//!
//! The profile files are written from the variables `.ci/run` exports (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`) for the bucket of `TRESOR_TEST_S3`.
//! Without `TRESOR_TEST_S3` these tests are skipped, unless `TRESOR_REQUIRE_S3` is set, as in CI,
//! which makes that a failure.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

mod common;

use common::{Env, PASSWORD, opts, pw};
use object_store::path::Path;
use std::sync::Arc;
use tresor::aws::{self, Environment, Source};
use tresor::{Store, Vault};

/// The server's settings, from the variables `.ci/run` exports.
struct Server {
    key_id: String,
    secret: String,
    region: String,
    endpoint: Option<String>,
    allow_http: Option<String>,
}

impl Server {
    fn from_process() -> Server {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let need = |name: &str| {
            var(name).unwrap_or_else(|| {
                panic!("TRESOR_TEST_S3 is set but {name} is not: this test writes it into a profile file")
            })
        };
        Server {
            key_id: need("AWS_ACCESS_KEY_ID"),
            secret: need("AWS_SECRET_ACCESS_KEY"),
            region: var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")).unwrap_or("us-east-1".into()),
            endpoint: var("AWS_ENDPOINT_URL"),
            allow_http: var("AWS_ALLOW_HTTP"),
        }
    }

    /// Writes `config` and `credentials` for the profile `tresor-test` into `dir`, with a decoy
    /// `default` profile that would fail if it were used. With `endpoint_in_profile` the endpoint is
    /// the profile's `endpoint_url`; `extra_config` is appended to the config file.
    fn write_profile(&self, dir: &std::path::Path, endpoint_in_profile: bool, extra_config: &str) {
        let mut config = "[default]\nregion = nowhere-1\nendpoint_url = https://127.0.0.1:9\n\n\
                          [profile tresor-test]  # the one the tests select\n"
            .to_string();
        config.push_str(&format!("region = {}\n", self.region));
        if let (true, Some(endpoint)) = (endpoint_in_profile, &self.endpoint) {
            config.push_str(&format!("endpoint_url = {endpoint}\n"));
        }
        config.push_str(extra_config);
        std::fs::write(dir.join("config"), config).unwrap();
        let credentials = format!(
            "[default]\naws_access_key_id = decoy\naws_secret_access_key = decoy\n\n\
             [tresor-test]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            self.key_id, self.secret
        );
        std::fs::write(dir.join("credentials"), credentials).unwrap();
    }

    /// An environment with no credentials, region or endpoint: only where the profile is.
    fn env(&self, dir: &std::path::Path, allow_http: bool) -> Environment {
        let mut vars = vec![
            ("AWS_PROFILE".to_string(), "tresor-test".to_string()),
            ("AWS_CONFIG_FILE".to_string(), dir.join("config").to_str().unwrap().to_string()),
            (
                "AWS_SHARED_CREDENTIALS_FILE".to_string(),
                dir.join("credentials").to_str().unwrap().to_string(),
            ),
        ];
        if let (true, Some(v)) = (allow_http, &self.allow_http) {
            vars.push(("AWS_ALLOW_HTTP".to_string(), v.clone()));
        }
        vars.into_iter().collect()
    }
}

/// Opens `location` (`s3://BUCKET/PREFIX`) with the settings `env` leads to, as `Store::open` does
/// with the process environment.
fn open(location: &str, env: &Environment) -> tresor::Result<Store> {
    let (bucket, prefix) = location.strip_prefix("s3://").unwrap().split_once('/').unwrap();
    let s3 = aws::s3_builder(bucket, env)?.build().unwrap();
    Ok(Store::from_object_store(Arc::new(s3), Some(Path::from(prefix)), location))
}

#[tokio::test]
async fn vault_on_s3_with_credentials_region_and_endpoint_from_a_profile() {
    let Some(location) = common::s3_location("profile") else { return };
    let server = Server::from_process();
    let env = Env::new();
    let dir = env.path("aws");
    std::fs::create_dir(&dir).unwrap();
    server.write_profile(&dir, true, "");
    let aws_env = server.env(&dir, true);

    // Everything came from the profile files.
    let settings = aws::resolve(&aws_env).unwrap();
    let credentials = settings.credentials.as_ref().unwrap();
    assert!(matches!(&credentials.source, Source::Profile { profile, .. } if profile == "tresor-test"));
    assert_eq!(credentials.access_key_id, server.key_id);
    assert_eq!(settings.region.as_ref().unwrap().value, server.region);
    assert!(matches!(settings.region.as_ref().unwrap().source, Source::Profile { .. }));
    assert_eq!(settings.endpoint.as_ref().map(|e| e.value.clone()), server.endpoint);

    let trust = env.path("trust");
    let v = Vault::init(open(&location, &aws_env).unwrap(), &pw(PASSWORD), opts(&trust)).await.unwrap();
    v.set("db/password", b"from a profile").await.unwrap();
    drop(v);
    let v = Vault::unlock(open(&location, &aws_env).unwrap(), &pw(PASSWORD), opts(&trust)).await.unwrap();
    assert_eq!(v.get("db/password", None).await.unwrap().as_slice(), b"from a profile");
    v.verify().await.unwrap();
    drop(v);
    // The same vault through the process environment (Store::open) is the same vault.
    let v = Vault::unlock(Store::open(&location, false).unwrap(), &pw(PASSWORD), opts(&trust)).await.unwrap();
    assert_eq!(v.get("db/password", None).await.unwrap().as_slice(), b"from a profile");
    println!("s3-profile: vault opened with credentials, region and endpoint from {}", dir.display());
}

#[tokio::test]
async fn endpoint_from_a_services_section_and_plain_http_only_when_asked() {
    let Some(location) = common::s3_location("profile-services") else { return };
    let server = Server::from_process();
    let Some(endpoint) = &server.endpoint else {
        eprintln!("skipped: AWS_ENDPOINT_URL is not set (the bucket is on AWS itself)");
        return;
    };
    let env = Env::new();
    let dir = env.path("aws");
    std::fs::create_dir(&dir).unwrap();
    let services =
        format!("services = tresor-s3\n\n[services tresor-s3]\ns3 =\n  endpoint_url = {endpoint}\n");
    server.write_profile(&dir, false, &services);

    let aws_env = server.env(&dir, true);
    let settings = aws::resolve(&aws_env).unwrap();
    let found = settings.endpoint.unwrap();
    assert_eq!(&found.value, endpoint);
    assert!(matches!(&found.source, Source::Services { section, .. } if section == "tresor-s3"));
    let store = open(&location, &aws_env).unwrap();
    store.probe().await.unwrap();
    store.create("a/b", b"value".to_vec()).await.unwrap();
    assert_eq!(store.get("a/b").await.unwrap().unwrap().as_ref(), b"value");

    if endpoint.starts_with("http://") {
        // Without AWS_ALLOW_HTTP the same profile is refused before anything is sent.
        let e = open(&location, &server.env(&dir, false)).err().unwrap().to_string();
        assert!(e.contains("AWS_ALLOW_HTTP=true") && e.contains("[services tresor-s3]"), "{e}");
        if server.secret.len() >= 8 {
            assert!(!e.contains(&server.secret), "{e}");
        }
    }
}
