//! Configuration values that can only be made valid: each type checks its rule once, in
//! `TryFrom` (which serde's `try_from` uses), and everything that holds one may rely on it.
//! The rules are STS's and Bedrock's own, so a mistake is refused at start-up (and by
//! `gateway check`) instead of by AWS with an obscure message on the first request.

use std::fmt;

use http::Uri;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use thiserror::Error;

use crate::signing::host_header_value;

/// Why a configuration value was refused. The message never contains a secret.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct InvalidValue(String);

impl InvalidValue {
    pub(super) fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }

    pub(super) fn zero() -> Self {
        Self::new("must be greater than 0")
    }
}

/// `TryFrom<&str>` for values that are made from a `String`, for hosts that build them in code.
macro_rules! try_from_str {
    ($($ty:ty),*) => {$(
        impl TryFrom<&str> for $ty {
            type Error = InvalidValue;
            fn try_from(value: &str) -> Result<Self, InvalidValue> {
                Self::try_from(value.to_owned())
            }
        }
    )*};
}

try_from_str!(
    Region,
    Endpoint,
    RoleArn,
    SessionName,
    ExternalId,
    AccessKeyId,
    RequiredSecret
);

/// An AWS region name such as `us-east-1`: lowercase letters, digits and `-`, so it always
/// makes a valid host name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct Region(String);

impl TryFrom<String> for Region {
    type Error = InvalidValue;
    fn try_from(region: String) -> Result<Self, InvalidValue> {
        let ok = !region.is_empty()
            && region
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if ok {
            Ok(Self(region))
        } else {
            Err(InvalidValue::new(format!(
                "`{region}` is not an AWS region like us-east-1"
            )))
        }
    }
}

impl Region {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An `http://` or `https://` base URL with a host and no query (Bedrock Runtime or STS
/// endpoint override).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Endpoint {
    /// Scheme, authority and any path prefix, without a trailing `/`.
    base: String,
    /// The `Host` value a signature over a request to it covers.
    host: String,
}

impl TryFrom<String> for Endpoint {
    type Error = InvalidValue;
    fn try_from(url: String) -> Result<Self, InvalidValue> {
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(InvalidValue::new("must start with https:// or http://"));
        }
        let uri: Uri = url
            .parse()
            .map_err(|_| InvalidValue::new(format!("`{url}` is not a URL")))?;
        if uri.query().is_some() {
            return Err(InvalidValue::new("must not have a query"));
        }
        let host = host_header_value(&uri)
            .filter(|host| !host.is_empty())
            .ok_or_else(|| InvalidValue::new(format!("`{url}` has no host")))?;
        Ok(Self {
            base: url.trim_end_matches('/').to_owned(),
            host,
        })
    }
}

impl Endpoint {
    /// The base URL without a trailing `/`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The `Host` header value for requests to this endpoint.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The URL to show an operator: scheme, host and any path prefix, without the user
    /// information a configured URL may carry.
    pub fn without_user_info(&self) -> String {
        let (scheme, rest) = self.base.split_once("://").unwrap_or(("https", &self.base));
        let path = rest.find('/').map_or("", |at| &rest[at..]);
        format!("{scheme}://{}{path}", self.host)
    }
}

/// An IAM role ARN: `arn:<partition>:iam::<12-digit account>:role/<path and name>`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct RoleArn(String);

impl TryFrom<String> for RoleArn {
    type Error = InvalidValue;
    fn try_from(arn: String) -> Result<Self, InvalidValue> {
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        let ok = match parts.as_slice() {
            ["arn", partition, "iam", "", account, resource] => {
                !partition.is_empty()
                    && account.len() == 12
                    && account.chars().all(|c| c.is_ascii_digit())
                    && resource
                        .strip_prefix("role/")
                        .is_some_and(|name| !name.is_empty() && !name.ends_with('/'))
                    && (20..=2048).contains(&arn.len())
            }
            _ => false,
        };
        if ok {
            Ok(Self(arn))
        } else {
            Err(InvalidValue::new(
                "must be a role ARN like arn:aws:iam::123456789012:role/bedrock-invoke",
            ))
        }
    }
}

