//! aws-config's credentials as object_store's: the provider chain aws-config resolved, asked
//! again shortly before the credentials it gave expire.
//!
//! aws-config's providers (assumed roles, SSO, web identity, container and instance
//! credentials, `credential_process`) do not cache: inside the AWS SDK an identity cache does.
//! object_store asks its [`CredentialProvider`] before every request, so [`AwsConfigCredentials`]
//! keeps the last answer until it is about to expire (static keys: for good), and one refresh
//! at a time runs while concurrent requests wait for it.

use aws_credential_types::credential_feature::AwsCredentialFeature;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use object_store::CredentialProvider;
use object_store::aws::AwsCredential;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Credentials are asked for again this long before they expire (or after half their lifetime,
/// if that is shorter): a request signed just before expiry may still be in flight after it.
const REFRESH_BEFORE: Duration = Duration::from_secs(5 * 60);

/// The credentials of an aws-config provider chain, for object_store. `Debug` shows neither the
/// secret key nor the session token.
#[derive(Debug)]
pub struct AwsConfigCredentials {
    provider: SharedCredentialsProvider,
    cached: tokio::sync::Mutex<Option<Cached>>,
}

/// The last credentials the chain gave.
struct Cached {
    credential: Arc<AwsCredential>,
    /// How the chain got them, as aws-config records it (`CredentialsEnvVars`,
    /// `CredentialsProfile`, `CredentialsProfileProcess+CredentialsProcess`, ...).
    source: String,
    /// When to ask again; `None`: never (they do not expire).
    refresh_at: Option<SystemTime>,
}

impl fmt::Debug for Cached {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `AwsCredential`'s own Debug hides the secret and the token.
        f.debug_struct("Cached")
            .field("credential", &self.credential)
            .field("source", &self.source)
            .field("refresh_at", &self.refresh_at)
            .finish()
    }
}

/// Credentials could not be had: the chain's error, with its causes.
#[derive(Debug, thiserror::Error)]
#[error("cannot get AWS credentials: {0}")]
pub struct NoCredentials(String);

impl AwsConfigCredentials {
    /// Credentials from `provider` (an aws-config chain, e.g. `SdkConfig::credentials_provider`).
    pub fn new(provider: SharedCredentialsProvider) -> AwsConfigCredentials {
        AwsConfigCredentials { provider, cached: tokio::sync::Mutex::new(None) }
    }

    /// How the current credentials were obtained, as aws-config records it: its credential
    /// features joined by `+` (`CredentialsEnvVars`, `CredentialsProfile`,
    /// `CredentialsProfileProcess+CredentialsProcess`, `CredentialsStsAssumeRole`, ...; empty for
    /// a provider that records none). Gets them first if needed.
    pub async fn source(&self) -> Result<String, NoCredentials> {
        Ok(self.current().await?.1)
    }

    /// The current credentials and how they were obtained: the cached ones while they are
    /// fresh, else new ones from the chain.
    async fn current(&self) -> Result<(Arc<AwsCredential>, String), NoCredentials> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref()
            && c.refresh_at.is_none_or(|at| SystemTime::now() < at)
        {
            return Ok((Arc::clone(&c.credential), c.source.clone()));
        }
        let fresh = self.provider.provide_credentials().await.map_err(|e| NoCredentials(chain(&e)))?;
        let refresh_at = fresh.expiry().map(|expiry| {
            let lifetime = expiry.duration_since(SystemTime::now()).unwrap_or_default();
            expiry.checked_sub(REFRESH_BEFORE.min(lifetime / 2)).unwrap_or(expiry)
        });
        let credential = Arc::new(AwsCredential {
            key_id: fresh.access_key_id().to_string(),
            secret_key: fresh.secret_access_key().to_string(),
            token: fresh.session_token().map(str::to_string),
        });
        let source = fresh
            .get_property::<Vec<AwsCredentialFeature>>()
            .map(|features| features.iter().map(|f| format!("{f:?}")).collect::<Vec<_>>().join("+"))
            .unwrap_or_default();
        tracing::debug!(source, ?refresh_at, "AWS credentials obtained");
        *cached = Some(Cached { credential: Arc::clone(&credential), source: source.clone(), refresh_at });
        Ok((credential, source))
    }
}

#[async_trait::async_trait]
impl CredentialProvider for AwsConfigCredentials {
    type Credential = AwsCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AwsCredential>> {
        match self.current().await {
            Ok((credential, _)) => Ok(credential),
            Err(e) => Err(object_store::Error::Generic { store: "S3", source: Box::new(e) }),
        }
    }
}

/// An error and its causes, one after the other (aws-config's errors say little without their
/// causes: "the credential provider was not enabled", then why). Its messages name providers,
/// profiles, files and settings, not credential values.
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use aws_credential_types::Credentials;
    use aws_credential_types::provider::error::CredentialsError;
    use aws_credential_types::provider::future;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Hands out credentials valid for `lifetime`, counting the calls.
    #[derive(Debug)]
    struct Counting {
        calls: Arc<AtomicUsize>,
        lifetime: Option<Duration>,
        fail: bool,
    }

    impl ProvideCredentials for Counting {
        fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            if self.fail {
                return future::ProvideCredentials::ready(Err(CredentialsError::provider_error(
                    "the process said no",
                )));
            }
            let expiry = self.lifetime.map(|l| SystemTime::now() + l);
            let mut credentials = Credentials::new(
                format!("KEY{n}"),
                "SECRET-MUST-NOT-SHOW",
                Some("TOKEN-MUST-NOT-SHOW".into()),
                expiry,
                "Counting",
            );
            credentials.set_property(vec![AwsCredentialFeature::CredentialsCode]);
            future::ProvideCredentials::ready(Ok(credentials))
        }
    }

    fn provider(lifetime: Option<Duration>, fail: bool) -> (AwsConfigCredentials, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let p = Counting { calls: Arc::clone(&calls), lifetime, fail };
        (AwsConfigCredentials::new(SharedCredentialsProvider::new(p)), calls)
    }

    #[tokio::test]
    async fn static_credentials_are_asked_for_once() {
        let (c, calls) = provider(None, false);
        for _ in 0..3 {
            let credential = c.get_credential().await.unwrap();
            assert_eq!(credential.key_id, "KEY0");
            assert_eq!(credential.token.as_deref(), Some("TOKEN-MUST-NOT-SHOW"));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(c.source().await.unwrap(), "CredentialsCode");
        let shown = format!("{c:?}");
        assert!(!shown.contains("SECRET-MUST-NOT-SHOW") && !shown.contains("TOKEN-MUST-NOT-SHOW"), "{shown}");
    }

    #[tokio::test]
    async fn expiring_credentials_are_refreshed_before_they_expire() {
        // An hour: good for 55 minutes.
        let (c, calls) = provider(Some(Duration::from_secs(3600)), false);
        c.get_credential().await.unwrap();
        c.get_credential().await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // Already in the refresh window (lifetime 0): asked for again every time.
        let (c, calls) = provider(Some(Duration::ZERO), false);
        assert_eq!(c.get_credential().await.unwrap().key_id, "KEY0");
        assert_eq!(c.get_credential().await.unwrap().key_id, "KEY1");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn failures_carry_their_causes_and_no_secret() {
        let (c, _) = provider(None, true);
        let e = c.get_credential().await.unwrap_err().to_string();
        assert!(e.contains("cannot get AWS credentials") && e.contains("the process said no"), "{e}");
    }
}
