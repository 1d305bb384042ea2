//! A vault on a real S3-compatible server (moto, started by `.ci/run`) with credentials, region
//! and endpoint resolved by aws-config from a configuration the test builds: AWS profile files,
//! environment credentials, a `credential_process` script, a role assumed through STS (moto
//! serves STS too), and the refusals (a missing named profile, plain HTTP without
//! `AWS_ALLOW_HTTP`), none of whose messages holds a secret.
//!
//! Each configuration holds only what the test puts in it (`HOME` points into a temporary
//! directory, so no real `~/.aws` is read; instance metadata is switched off). The server's
//! settings come from the variables `.ci/run` exports (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`) for the bucket of `TRESOR_TEST_S3`.
//! Without `TRESOR_TEST_S3` these tests are skipped, unless `TRESOR_REQUIRE_S3` is set, as in CI,
//! which makes that a failure.
#![allow(clippy::unwrap_used)] // A failed unwrap in a test is a failed test.

use crate::common;

use common::{Env, PASSWORD, opts, pw};
use object_store::CredentialProvider;
use std::path::Path;
use tresor::{Error, Store, Vault};
use tresor_backend::BackendConfig;
use tresor_backend::s3::S3Settings;

/// Secrets that must never appear in a message.
const SECRET: &str = "SECRET-MUST-NOT-SHOW";
const TOKEN: &str = "TOKEN-MUST-NOT-SHOW";

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
    /// `default` profile that would fail if it were used. With `endpoint_in_profile` the endpoint
    /// is the profile's `endpoint_url`; `extra_config` is appended to the config file, and
    /// `credentials` replaces the profile's keys in the credentials file when given.
    fn write_profile(&self, dir: &Path, endpoint_in_profile: bool, extra_config: &str, keys: Option<&str>) {
        let mut config = "[default]\nregion = nowhere-1\nendpoint_url = https://127.0.0.1:9\n\n\
                          [profile tresor-test]  # the one the tests select\n"
            .to_string();
        config.push_str(&format!("region = {}\n", self.region));
        if let (true, Some(endpoint)) = (endpoint_in_profile, &self.endpoint) {
            config.push_str(&format!("endpoint_url = {endpoint}\n"));
        }
        config.push_str(extra_config);
        std::fs::write(dir.join("config"), config).unwrap();
        let keys = keys.map_or_else(
            || format!("aws_access_key_id = {}\naws_secret_access_key = {}\n", self.key_id, self.secret),
            str::to_string,
        );
        let credentials = format!(
            "[default]\naws_access_key_id = decoy\naws_secret_access_key = {SECRET}\n\n[tresor-test]\n{keys}"
        );
        std::fs::write(dir.join("credentials"), credentials).unwrap();
    }

    /// A configuration with no credentials, region or endpoint: only where the profile is (and a
    /// home directory of its own, and instance metadata off).
    fn config(&self, dir: &Path, allow_http: bool) -> BackendConfig {
        let mut config = BackendConfig::default()
            .with_var("HOME", dir.to_str().unwrap())
            .with_var("AWS_EC2_METADATA_DISABLED", "true")
            .with_var("AWS_PROFILE", "tresor-test")
            .with_var("AWS_CONFIG_FILE", dir.join("config").to_str().unwrap())
            .with_var("AWS_SHARED_CREDENTIALS_FILE", dir.join("credentials").to_str().unwrap());
        if let (true, Some(v)) = (allow_http, &self.allow_http) {
            config = config.with_var("AWS_ALLOW_HTTP", v);
        }
        config
    }
}

/// A directory for profile files.
fn aws_dir(env: &Env) -> std::path::PathBuf {
    let dir = env.path("aws");
    std::fs::create_dir(&dir).unwrap();
    dir
}

/// Opens `location` with `config` (what the binaries do with their environment).
async fn open(location: &str, config: &BackendConfig) -> tresor::Result<Store> {
    tresor_backend::open(location, false, config).await
}

/// Creates a vault at `location` with `config`, writes and reads a secret back through a second
/// opening, and verifies it.
async fn vault_round_trip(location: &str, config: &BackendConfig, env: &Env) {
    let trust = env.path("trust");
    let v = Vault::init(open(location, config).await.unwrap(), &pw(PASSWORD), opts(&trust)).await.unwrap();
    v.set("db/password", b"through aws-config").await.unwrap();
    drop(v);
    let v = Vault::unlock(open(location, config).await.unwrap(), &pw(PASSWORD), opts(&trust)).await.unwrap();
    assert_eq!(v.get("db/password", None).await.unwrap().as_slice(), b"through aws-config");
    v.verify().await.unwrap();
}