impl RoleArn {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoleArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Letters, digits and `_` (the `\w` of STS's patterns) plus `extra`.
fn sts_characters(value: &str, extra: &str) -> bool {
    value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || extra.contains(c))
}

/// STS `RoleSessionName`: 2-64 characters matching `[\w+=,.@-]*`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct SessionName(String);

impl TryFrom<String> for SessionName {
    type Error = InvalidValue;
    fn try_from(name: String) -> Result<Self, InvalidValue> {
        if (2..=64).contains(&name.len()) && sts_characters(&name, "+=,.@-") {
            Ok(Self(name))
        } else {
            Err(InvalidValue::new(
                "must be 2-64 characters of letters, digits and +=,.@_-",
            ))
        }
    }
}

impl Default for SessionName {
    /// What CloudTrail shows for the gateway's sessions unless configured otherwise.
    fn default() -> Self {
        Self("ai-gateway".into())
    }
}

impl SessionName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// STS `ExternalId`: 2-1224 characters matching `[\w+=,.@:\/-]*`. A shared secret between
/// the role's owner and the gateway: never printed, never echoed in a message.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct ExternalId(SecretString);

impl TryFrom<String> for ExternalId {
    type Error = InvalidValue;
    fn try_from(id: String) -> Result<Self, InvalidValue> {
        let id = SecretString::from(id);
        let value = id.expose_secret();
        if (2..=1224).contains(&value.len()) && sts_characters(value, "+=,.@:/-") {
            Ok(Self(id))
        } else {
            Err(InvalidValue::new(
                "must be 2-1224 characters of letters, digits and +=,.@:/_-",
            ))
        }
    }
}

impl ExternalId {
    pub fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }
}

/// STS `DurationSeconds`: 900-43200 (the role's own maximum may be lower; STS says so).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u32")]
pub struct SessionDuration(u32);

impl TryFrom<u32> for SessionDuration {
    type Error = InvalidValue;
    fn try_from(seconds: u32) -> Result<Self, InvalidValue> {
        if (900..=43_200).contains(&seconds) {
            Ok(Self(seconds))
        } else {
            Err(InvalidValue::new("must be between 900 and 43200"))
        }
    }
}

impl SessionDuration {
    pub fn seconds(self) -> u32 {
        self.0
    }
}

/// An access key id (`AKIA...`, `ASIA...`): not secret, but required.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct AccessKeyId(String);

impl TryFrom<String> for AccessKeyId {
    type Error = InvalidValue;
    fn try_from(id: String) -> Result<Self, InvalidValue> {
        if id.trim().is_empty() {
            Err(InvalidValue::new("must not be empty"))
        } else {
            Ok(Self(id))
        }
    }
}

impl AccessKeyId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A secret that must be present (a secret access key, a Bedrock API key): never printed.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct RequiredSecret(SecretString);

impl TryFrom<String> for RequiredSecret {
    type Error = InvalidValue;
    fn try_from(secret: String) -> Result<Self, InvalidValue> {
        if secret.trim().is_empty() {
            Err(InvalidValue::new("must not be empty"))
        } else {
            Ok(Self(secret.into()))
        }
    }
}

