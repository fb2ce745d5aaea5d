//! How an account authenticates to Bedrock: one variant per `type`, each with exactly its own
//! keys, so a key that belongs to another type is refused by serde, naming it.
//!
//! Serde buffers an internally tagged enum before it picks the variant, so an error inside a
//! variant has no path below the enum. Each field is therefore deserialized through
//! [`named`], whose errors read `<field>: <message>`; a host that reports error paths
//! (`serde_path_to_error`) can move the field into the path.

use secrecy::SecretString;
use serde::de::{Deserializer, Error as _};
use serde::Deserialize;

use super::values::{
    AccessKeyId, Endpoint, ExternalId, Region, RequiredSecret, RoleArn, SessionDuration,
    SessionName,
};

/// How an account authenticates to Bedrock. `Debug` shows no secret: they are
/// [`SecretString`]s.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum AuthConfig {
    /// An IAM user's access key, optionally with a session token.
    AccessKey {
        #[serde(deserialize_with = "access_key_id")]
        access_key_id: AccessKeyId,
        #[serde(deserialize_with = "secret_access_key")]
        secret_access_key: RequiredSecret,
        /// An empty token (an unset `${AWS_SESSION_TOKEN}` exported as empty) means none.
        #[serde(default, deserialize_with = "session_token")]
        session_token: Option<SecretString>,
    },
    /// STS AssumeRole on top of the default chain's credentials.
    AssumeRole {
        #[serde(deserialize_with = "role_arn")]
        role_arn: RoleArn,
        /// Empty means none, like an unset variable.
        #[serde(default, deserialize_with = "external_id")]
        external_id: Option<ExternalId>,
        #[serde(default, deserialize_with = "session_name")]
        session_name: SessionName,
        #[serde(default, deserialize_with = "duration_seconds")]
        duration_seconds: Option<SessionDuration>,
        /// Default: the account's region.
        #[serde(default, deserialize_with = "sts_region")]
        sts_region: Option<Region>,
        /// Default: `https://sts.{sts_region}.amazonaws.com`, or `AWS_ENDPOINT_URL_STS`.
        #[serde(default, deserialize_with = "sts_endpoint")]
        sts_endpoint: Option<Endpoint>,
    },
    /// The AWS default credential chain as it is.
    DefaultChain {},
    /// A Bedrock API key (`Authorization: Bearer`). The host decides where it comes from
    /// (the gateway: its config, else `AWS_BEARER_TOKEN_BEDROCK`); the adapter reads no
    /// environment variable.
    ApiKey {
        #[serde(deserialize_with = "api_key")]
        key: RequiredSecret,
    },
}

impl AuthConfig {
    /// The config name of this method, e.g. `assume-role`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::AccessKey { .. } => "access-key",
            Self::AssumeRole { .. } => "assume-role",
            Self::DefaultChain {} => "default-chain",
            Self::ApiKey { .. } => "api-key",
        }
    }
}

/// Deserializes one field of a variant, naming it in the error (see the module comment).
fn named<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    field: &str,
    deserializer: D,
) -> Result<T, D::Error> {
    T::deserialize(deserializer).map_err(|error| D::Error::custom(format!("{field}: {error}")))
}

/// An optional value where an empty string means absent, like an unset variable.
fn non_empty<'de, D: Deserializer<'de>, T: TryFrom<String>>(
    field: &str,
    deserializer: D,
) -> Result<Option<T>, D::Error>
where
    T::Error: std::fmt::Display,
{
    let text: String = named(field, deserializer)?;
    if text.is_empty() {
        return Ok(None);
    }
    T::try_from(text)
        .map(Some)
        .map_err(|error| D::Error::custom(format!("{field}: {error}")))
}

macro_rules! named_fields {
    ($($name:ident: $ty:ty;)*) => {$(
        fn $name<'de, D: Deserializer<'de>>(deserializer: D) -> Result<$ty, D::Error> {
            named(stringify!($name), deserializer)
        }
    )*};
}

named_fields! {
    access_key_id: AccessKeyId;
    secret_access_key: RequiredSecret;
    role_arn: RoleArn;
    session_name: SessionName;
    duration_seconds: Option<SessionDuration>;
    sts_region: Option<Region>;
    sts_endpoint: Option<Endpoint>;
}

fn api_key<'de, D: Deserializer<'de>>(deserializer: D) -> Result<RequiredSecret, D::Error> {
    named("key", deserializer)
}

fn session_token<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<SecretString>, D::Error> {
    non_empty("session_token", deserializer)
}

fn external_id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<ExternalId>, D::Error> {
    non_empty("external_id", deserializer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: serde_json::Value) -> Result<AuthConfig, String> {
        serde_json::from_value(json).map_err(|e| e.to_string())
    }

    #[test]
    fn keys_of_another_type_are_refused_by_name() {
        let error = parse(serde_json::json!({
            "type": "access-key", "access_key_id": "AKID", "secret_access_key": "s",
            "role_arn": "arn:aws:iam::123456789012:role/r"
        }))
        .unwrap_err();
        assert!(error.starts_with("unknown field `role_arn`"), "{error}");
        let error = parse(serde_json::json!({"type": "default-chain", "key": "k"})).unwrap_err();
        assert!(error.starts_with("unknown field `key`"), "{error}");
    }

    #[test]
    fn field_errors_name_the_field() {
        let error = parse(serde_json::json!({
            "type": "assume-role", "role_arn": "arn:aws:iam::123456789012:role/r",
            "session_name": "ai gateway"
        }))
        .unwrap_err();
        assert_eq!(
            error,
            "session_name: must be 2-64 characters of letters, digits and +=,.@_-"
        );
    }

    #[test]
    fn defaults_and_empty_values() {
        let auth = parse(serde_json::json!({
            "type": "assume-role", "role_arn": "arn:aws:iam::123456789012:role/r",
            "external_id": ""
        }))
        .unwrap();
        let AuthConfig::AssumeRole {
            external_id,
            session_name,
            ..
        } = auth
        else {
            panic!("{auth:?}")
        };
        assert!(external_id.is_none());
        assert_eq!(session_name, SessionName::default());
    }

    #[test]
    fn debug_never_shows_secrets() {
        let access = parse(serde_json::json!({
            "type": "access-key", "access_key_id": "AKIDEXAMPLE",
            "secret_access_key": "wJalrXUtnFEMI/K7MDENG", "session_token": "FwoGZXIvYXdzEXAMPLETOKEN"
        }))
        .unwrap();
        let shown = format!("{access:?}");
        assert!(shown.contains("AKIDEXAMPLE"));
        assert!(!shown.contains("wJalrXUtnFEMI"), "{shown}");
        assert!(!shown.contains("FwoGZXIv"), "{shown}");
        let key =
            parse(serde_json::json!({"type": "api-key", "key": "bedrock-api-key-secret"})).unwrap();
        assert!(!format!("{key:?}").contains("bedrock-api-key-secret"));
        let role = parse(serde_json::json!({
            "type": "assume-role", "role_arn": "arn:aws:iam::123456789012:role/r",
            "external_id": "ext-secret-1"
        }))
        .unwrap();
        let shown = format!("{role:?}");
        assert!(!shown.contains("ext-secret-1"), "{shown}");
        assert!(
            shown.contains("arn:aws:iam::123456789012:role/r"),
            "{shown}"
        );
    }
}
