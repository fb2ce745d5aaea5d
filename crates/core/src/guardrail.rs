//! Bedrock Guardrails: what a client may ask for and what configuration imposes.
//!
//! [`effective_guardrail`] is the whole policy, a pure function with a table test over every
//! combination of configured mode and client request.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A guardrail to apply to one request (Converse `guardrailConfig`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardrailConfig {
    pub identifier: String,
    /// A version number or `DRAFT`.
    pub version: String,
    pub trace: Option<GuardrailTrace>,
    /// ConverseStream only; ignored for Converse.
    pub stream_processing_mode: Option<StreamProcessingMode>,
}

impl GuardrailConfig {
    /// True when both name the same guardrail version (trace and stream mode aside).
    pub fn same_guardrail(&self, other: &GuardrailConfig) -> bool {
        self.identifier == other.identifier && self.version == other.version
    }

    /// True when Bedrock will return `trace.guardrail`.
    pub fn trace_enabled(&self) -> bool {
        matches!(
            self.trace,
            Some(GuardrailTrace::Enabled | GuardrailTrace::EnabledFull)
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum GuardrailTrace {
    Enabled,
    Disabled,
    EnabledFull,
}

impl GuardrailTrace {
    pub const ALL: [&'static str; 3] = ["enabled", "disabled", "enabled_full"];

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "enabled" => Some(Self::Enabled),
            "disabled" => Some(Self::Disabled),
            "enabled_full" => Some(Self::EnabledFull),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "enabled",
            Self::Disabled => "disabled",
            Self::EnabledFull => "enabled_full",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum StreamProcessingMode {
    Sync,
    Async,
}

impl StreamProcessingMode {
    pub const ALL: [&'static str; 2] = ["sync", "async"];

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "sync" => Some(Self::Sync),
            "async" => Some(Self::Async),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sync => "sync",
            Self::Async => "async",
        }
    }
}

/// How a configured guardrail treats the client's.
///
/// Exhaustive on purpose: `effective_guardrail` and its table test decide every mode; a new
/// mode must be a compile error there, not a silent fallback.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuardrailMode {
    /// Used when the client sends none; a client guardrail replaces it.
    #[default]
    Default,
    /// Always applied; a client guardrail naming another one is rejected.
    Enforced,
}

/// A guardrail attached to an account or model in configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfiguredGuardrail {
    pub guardrail: GuardrailConfig,
    pub mode: GuardrailMode,
}

/// Guardrail policy of one route.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GuardrailPolicy {
    pub configured: Option<ConfiguredGuardrail>,
    /// False rejects any client `guardrailConfig` on this route.
    pub allow_client_guardrails: bool,
}

impl GuardrailPolicy {
    /// No configured guardrail; clients may bring their own.
    pub fn open() -> Self {
        Self {
            configured: None,
            allow_client_guardrails: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum GuardrailPolicyError {
    #[error(
        "guardrail {configured_identifier} version {configured_version} is enforced for this model; \
         the request's guardrailConfig ({requested_identifier} version {requested_version}) \
         differs: remove it or send the enforced one"
    )]
    Enforced {
        configured_identifier: String,
        configured_version: String,
        requested_identifier: String,
        requested_version: String,
    },
    #[error("client guardrails are not allowed for this model: remove guardrailConfig")]
    ClientGuardrailsDisallowed,
}

impl GuardrailPolicyError {
    /// Low-cardinality name, used as the OpenAI error `code`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Enforced { .. } => "guardrail_enforced",
            Self::ClientGuardrailsDisallowed => "guardrail_not_allowed",
        }
    }
}

