//! Checking text against a configured guardrail on its own, without a model (Bedrock's
//! ApplyGuardrail): the request and outcome, the guardrails a gateway offers for it, and
//! which of them a key may use.
//!
//! The rule: a check runs only a guardrail the operator listed ([`GuardrailCatalog`]), on
//! that guardrail's account, for a key whose [`GuardrailAllowList`] names it. A client naming
//! a guardrail by identifier and version gets the configured one with that identifier and
//! version, never an arbitrary guardrail on the gateway's credentials.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::Value;
use thiserror::Error;

use crate::guardrail::GuardrailConfig;

/// What the checked text is: a prompt (`INPUT`) or a model's answer (`OUTPUT`). The guardrail
/// applies its input or output policies accordingly.
///
/// Exhaustive on purpose: ApplyGuardrail knows exactly these two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GuardrailSource {
    Input,
    Output,
}

impl GuardrailSource {
    /// The wire name, as both the gateway's door and Bedrock spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Input => "INPUT",
            Self::Output => "OUTPUT",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "INPUT" => Some(Self::Input),
            "OUTPUT" => Some(Self::Output),
            _ => None,
        }
    }
}

/// How a client names the guardrail to check against.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GuardrailRef {
    /// A name from the configuration.
    Named(String),
    /// A configured guardrail's identifier and version.
    Explicit { identifier: String, version: String },
}

/// One check: which guardrail, on what kind of text, and the texts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardrailCheckRequest {
    pub guardrail: GuardrailRef,
    pub source: GuardrailSource,
    /// Each text is one content block, checked (and masked) on its own.
    pub content: Vec<String>,
}

/// What the guardrail did.
///
/// Exhaustive on purpose: ApplyGuardrail answers exactly these two, and each door must say
/// how it shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GuardrailAction {
    /// Nothing to block or mask: the text may be used as it is.
    None,
    /// The guardrail blocked or masked something; `outputs` is what may be used instead.
    Intervened,
}

/// The guardrail's verdict, provider-neutral but for the assessments, which are passed
/// through as the provider wrote them (their schema is the provider's and grows with it).
#[derive(Debug, Clone, PartialEq)]
pub struct GuardrailCheckOutcome {
    pub action: GuardrailAction,
    /// The texts to use instead when the guardrail intervened (masked, or its blocked
    /// message); usually empty when it did not.
    pub outputs: Vec<String>,
    pub assessments: Value,
    /// The provider's usage counts, passed through; `None` when it sent none.
    pub usage: Option<Value>,
}

/// A guardrail the operator offers for checks: where it runs and which version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckableGuardrail {
    /// The configured name clients use, unique across accounts.
    pub name: String,
    /// The account whose credentials run it.
    pub account: String,
    pub guardrail: GuardrailConfig,
}

/// Every guardrail offered for checks, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuardrailCatalog {
    by_name: BTreeMap<String, Arc<CheckableGuardrail>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("guardrail name `{0}` is configured twice; names must be unique across accounts")]
pub struct DuplicateGuardrailName(pub String);

impl GuardrailCatalog {
    pub fn new(
        guardrails: impl IntoIterator<Item = CheckableGuardrail>,
    ) -> Result<Self, DuplicateGuardrailName> {
        let mut by_name = BTreeMap::new();
        for guardrail in guardrails {
            let name = guardrail.name.clone();
            if by_name.insert(name.clone(), Arc::new(guardrail)).is_some() {
                return Err(DuplicateGuardrailName(name));
            }
        }
        Ok(Self { by_name })
    }

    pub fn get(&self, name: &str) -> Option<&Arc<CheckableGuardrail>> {
        self.by_name.get(name)
    }

    /// The configured guardrail `reference` names: by name, or the configured one with that
    /// identifier and version (the first by name when two names share them).
    pub fn resolve(
        &self,
        reference: &GuardrailRef,
    ) -> Result<&Arc<CheckableGuardrail>, GuardrailCheckError> {
        match reference {
            GuardrailRef::Named(name) => self
                .get(name)
                .ok_or_else(|| GuardrailCheckError::UnknownGuardrail { name: name.clone() }),
            GuardrailRef::Explicit {
                identifier,
                version,
            } => self
                .by_name
                .values()
                .find(|configured| {
                    configured.guardrail.identifier == *identifier
                        && configured.guardrail.version == *version
                })
                .ok_or_else(|| GuardrailCheckError::NotConfigured {
                    identifier: identifier.clone(),
                    version: version.clone(),
                }),
        }
    }
}

