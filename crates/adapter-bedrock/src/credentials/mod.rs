//! Per-account credentials: where they come from (this module), caching and refresh
//! (`cache`), and the `aws-config` loader they share (`aws_sdk`).
//!
//! - `access-key`: the configured keys, used as they are.
//! - `api-key`: a Bedrock API key (`Authorization: Bearer`), as the host passes it.
//! - `default-chain`: `aws-config`'s default chain (environment, shared config and credentials
//!   files, web identity token, ECS / EKS Pod Identity container credentials, instance metadata).
//! - `assume-role`: `aws-config`'s [`AssumeRoleProvider`] on top of that chain.
//!
//! The settings arrive already validated ([`AuthConfig`]'s values cannot be invalid), so
//! nothing here checks them again.

mod aws_sdk;
mod cache;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aws_config::sts::AssumeRoleProvider;
use aws_config::Region as AwsRegion;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use gateway_core::clock::SharedClock;
use gateway_core::{CredentialStatus, ProviderError};
use secrecy::ExposeSecret;
use thiserror::Error;

use crate::config::{AuthConfig, Region};
use aws_sdk::load_sdk_config;
use cache::RefreshingCache;

/// What to put on one request.
#[derive(Clone)]
pub enum RequestAuth {
    /// Sign with SigV4 (adds `x-amz-security-token` when the credentials carry a session token).
    SigV4(Credentials),
    /// Send `Authorization: Bearer <key>` (Bedrock API keys); no SigV4.
    Bearer(Arc<str>),
}

impl fmt::Debug for RequestAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // `Credentials`' own Debug redacts the secret and token.
            Self::SigV4(credentials) => f.debug_tuple("SigV4").field(credentials).finish(),
            Self::Bearer(_) => f.write_str("Bearer(<redacted>)"),
        }
    }
}

/// A credential source that cannot be built from its configuration.
#[derive(Debug, Error)]
pub enum CredentialsError {
    #[error("account `{account}`: {message}")]
    Invalid { account: String, message: String },
}

/// The credentials of one account, shared by all its requests. Cloning is cheap and clones
/// share one cache.
#[derive(Clone)]
pub struct AccountCredentials {
    account: Arc<str>,
    source: Source,
}

#[derive(Clone)]
enum Source {
    Static(RequestAuth),
    Refreshing(Arc<RefreshingCache>),
}

impl fmt::Debug for AccountCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match &self.source {
            Source::Static(RequestAuth::SigV4(_)) => "static keys",
            Source::Static(RequestAuth::Bearer(_)) => "api key",
            Source::Refreshing(cache) => cache.what.as_str(),
        };
        f.debug_struct("AccountCredentials")
            .field("account", &self.account)
            .field("source", &source)
            .finish()
    }
}

impl AccountCredentials {
    /// Builds the credential source for an account. No network call happens here: STS, the
    /// container endpoint or instance metadata are first asked on [`get`](Self::get) (or
    /// [`probe`](Self::probe)).
    pub async fn from_config(
        account: &str,
        auth: &AuthConfig,
        region: &str,
    ) -> Result<Self, CredentialsError> {
        Self::from_config_with_clock(account, auth, region, SharedClock::system()).await
    }

    /// [`from_config`](Self::from_config) with the clock that decides when cached credentials
    /// are renewed; it is also the time source of the STS client (SigV4 dates, session names).
    pub async fn from_config_with_clock(
        account: &str,
        auth: &AuthConfig,
        region: &str,
        clock: SharedClock,
    ) -> Result<Self, CredentialsError> {
        match auth {
            AuthConfig::AccessKey {
                access_key_id,
                secret_access_key,
                session_token,
            } => Ok(Self::static_keys(
                account,
                Credentials::new(
                    access_key_id.as_str(),
                    secret_access_key.expose_secret(),
                    session_token
                        .as_ref()
                        .map(|token| token.expose_secret().to_owned()),
                    None,
                    "gateway-config",
                ),
            )),
            AuthConfig::ApiKey { key } => Ok(Self {
                account: account.into(),
                source: Source::Static(RequestAuth::Bearer(key.expose_secret().into())),
            }),
            AuthConfig::DefaultChain {} => {
                let sdk = load_sdk_config(region, None, &clock).await;
                let chain =
                    sdk.credentials_provider()
                        .ok_or_else(|| CredentialsError::Invalid {
                            account: account.into(),
                            message: "the AWS default credential chain could not be built".into(),
                        })?;
                Ok(Self::refreshing(
                    account,
                    "the AWS default credential chain".into(),
                    chain,
                    None,
                    clock,
                ))
            }
            AuthConfig::AssumeRole {
                role_arn,
                external_id,
                session_name,
                duration_seconds,
                sts_region,
                sts_endpoint,
            } => {
                let sts_region = sts_region.as_ref().map_or(region, Region::as_str);
                let sts_endpoint = sts_endpoint.as_ref().map(|endpoint| endpoint.base());
                // The chain that supplies the base credentials lives in this config too; it
                // reads its own STS endpoint (web identity) from AWS_ENDPOINT_URL_STS /
                // AWS_ENDPOINT_URL, while `sts_endpoint` applies to the AssumeRole call.
                let sdk = load_sdk_config(sts_region, sts_endpoint, &clock).await;
                let mut builder = AssumeRoleProvider::builder(role_arn.as_str())
                    .configure(&sdk)
                    .region(AwsRegion::new(sts_region.to_owned()))
                    .session_name(session_name.as_str());
                if let Some(external_id) = external_id {
                    builder = builder.external_id(external_id.expose_secret());
                }
                if let Some(duration) = duration_seconds {
                    builder =
                        builder.session_length(Duration::from_secs(u64::from(duration.seconds())));
                }
                let provider = builder.build().await;
                Ok(Self::refreshing(
                    account,
                    format!("assume role `{role_arn}`"),
                    SharedCredentialsProvider::new(provider),
                    external_id.as_ref().map(|id| id.expose_secret().to_owned()),
                    clock,
                ))
            }
        }
    }

