//! Model routing: public names `<account>/<model>` to provider routes.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::finish_reason::FinishReasonStyle;
use crate::guardrail::GuardrailPolicy;
use crate::ports::ModelRouter;

/// Where one public model name goes. Built once at start and shared by every request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// `<account>/<model>`, as clients name it.
    pub public_name: String,
    /// The provider account's name (the part before `/`).
    pub account: String,
    /// Bedrock model id, inference-profile id or ARN.
    pub model_id: String,
    pub region: String,
    pub guardrail: GuardrailPolicy,
    /// The account's finish-reason style; a gateway key may override it.
    pub finish_reason_style: FinishReasonStyle,
    /// The model family as configured (e.g. `anthropic.claude`), for model ids that do not
    /// say it (application inference profile ARNs); `None` lets the provider adapter read
    /// it from `model_id`.
    pub family: Option<String>,
    /// The account drops parameters the gateway cannot honour instead of refusing the
    /// request; a gateway key may override it.
    pub drop_unsupported_params: bool,
}

/// One configured model, as the catalog is built from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelEntry {
    pub account: String,
    pub model: String,
    pub model_id: String,
    pub region: String,
    pub guardrail: GuardrailPolicy,
    pub finish_reason_style: FinishReasonStyle,
    pub family: Option<String>,
    pub drop_unsupported_params: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RouteError {
    #[error("the model `{0}` does not exist: use one of the names GET /v1/models lists, as `<account>/<model>`")]
    UnknownModel(String),
    #[error("the model name `{0}` must have the form `<account>/<model>`")]
    MalformedName(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("model `{0}` is configured twice")]
pub struct DuplicateModel(pub String);

/// The configured models, looked up by public name.
#[derive(Debug, Clone, Default)]
pub struct ModelCatalog {
    routes: HashMap<String, Arc<Route>>,
    /// Public names in configuration order, for `/v1/models`.
    names: Vec<String>,
}

impl ModelCatalog {
    pub fn new(entries: impl IntoIterator<Item = ModelEntry>) -> Result<Self, DuplicateModel> {
        let mut catalog = Self::default();
        for entry in entries {
            let public_name = format!("{}/{}", entry.account, entry.model);
            let route = Route {
                public_name: public_name.clone(),
                account: entry.account,
                model_id: entry.model_id,
                region: entry.region,
                guardrail: entry.guardrail,
                finish_reason_style: entry.finish_reason_style,
                family: entry.family,
                drop_unsupported_params: entry.drop_unsupported_params,
            };
            if catalog
                .routes
                .insert(public_name.clone(), Arc::new(route))
                .is_some()
            {
                return Err(DuplicateModel(public_name));
            }
            catalog.names.push(public_name);
        }
        Ok(catalog)
    }
}

impl ModelRouter for ModelCatalog {
    fn resolve(&self, public_name: &str) -> Result<Arc<Route>, RouteError> {
        if let Some(route) = self.routes.get(public_name) {
            return Ok(Arc::clone(route));
        }
        match public_name.split_once('/') {
            Some((account, model)) if !account.is_empty() && !model.is_empty() => {
                Err(RouteError::UnknownModel(public_name.to_owned()))
            }
            _ => Err(RouteError::MalformedName(public_name.to_owned())),
        }
    }

    fn models(&self) -> Vec<Arc<Route>> {
        self.names
            .iter()
            .filter_map(|name| self.routes.get(name).cloned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(account: &str, model: &str, model_id: &str) -> ModelEntry {
        ModelEntry {
            account: account.into(),
            model: model.into(),
            model_id: model_id.into(),
            region: "us-east-1".into(),
            guardrail: GuardrailPolicy::open(),
            finish_reason_style: FinishReasonStyle::Bedrock,
            family: None,
            drop_unsupported_params: false,
        }
    }

    #[test]
    fn resolves_configured_names_and_lists_them_in_order() {
        let catalog = ModelCatalog::new([
            entry(
                "internal-bedrock",
                "claude-3",
                "anthropic.claude-3-sonnet-20240229-v1:0",
            ),
            entry(
                "internal-bedrock",
                "profile",
                "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0",
            ),
        ])
        .unwrap();
        let route = catalog.resolve("internal-bedrock/claude-3").unwrap();
        assert_eq!(route.model_id, "anthropic.claude-3-sonnet-20240229-v1:0");
        assert_eq!(route.account, "internal-bedrock");
        let names: Vec<_> = catalog
            .models()
            .iter()
            .map(|r| r.public_name.clone())
            .collect();
        assert_eq!(
            names,
            ["internal-bedrock/claude-3", "internal-bedrock/profile"]
        );
    }

    #[test]
    fn unknown_and_malformed_names_are_told_apart() {
        let catalog = ModelCatalog::new([entry("a", "m", "id")]).unwrap();
        assert_eq!(
            catalog.resolve("a/other"),
            Err(RouteError::UnknownModel("a/other".into()))
        );
        for bad in ["", "claude-3", "/m", "a/"] {
            assert_eq!(
                catalog.resolve(bad),
                Err(RouteError::MalformedName(bad.into())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn duplicate_names_are_refused() {
        let result = ModelCatalog::new([entry("a", "m", "1"), entry("a", "m", "2")]);
        assert_eq!(result.unwrap_err(), DuplicateModel("a/m".into()));
    }
}