fn assert_no_secret(text: &str, server: &Server) {
    assert!(!text.contains(SECRET) && !text.contains(TOKEN), "{text}");
    // The server's own secret, unless it is no secret (moto's CI secret is its key id and bucket).
    let bucket = std::env::var("TRESOR_TEST_S3").unwrap_or_default();
    if server.secret.len() >= 8 && !server.key_id.contains(&server.secret) && !bucket.contains(&server.secret)
    {
        assert!(!text.contains(&server.secret), "{text}");
    }
}

#[tokio::test]
async fn vault_on_s3_with_credentials_region_and_endpoint_from_a_profile() {
    let Some(location) = common::s3_location("profile") else { return };
    let server = Server::from_process();
    let env = Env::new();
    let dir = aws_dir(&env);
    server.write_profile(&dir, true, "", None);
    let config = server.config(&dir, true);

    // Everything came from the profile files.
    let settings = S3Settings::resolve(&config).await.unwrap();
    assert_eq!(settings.profile, "tresor-test");
    assert_eq!(settings.region.value, server.region);
    assert!(settings.region.source.contains("profile `tresor-test`"), "{:?}", settings.region);
    assert_eq!(settings.endpoint.as_ref().map(|e| e.value.clone()), server.endpoint);
    if let Some(endpoint) = &settings.endpoint {
        assert_eq!(endpoint.source, "`endpoint_url` of AWS profile `tresor-test`");
    }
    let credential = settings.credentials().get_credential().await.unwrap();
    assert_eq!(credential.key_id, server.key_id);
    assert_eq!(settings.credentials().source().await.unwrap(), "CredentialsProfile");
    let shown = format!("{settings:?} {config:?} {credential:?}");
    assert_no_secret(&shown, &server);

    vault_round_trip(&location, &config, &env).await;
    // The same vault through the process environment (as the CLI passes it) is the same vault.
    let v = Vault::unlock(common::open(&location, false).await, &pw(PASSWORD), opts(&env.path("trust")))
        .await
        .unwrap();
    assert_eq!(v.get("db/password", None).await.unwrap().as_slice(), b"through aws-config");
    println!("s3-profile: vault opened with credentials, region and endpoint from {}", dir.display());
}

#[tokio::test]
async fn credentials_and_region_from_the_environment_come_before_the_profile() {
    let Some(location) = common::s3_location("profile-env") else { return };
    let server = Server::from_process();
    let env = Env::new();
    let dir = aws_dir(&env);
    // The profile's keys are a decoy: the environment's must win.
    let decoy = format!("aws_access_key_id = PROFILEKEY\naws_secret_access_key = {SECRET}\n");
    server.write_profile(&dir, true, "", Some(&decoy));
    let config = server
        .config(&dir, true)
        .with_var("AWS_ACCESS_KEY_ID", "ENVKEYID")
        .with_var("AWS_SECRET_ACCESS_KEY", &server.secret)
        .with_var("AWS_REGION", &server.region);
    let settings = S3Settings::resolve(&config).await.unwrap();
    assert_eq!(
        settings.region,
        tresor_backend::s3::Setting { value: server.region.clone(), source: "AWS_REGION".into() }
    );
    assert_eq!(settings.credentials().get_credential().await.unwrap().key_id, "ENVKEYID");
    assert_eq!(settings.credentials().source().await.unwrap(), "CredentialsEnvVars");
    vault_round_trip(&location, &config, &env).await;
    // No region anywhere: the documented default, without asking instance metadata.
    let bare = BackendConfig::default()
        .with_var("HOME", env.path("nowhere").to_str().unwrap())
        .with_var("AWS_EC2_METADATA_DISABLED", "true");
    let started = std::time::Instant::now();
    let settings = S3Settings::resolve(&bare).await.unwrap();
    assert_eq!(settings.region.value, tresor_backend::s3::DEFAULT_REGION);
    assert!(settings.endpoint.is_none() && !settings.allow_http);
    assert!(started.elapsed() < std::time::Duration::from_secs(2), "{:?}", started.elapsed());
}