/// The guardrails a gateway key may check against, by configured name. The default allows
/// none: a key reaches a guardrail only when the operator says so.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuardrailAllowList {
    names: Arc<BTreeSet<String>>,
}

impl GuardrailAllowList {
    pub fn new(names: impl IntoIterator<Item = String>) -> Self {
        Self {
            names: Arc::new(names.into_iter().collect()),
        }
    }

    pub fn allows(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }
}

/// Why a check was refused before any provider was called.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum GuardrailCheckError {
    #[error("the guardrail `{name}` is not configured for checks on this gateway")]
    UnknownGuardrail { name: String },
    #[error(
        "no guardrail configured for checks on this gateway has identifier `{identifier}` \
         and version `{version}`"
    )]
    NotConfigured { identifier: String, version: String },
    #[error("this gateway key may not use the guardrail `{name}`; ask the operator to add it to the key's guardrails")]
    NotAllowed { name: String },
    #[error("content must hold at least one text")]
    EmptyContent,
    #[error("this gateway has no guardrail checker")]
    NoChecker,
}

impl GuardrailCheckError {
    /// Low-cardinality name, for error codes.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownGuardrail { .. } | Self::NotConfigured { .. } => "guardrail_not_found",
            Self::NotAllowed { .. } => "guardrail_not_allowed",
            Self::EmptyContent => "invalid_value",
            Self::NoChecker => "guardrail_checks_unavailable",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guardrail(name: &str, account: &str, identifier: &str, version: &str) -> CheckableGuardrail {
        CheckableGuardrail {
            name: name.into(),
            account: account.into(),
            guardrail: GuardrailConfig {
                identifier: identifier.into(),
                version: version.into(),
                trace: None,
                stream_processing_mode: None,
            },
        }
    }

    fn catalog() -> GuardrailCatalog {
        GuardrailCatalog::new([
            guardrail("pii", "prod", "gr-pii", "1"),
            guardrail("pii-draft", "prod", "gr-pii", "DRAFT"),
            guardrail("words", "dev", "gr-words", "3"),
        ])
        .unwrap()
    }

    #[test]
    fn a_name_resolves_to_its_account_and_version() {
        let found = catalog()
            .resolve(&GuardrailRef::Named("words".into()))
            .unwrap()
            .clone();
        assert_eq!(found.account, "dev");
        assert_eq!(found.guardrail.identifier, "gr-words");
        assert_eq!(found.guardrail.version, "3");
    }

    #[test]
    fn an_explicit_reference_must_match_a_configured_identifier_and_version() {
        let catalog = catalog();
        let explicit = |identifier: &str, version: &str| GuardrailRef::Explicit {
            identifier: identifier.into(),
            version: version.into(),
        };
        assert_eq!(
            catalog.resolve(&explicit("gr-pii", "DRAFT")).unwrap().name,
            "pii-draft"
        );
        assert_eq!(
            catalog.resolve(&explicit("gr-pii", "2")),
            Err(GuardrailCheckError::NotConfigured {
                identifier: "gr-pii".into(),
                version: "2".into()
            })
        );
        assert!(catalog.resolve(&explicit("gr-other", "1")).is_err());
    }

    #[test]
    fn unknown_names_and_duplicates_are_refused() {
        assert_eq!(
            catalog().resolve(&GuardrailRef::Named("nope".into())),
            Err(GuardrailCheckError::UnknownGuardrail {
                name: "nope".into()
            })
        );
        assert_eq!(
            GuardrailCatalog::new([
                guardrail("pii", "a", "x", "1"),
                guardrail("pii", "b", "y", "1")
            ]),
            Err(DuplicateGuardrailName("pii".into()))
        );
    }

    #[test]
    fn the_default_allow_list_allows_nothing() {
        assert!(!GuardrailAllowList::default().allows("pii"));
        let list = GuardrailAllowList::new(["pii".to_owned()]);
        assert!(list.allows("pii"));
        assert!(!list.allows("words"));
    }

    #[test]
    fn sources_round_trip_their_wire_names() {
        for source in [GuardrailSource::Input, GuardrailSource::Output] {
            assert_eq!(GuardrailSource::parse(source.as_str()), Some(source));
        }
        assert_eq!(GuardrailSource::parse("input"), None);
    }
}