impl RequiredSecret {
    pub fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused<T: TryFrom<String, Error = InvalidValue> + fmt::Debug>(value: &str) -> String {
        match T::try_from(value.to_owned()) {
            Ok(accepted) => panic!("{value} was accepted as {accepted:?}"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn endpoints_are_shown_without_user_information() {
        let shown = |url: &str| {
            Endpoint::try_from(url.to_owned())
                .unwrap()
                .without_user_info()
        };
        assert_eq!(
            shown("https://user:pa55@proxy.internal:8443/bedrock/"),
            "https://proxy.internal:8443/bedrock"
        );
        assert_eq!(shown("http://127.0.0.1:9100"), "http://127.0.0.1:9100");
    }

    #[test]
    fn endpoints_need_a_scheme_a_host_and_no_query() {
        assert_eq!(
            refused::<Endpoint>("ftp://x"),
            "must start with https:// or http://"
        );
        assert_eq!(
            refused::<Endpoint>("127.0.0.1:9100"),
            "must start with https:// or http://"
        );
        assert_eq!(
            refused::<Endpoint>("http://127.0.0.1:9999/?a=b"),
            "must not have a query"
        );
        assert_eq!(refused::<Endpoint>("http://"), "`http://` is not a URL");
        assert_eq!(
            refused::<Endpoint>("http://not a url"),
            "`http://not a url` is not a URL"
        );
        let endpoint = Endpoint::try_from("http://127.0.0.1:9100/").unwrap();
        assert_eq!(endpoint.base(), "http://127.0.0.1:9100");
        assert_eq!(endpoint.host(), "127.0.0.1:9100");
        let default_port = Endpoint::try_from("https://bedrock.example:443/prefix").unwrap();
        assert_eq!(default_port.host(), "bedrock.example");
        assert_eq!(default_port.base(), "https://bedrock.example:443/prefix");
    }

    #[test]
    fn role_arns_have_the_iam_role_shape() {
        for good in [
            "arn:aws:iam::123456789012:role/bedrock-invoke",
            "arn:aws-us-gov:iam::123456789012:role/path/to/role",
        ] {
            RoleArn::try_from(good.to_owned()).unwrap();
        }
        for bad in [
            "bedrock-role",
            "arn:aws:iam::123456789012:user/alice",
            "arn:aws:sts::123456789012:role/x",
            "arn:aws:iam:us-east-1:123456789012:role/x",
            "arn:aws:iam::12345:role/x",
            "arn:aws:iam::123456789012:role/",
        ] {
            assert_eq!(
                refused::<RoleArn>(bad),
                "must be a role ARN like arn:aws:iam::123456789012:role/bedrock-invoke",
                "{bad}"
            );
        }
    }

    #[test]
    fn session_names_follow_sts() {
        for good in ["ai-gateway", "a+b=c,d.e@f_g-h", "ab", &"x".repeat(64)] {
            SessionName::try_from(good.to_owned()).unwrap();
        }
        for bad in ["a", "ai gateway", "ai/gateway", &"x".repeat(65)] {
            refused::<SessionName>(bad);
        }
        assert_eq!(SessionName::default().as_str(), "ai-gateway");
    }

    #[test]
    fn external_ids_follow_sts_and_are_never_echoed() {
        ExternalId::try_from("tenant:42/a+b=c,d.e@f_g-h".to_owned()).unwrap();
        refused::<ExternalId>("x");
        let spaced = refused::<ExternalId>("secret with spaces");
        assert!(!spaced.contains("secret"), "{spaced}");
        refused::<ExternalId>(&"x".repeat(1225));
        let shown = format!(
            "{:?}",
            ExternalId::try_from("ext-secret-1".to_owned()).unwrap()
        );
        assert!(!shown.contains("ext-secret-1"), "{shown}");
    }

    #[test]
    fn session_durations_are_within_sts_limits() {
        assert!(SessionDuration::try_from(899).is_err());
        assert!(SessionDuration::try_from(43_201).is_err());
        assert_eq!(SessionDuration::try_from(3600).unwrap().seconds(), 3600);
    }

    #[test]
    fn secrets_are_required_and_never_shown() {
        assert_eq!(refused::<RequiredSecret>(" "), "must not be empty");
        let shown = format!(
            "{:?}",
            RequiredSecret::try_from("wJalrXUtnFEMI".to_owned()).unwrap()
        );
        assert!(!shown.contains("wJalrXUtnFEMI"), "{shown}");
        assert_eq!(refused::<AccessKeyId>(""), "must not be empty");
    }

    #[test]
    fn regions_make_host_names() {
        assert_eq!(
            refused::<Region>("US East"),
            "`US East` is not an AWS region like us-east-1"
        );
        assert_eq!(
            Region::try_from("eu-west-1".to_owned()).unwrap().as_str(),
            "eu-west-1"
        );
    }
}