/// `credential_process`: a real script that prints the JSON the AWS CLI defines. It runs once
/// while its credentials are fresh, however many requests are signed with them.
#[tokio::test]
async fn credentials_from_a_credential_process() {
    let Some(location) = common::s3_location("profile-process") else { return };
    let server = Server::from_process();
    let env = Env::new();
    let dir = aws_dir(&env);
    let runs = dir.join("runs");
    let script = dir.join("creds.sh");
    let expiration = "2999-01-01T00:00:00Z";
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho run >> '{}'\nprintf '%s' '{{\"Version\": 1, \"AccessKeyId\": \"PROCESSKEYID\", \
             \"SecretAccessKey\": \"{}\", \"SessionToken\": \"{TOKEN}\", \"Expiration\": \"{expiration}\"}}'\n",
            runs.display(),
            server.secret
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let keys = format!("credential_process = {}\n", script.display());
    server.write_profile(&dir, true, "", Some(&keys));
    let config = server.config(&dir, true);
    let settings = S3Settings::resolve(&config).await.unwrap();
    let credential = settings.credentials().get_credential().await.unwrap();
    assert_eq!(credential.key_id, "PROCESSKEYID");
    assert_eq!(credential.token.as_deref(), Some(TOKEN));
    assert!(settings.credentials().source().await.unwrap().contains("CredentialsProcess"));
    assert_no_secret(&format!("{settings:?} {credential:?}"), &server);

    std::fs::remove_file(&runs).unwrap();
    let store = open(&location, &config).await.unwrap();
    store.probe().await.unwrap();
    for i in 0..5 {
        store.create(&format!("a/{i}"), b"value".to_vec()).await.unwrap();
    }
    assert_eq!(store.list("a").await.unwrap().len(), 5);
    let count = std::fs::read_to_string(&runs).unwrap().lines().count();
    assert_eq!(count, 1, "the process ran once for the store's requests");

    // A process that fails: the first request says so, with no secret of the configuration.
    let failing = dir.join("fail.sh");
    std::fs::write(&failing, "#!/bin/sh\necho 'no credentials for you' >&2\nexit 3\n").unwrap();
    std::fs::set_permissions(&failing, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    server.write_profile(&dir, true, "", Some(&format!("credential_process = {}\n", failing.display())));
    let store = open(&location, &config.clone().with_var("AWS_SESSION_TOKEN", TOKEN)).await.unwrap();
    let e = store.get("a/0").await.unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, Error::Store(_)), "{text}");
    assert!(text.contains("credentials") && text.contains("no credentials for you"), "{text}");
    assert_no_secret(&text, &server);
}

/// `role_arn` + `source_profile`: aws-config assumes the role through STS (moto's, at the same
/// endpoint) with the source profile's keys, and the store signs with the temporary credentials.
#[tokio::test]
async fn credentials_of_a_role_assumed_through_sts() {
    let Some(location) = common::s3_location("profile-role") else { return };
    let server = Server::from_process();
    if server.endpoint.is_none() {
        eprintln!("skipped: AWS_ENDPOINT_URL is not set (STS would be AWS itself)");
        return;
    }
    let env = Env::new();
    let dir = aws_dir(&env);
    let keys = "role_arn = arn:aws:iam::123456789012:role/tresor-test\nsource_profile = base\n";
    server.write_profile(&dir, false, "", Some(keys));
    let mut credentials = std::fs::read_to_string(dir.join("credentials")).unwrap();
    credentials.push_str(&format!(
        "\n[base]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
        server.key_id, server.secret
    ));
    std::fs::write(dir.join("credentials"), credentials).unwrap();
    // The endpoint in the environment: STS and S3 both.
    let config = server.config(&dir, true).with_var("AWS_ENDPOINT_URL", server.endpoint.as_deref().unwrap());
    let settings = S3Settings::resolve(&config).await.unwrap();
    let credential = settings.credentials().get_credential().await.unwrap();
    assert_ne!(credential.key_id, server.key_id, "temporary credentials, not the source profile's");
    assert!(credential.token.is_some(), "{credential:?}");
    let source = settings.credentials().source().await.unwrap();
    assert!(source.contains("CredentialsProfile"), "{source}");
    vault_round_trip(&location, &config, &env).await;
    println!("s3-profile-role: vault opened with a role assumed through STS (key id {})", credential.key_id);
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
    let dir = aws_dir(&env);
    let services =
        format!("services = tresor-s3\n\n[services tresor-s3]\ns3 =\n  endpoint_url = {endpoint}\n");
    server.write_profile(&dir, false, &services, None);

    let config = server.config(&dir, true);
    let settings = S3Settings::resolve(&config).await.unwrap();
    let found = settings.endpoint.unwrap();
    assert_eq!(&found.value, endpoint);
    assert!(found.source.contains("[services tresor-s3]"), "{}", found.source);
    let store = open(&location, &config).await.unwrap();
    store.probe().await.unwrap();
    store.create("a/b", b"value".to_vec()).await.unwrap();
    assert_eq!(store.get("a/b").await.unwrap().unwrap().as_ref(), b"value");

    // The endpoint is ignored when asked to.
    let ignoring = config.clone().with_var("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true");
    assert!(S3Settings::resolve(&ignoring).await.unwrap().endpoint.is_none());
    // The service's own variable beats the services section.
    let own = config.clone().with_var("AWS_ENDPOINT_URL_S3", "https://s3.example");
    let found = S3Settings::resolve(&own).await.unwrap().endpoint.unwrap();
    assert_eq!((found.value.as_str(), found.source.as_str()), ("https://s3.example", "AWS_ENDPOINT_URL_S3"));

    if endpoint.starts_with("http://") {
        // Without AWS_ALLOW_HTTP the same profile is refused before anything is sent.
        let e = open(&location, &server.config(&dir, false)).await.err().unwrap().to_string();
        assert!(e.contains("AWS_ALLOW_HTTP=true") && e.contains("[services tresor-s3]"), "{e}");
        assert!(e.starts_with(&location), "the location is named: {e}");
        assert_no_secret(&e, &server);
    }
}