/// The guardrail Bedrock should apply, given the route's policy and the client's request.
///
/// Bedrock applies one guardrail per request, so an enforced guardrail and a different
/// client guardrail cannot both be honoured: that is an error, never a silent drop. When the
/// client names the enforced guardrail itself, its `trace` and `streamProcessingMode` are
/// used where configuration leaves them open.
pub fn effective_guardrail(
    policy: &GuardrailPolicy,
    requested: Option<&GuardrailConfig>,
) -> Result<Option<GuardrailConfig>, GuardrailPolicyError> {
    if requested.is_some() && !policy.allow_client_guardrails {
        return Err(GuardrailPolicyError::ClientGuardrailsDisallowed);
    }
    match (&policy.configured, requested) {
        (None, requested) => Ok(requested.cloned()),
        (Some(configured), None) => Ok(Some(configured.guardrail.clone())),
        (Some(configured), Some(requested)) => match configured.mode {
            GuardrailMode::Default => Ok(Some(requested.clone())),
            GuardrailMode::Enforced if configured.guardrail.same_guardrail(requested) => {
                let enforced = &configured.guardrail;
                Ok(Some(GuardrailConfig {
                    identifier: enforced.identifier.clone(),
                    version: enforced.version.clone(),
                    trace: enforced.trace.or(requested.trace),
                    stream_processing_mode: enforced
                        .stream_processing_mode
                        .or(requested.stream_processing_mode),
                }))
            }
            GuardrailMode::Enforced => Err(GuardrailPolicyError::Enforced {
                configured_identifier: configured.guardrail.identifier.clone(),
                configured_version: configured.guardrail.version.clone(),
                requested_identifier: requested.identifier.clone(),
                requested_version: requested.version.clone(),
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guardrail(id: &str, version: &str) -> GuardrailConfig {
        GuardrailConfig {
            identifier: id.into(),
            version: version.into(),
            trace: None,
            stream_processing_mode: None,
        }
    }

    fn describe(result: &Result<Option<GuardrailConfig>, GuardrailPolicyError>) -> String {
        match result {
            Ok(None) => "none".into(),
            Ok(Some(g)) => format!(
                "apply {}:{} trace={}",
                g.identifier,
                g.version,
                g.trace.map_or("-", GuardrailTrace::as_str)
            ),
            Err(e) => format!("reject {}", e.code()),
        }
    }

    #[test]
    fn policy_table_covers_every_combination() {
        let configured = [
            ("no guardrail", None),
            (
                "default gr-conf:1",
                Some(ConfiguredGuardrail {
                    guardrail: guardrail("gr-conf", "1"),
                    mode: GuardrailMode::Default,
                }),
            ),
            (
                "enforced gr-conf:1",
                Some(ConfiguredGuardrail {
                    guardrail: guardrail("gr-conf", "1"),
                    mode: GuardrailMode::Enforced,
                }),
            ),
        ];
        let same_with_trace = GuardrailConfig {
            trace: Some(GuardrailTrace::Enabled),
            ..guardrail("gr-conf", "1")
        };
        let clients = [
            ("client none", None),
            ("client same", Some(same_with_trace)),
            ("client different", Some(guardrail("gr-client", "2"))),
        ];
        let mut table = String::new();
        for allow in [true, false] {
            for (configured_name, configured) in &configured {
                for (client_name, client) in &clients {
                    let policy = GuardrailPolicy {
                        configured: configured.clone(),
                        allow_client_guardrails: allow,
                    };
                    let result = effective_guardrail(&policy, client.as_ref());
                    table.push_str(&format!(
                        "{:<22} {:<18} allow_client={:<5} => {}\n",
                        configured_name,
                        client_name,
                        allow,
                        describe(&result)
                    ));
                }
            }
        }
        insta::assert_snapshot!(table);
    }

    #[test]
    fn enforced_configuration_wins_over_client_trace_when_set() {
        let policy = GuardrailPolicy {
            configured: Some(ConfiguredGuardrail {
                guardrail: GuardrailConfig {
                    trace: Some(GuardrailTrace::Disabled),
                    ..guardrail("gr", "1")
                },
                mode: GuardrailMode::Enforced,
            }),
            allow_client_guardrails: true,
        };
        let client = GuardrailConfig {
            trace: Some(GuardrailTrace::EnabledFull),
            stream_processing_mode: Some(StreamProcessingMode::Async),
            ..guardrail("gr", "1")
        };
        let effective = effective_guardrail(&policy, Some(&client))
            .unwrap()
            .unwrap();
        assert_eq!(effective.trace, Some(GuardrailTrace::Disabled));
        assert_eq!(
            effective.stream_processing_mode,
            Some(StreamProcessingMode::Async)
        );
    }
}
