//! Per-account credentials: where they come from, caching and refresh.
//!
//! SKELETON: the interface below is what the provider uses; the credentials engineer owns
//! this file and fills in assume-role, default chain and API keys.

use std::fmt;
use std::sync::Arc;

use aws_credential_types::Credentials;
use gateway_core::ProviderError;
use thiserror::Error;

use crate::config::AuthConfig;

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

#[derive(Debug, Error)]
pub enum CredentialsError {
    #[error("account `{account}`: {message}")]
    Invalid { account: String, message: String },
}

/// The credentials of one account, shared by all its requests.
#[derive(Clone)]
pub struct AccountCredentials {
    account: Arc<str>,
    source: Source,
}

#[derive(Clone)]
enum Source {
    Static(RequestAuth),
}

impl fmt::Debug for AccountCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountCredentials")
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

impl AccountCredentials {
    /// Builds the credential source for an account. No network call happens here.
    pub async fn from_config(
        account: &str,
        auth: &AuthConfig,
        _region: &str,
    ) -> Result<Self, CredentialsError> {
        match auth {
            AuthConfig::AccessKey {
                access_key_id,
                secret_access_key,
                session_token,
            } => Ok(Self::static_keys(
                account,
                Credentials::new(
                    access_key_id,
                    secret_access_key,
                    session_token.clone(),
                    None,
                    "gateway-config",
                ),
            )),
            other => Err(CredentialsError::Invalid {
                account: account.into(),
                message: format!("auth type `{}` is not implemented yet", other.kind()),
            }),
        }
    }

    pub fn static_keys(account: &str, credentials: Credentials) -> Self {
        Self {
            account: account.into(),
            source: Source::Static(RequestAuth::SigV4(credentials)),
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
        }
    }

    /// Bedrock said the credentials in `stale` expired although the cache thought them
    /// valid: drop them so the next `get` refreshes. Returns true if a retry may help.
    pub fn invalidate(&self, _stale: &RequestAuth) -> bool {
        match &self.source {
            Source::Static(_) => false,
        }
    }
}