#[tokio::test]
async fn refusals_are_clear_and_hold_no_secret() {
    let server = Server::from_process_or_defaults();
    let env = Env::new();
    let dir = aws_dir(&env);
    server.write_profile(&dir, true, "", None);
    let secrets = server
        .config(&dir, true)
        .with_var("AWS_ACCESS_KEY_ID", "AKIATRESORTEST")
        .with_var("AWS_SECRET_ACCESS_KEY", SECRET)
        .with_var("AWS_SESSION_TOKEN", TOKEN);
    let location = "s3://tresor-test/p";
    let refused = |config: BackendConfig| async move {
        match open(location, &config).await {
            Ok(_) => panic!("opened"),
            Err(e @ Error::Invalid(_)) => e.to_string(),
            Err(e) => panic!("not an Invalid error: {e:?}"),
        }
    };

    // A profile named by AWS_PROFILE must exist, even `default`.
    let e = refused(secrets.clone().with_var("AWS_PROFILE", "prod")).await;
    assert!(e.contains("AWS_PROFILE") && e.contains("`prod`"), "{e}");
    assert!(e.contains(dir.join("config").to_str().unwrap()), "the files are named: {e}");
    assert_no_secret(&e, &server);
    let nothing = secrets
        .clone()
        .with_var("AWS_CONFIG_FILE", "/nonexistent/c")
        .with_var("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/k");
    let e = refused(nothing.clone().with_var("AWS_PROFILE", "default")).await;
    assert!(e.contains("`default`"), "{e}");
    // Without AWS_PROFILE, missing files are fine.
    assert!(S3Settings::resolve(&nothing.without_var("AWS_PROFILE")).await.is_ok());

    // Plain HTTP only with AWS_ALLOW_HTTP=true; the setting itself must be a boolean.
    let http = secrets.clone().with_var("AWS_ENDPOINT_URL", "http://127.0.0.1:9");
    let e = refused(http.clone().without_var("AWS_ALLOW_HTTP")).await;
    assert!(e.contains("AWS_ALLOW_HTTP=true") && e.contains("(from AWS_ENDPOINT_URL)"), "{e}");
    let e = refused(http.clone().with_var("AWS_ALLOW_HTTP", "false")).await;
    assert!(e.contains("AWS_ALLOW_HTTP=true"), "{e}");
    let e = refused(http.clone().with_var("AWS_ALLOW_HTTP", "maybe")).await;
    assert!(e.contains("AWS_ALLOW_HTTP must be"), "{e}");
    // Credentials in an endpoint URL are refused, and not shown.
    let e = refused(
        secrets.clone().with_var("AWS_ENDPOINT_URL", &format!("https://AKIA:{SECRET}@minio.local:9000")),
    )
    .await;
    assert!(e.contains("user information") && e.contains("https://…@minio.local:9000"), "{e}");
    // In the location: not a bucket name.
    let e = match open(&format!("s3://user:{SECRET}@bucket/p"), &secrets).await {
        Err(e) => e.to_string(),
        Ok(_) => panic!("opened"),
    };
    assert!(e.contains("not a valid S3 bucket name"), "{e}");
    assert_no_secret(&e, &server);
    // The profile's `ignore_configured_endpoint_urls` must be a boolean too.
    std::fs::write(dir.join("config"), "[profile tresor-test]\nignore_configured_endpoint_urls = perhaps\n")
        .unwrap();
    let e = refused(secrets.clone().without_var("AWS_ENDPOINT_URL")).await;
    assert!(e.contains("ignore_configured_endpoint_urls") && e.contains("`true` or `false`"), "{e}");
}

impl Server {
    /// The server's settings when S3 tests run, else placeholders (the refusals need no server).
    fn from_process_or_defaults() -> Server {
        match std::env::var("TRESOR_TEST_S3") {
            Ok(_) => Server::from_process(),
            Err(_) => Server {
                key_id: "AKIDPLACEHOLDER".into(),
                secret: "placeholder-secret".into(),
                region: "us-east-1".into(),
                endpoint: None,
                allow_http: None,
            },
        }
    }
}