    /// Fixed keys (an IAM user's access key, optionally with a session token); never refreshed.
    pub fn static_keys(account: &str, credentials: Credentials) -> Self {
        Self {
            account: account.into(),
            source: Source::Static(RequestAuth::SigV4(credentials)),
        }
    }

    /// Any `aws-credential-types` provider behind this module's cache (for hosts that bring their
    /// own provider, and for tests).
    pub fn from_provider(
        account: &str,
        provider: impl ProvideCredentials + 'static,
        clock: SharedClock,
    ) -> Self {
        Self::refreshing(
            account,
            "the credential provider".into(),
            SharedCredentialsProvider::new(provider),
            None,
            clock,
        )
    }

    fn refreshing(
        account: &str,
        what: String,
        provider: SharedCredentialsProvider,
        redact: Option<String>,
        clock: SharedClock,
    ) -> Self {
        let account: Arc<str> = account.into();
        let cache = RefreshingCache::new(Arc::clone(&account), what, provider, redact, clock);
        Self {
            account,
            source: Source::Refreshing(Arc::new(cache)),
        }
    }

    pub fn account(&self) -> &str {
        &self.account
    }

    /// Credentials for one request, from the cache when they are fresh. Failure is
    /// `ProviderError::Credentials` naming the account (and role), never a secret.
    pub async fn get(&self) -> Result<RequestAuth, ProviderError> {
        match &self.source {
            Source::Static(auth) => Ok(auth.clone()),
            Source::Refreshing(cache) => cache.get().await.map(RequestAuth::SigV4),
        }
    }

    /// Bedrock said the credentials in `stale` expired although the cache thought them
    /// valid: drop them so the next `get` refreshes. Returns true if a retry may help.
    pub fn invalidate(&self, stale: &RequestAuth) -> bool {
        match (&self.source, stale) {
            (Source::Refreshing(cache), RequestAuth::SigV4(stale)) => cache.invalidate(stale),
            _ => false,
        }
    }

    /// Where the credentials stand, without fetching any.
    pub fn status(&self) -> CredentialStatus {
        match &self.source {
            Source::Static(_) => CredentialStatus::fixed(),
            Source::Refreshing(cache) => cache.status(),
        }
    }

    /// Obtains credentials once without calling Bedrock (`gateway check --probe`); the result
    /// stays cached for the requests that follow.
    pub async fn probe(&self) -> Result<(), ProviderError> {
        self.get().await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SessionName;

    #[tokio::test]
    async fn static_sources_are_never_invalidated() {
        let keys = AccountCredentials::static_keys(
            "acct",
            Credentials::new("AKID", "secret", None, None, "t"),
        );
        let auth = keys.get().await.unwrap();
        assert!(!keys.invalidate(&auth));
        keys.probe().await.unwrap();

        let auth_config = AuthConfig::ApiKey {
            key: "bedrock-key".to_owned().try_into().unwrap(),
        };
        let api = AccountCredentials::from_config("acct", &auth_config, "us-east-1")
            .await
            .unwrap();
        let bearer = api.get().await.unwrap();
        assert!(matches!(&bearer, RequestAuth::Bearer(k) if &**k == "bedrock-key"));
        assert!(!api.invalidate(&bearer));
        assert_eq!(format!("{bearer:?}"), "Bearer(<redacted>)");
    }

    #[tokio::test]
    async fn debug_output_never_shows_the_external_id() {
        let auth = AuthConfig::AssumeRole {
            role_arn: "arn:aws:iam::111122223333:role/bedrock"
                .to_owned()
                .try_into()
                .unwrap(),
            external_id: Some("ext-secret-1".to_owned().try_into().unwrap()),
            session_name: SessionName::default(),
            duration_seconds: None,
            sts_region: None,
            sts_endpoint: Some("http://127.0.0.1:9".try_into().unwrap()),
        };
        let creds = AccountCredentials::from_config("acct", &auth, "us-east-1")
            .await
            .unwrap();
        let shown = format!("{creds:?}");
        assert!(!shown.contains("ext-secret-1"), "{shown}");
        assert!(
            shown.contains("arn:aws:iam::111122223333:role/bedrock"),
            "{shown}"
        );
    }
}
