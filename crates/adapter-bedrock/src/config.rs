//! What the adapter needs to know about one provider account, already validated.

use std::fmt;

/// One Bedrock account: where to call and how to authenticate.
#[derive(Clone, PartialEq, Eq)]
pub struct BedrockAccountConfig {
    /// The account's name (the model-name prefix clients use).
    pub name: String,
    /// Default region for this account's models.
    pub region: String,
    /// Bedrock Runtime base URL override (VPC endpoint, FIPS, tests). `None` means
    /// `https://bedrock-runtime.{region}.amazonaws.com`.
    pub endpoint: Option<String>,
    pub auth: AuthConfig,
}

impl fmt::Debug for BedrockAccountConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BedrockAccountConfig")
            .field("name", &self.name)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("auth", &self.auth)
            .finish()
    }
}

/// How an account authenticates to Bedrock.
#[derive(Clone, PartialEq, Eq)]
pub enum AuthConfig {
    /// An IAM user's access key, optionally with a session token.
    AccessKey {
        access_key_id: String,
        secret_access_key: String,
        session_token: Option<String>,
    },
    /// STS AssumeRole on top of the default chain's credentials.
    AssumeRole {
        role_arn: String,
        external_id: Option<String>,
        session_name: String,
        duration_seconds: Option<u32>,
        sts_region: Option<String>,
        sts_endpoint: Option<String>,
    },
    /// The AWS default credential chain as it is.
    DefaultChain,
    /// A Bedrock API key (`Authorization: Bearer`), from config or `AWS_BEARER_TOKEN_BEDROCK`.
    ApiKey { key: Option<String> },
}

impl AuthConfig {
    /// The config name of this method, e.g. `assume-role`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::AccessKey { .. } => "access-key",
            Self::AssumeRole { .. } => "assume-role",
            Self::DefaultChain => "default-chain",
            Self::ApiKey { .. } => "api-key",
        }
    }
}

const REDACTED: &str = "<redacted>";

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AccessKey {
                access_key_id,
                session_token,
                ..
            } => f
                .debug_struct("AccessKey")
                .field("access_key_id", access_key_id)
                .field("secret_access_key", &REDACTED)
                .field("session_token", &session_token.as_ref().map(|_| REDACTED))
                .finish(),
            Self::AssumeRole {
                role_arn,
                external_id,
                session_name,
                duration_seconds,
                sts_region,
                sts_endpoint,
            } => f
                .debug_struct("AssumeRole")
                .field("role_arn", role_arn)
                .field("external_id", &external_id.as_ref().map(|_| REDACTED))
                .field("session_name", session_name)
                .field("duration_seconds", duration_seconds)
                .field("sts_region", sts_region)
                .field("sts_endpoint", sts_endpoint)
                .finish(),
            Self::DefaultChain => f.write_str("DefaultChain"),
            Self::ApiKey { key } => f
                .debug_struct("ApiKey")
                .field("key", &key.as_ref().map(|_| REDACTED))
                .finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secrets() {
        let auth = AuthConfig::AccessKey {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG".into(),
            session_token: Some("FwoGZXIvYXdzEXAMPLETOKEN".into()),
        };
        let shown = format!("{auth:?}");
        assert!(shown.contains("AKIDEXAMPLE"));
        assert!(!shown.contains("wJalrXUtnFEMI"));
        assert!(!shown.contains("FwoGZXIv"));
        let key = format!(
            "{:?}",
            AuthConfig::ApiKey {
                key: Some("bedrock-api-key-secret".into())
            }
        );
        assert!(!key.contains("bedrock-api-key-secret"));
    }
}
