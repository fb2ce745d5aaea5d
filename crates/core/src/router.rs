//! Model routing: public names to provider routes.
//!
//! A configured model is named `<account>/<model>` and has one [`Route`]. A virtual model
//! has a name of its own and several direct models as targets: `failover` tries them in the
//! configured order, `weighted` first picks one by weight and keeps the others, in order,
//! as fallbacks. Targets are direct models only, so routing cannot loop.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::chat::Usage;
use crate::finish_reason::FinishReasonStyle;
use crate::governance::{Cost, Price};
use crate::guardrail::GuardrailPolicy;
use crate::options::ServiceTier;
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
    /// What the model's tokens cost; `None`: answers are not priced (and spend nothing
    /// against a budget).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<Price>,
    /// What the model answers: chat requests or embedding requests.
    #[serde(default)]
    pub kind: ModelKind,
}

/// What a model answers. A request of the other kind is refused before any call
/// ([`GatewayError::WrongModelKind`](crate::GatewayError::WrongModelKind)).
///
/// Matched exhaustively: a new kind needs its own use case in the service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// Chat completions (Converse).
    #[default]
    Chat,
    /// Embeddings (one vector per text).
    Embedding,
}

impl ModelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Chat => "chat",
            Self::Embedding => "embedding",
        }
    }
}

impl ModelKind {
    /// `a chat`, `an embedding`: for messages.
    pub fn with_article(self) -> &'static str {
        match self {
            Self::Chat => "a chat",
            Self::Embedding => "an embedding",
        }
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Route {
    /// What an answer from this route with `usage` costs under `tier`, if it has a price.
    pub fn cost(&self, usage: &Usage, tier: Option<ServiceTier>) -> Option<Cost> {
        self.price.map(|price| price.cost(usage, tier))
    }
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
    pub price: Option<Price>,
    /// Decided by the host (from the model id or configuration); [`ModelKind::Chat`] by
    /// default.
    pub kind: ModelKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RouteError {
    #[error("the model `{0}` does not exist: use one of the names GET /v1/models lists, as `<account>/<model>`")]
    UnknownModel(String),
    #[error("the model name `{0}` must have the form `<account>/<model>` or name a virtual model")]
    MalformedName(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("model `{0}` is configured twice")]
pub struct DuplicateModel(pub String);

/// How a virtual model spreads requests over its targets.
///
/// Matched exhaustively by [`VirtualModel::target_order`]: a new strategy needs its own order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// The targets in the configured order.
    Failover,
    /// One target picked by weight, then the others in the configured order.
    Weighted,
}

/// One configured virtual model, as the catalog is built from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualModelEntry {
    /// The name clients use, as it is (it needs no `/`).
    pub name: String,
    pub strategy: Strategy,
    /// Public names of configured models, `<account>/<model>`.
    pub targets: Vec<String>,
    /// One per target, each above 0; only with [`Strategy::Weighted`].
    pub weights: Option<Vec<u32>>,
}

/// A model name that routes to several configured models.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualModel {
    pub name: String,
    pub strategy: Strategy,
    /// At least one, no two the same.
    pub targets: Vec<Arc<Route>>,
    /// One per target, each above 0, with [`Strategy::Weighted`]; empty otherwise.
    pub weights: Vec<u32>,
}

impl VirtualModel {
    /// The targets in the order to try them. `draw` (a uniformly random `u64`) is called
    /// once, by weighted models only.
    pub fn target_order(&self, draw: impl FnOnce() -> u64) -> TargetOrder<'_> {
        let first = match self.strategy {
            Strategy::Failover => None,
            Strategy::Weighted => Some(pick_by_weight(&self.weights, draw())),
        };
        TargetOrder::new(&self.targets, first)
    }
}

/// The index whose share of `weights` contains `draw`, scaled to the weights' sum.
fn pick_by_weight(weights: &[u32], draw: u64) -> usize {
    let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
    // Scaling instead of `draw % total` keeps every share exact to within 2^-64.
    let mut point = ((u128::from(draw) * u128::from(total)) >> 64) as u64;
    for (index, &weight) in weights.iter().enumerate() {
        let weight = u64::from(weight);
        if point < weight {
            return index;
        }
        point -= weight;
    }
    // Unreachable with valid weights (point < total); the first target is a safe answer.
    0
}

/// Targets in the order to try them: an optional first pick, then the rest in order.
#[derive(Debug, Clone)]
pub struct TargetOrder<'a> {
    targets: &'a [Arc<Route>],
    /// Tried before the others, and skipped when their turn comes.
    first: Option<usize>,
    first_taken: bool,
    next: usize,
}

impl<'a> TargetOrder<'a> {
    fn new(targets: &'a [Arc<Route>], first: Option<usize>) -> Self {
        Self {
            targets,
            first,
            first_taken: false,
            next: 0,
        }
    }
}

impl<'a> Iterator for TargetOrder<'a> {
    type Item = &'a Arc<Route>;

    fn next(&mut self) -> Option<Self::Item> {
        if !self.first_taken {
            self.first_taken = true;
            if let Some(first) = self.first {
                return self.targets.get(first);
            }
        }
        while let Some(target) = self.targets.get(self.next) {
            let index = self.next;
            self.next += 1;
            if Some(index) != self.first {
                return Some(target);
            }
        }
        None
    }
}

/// What a public name routes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// A configured `<account>/<model>`.
    Model(Arc<Route>),
    Virtual(Arc<VirtualModel>),
}

impl Resolution {
    /// The routes to try, in order: the one model, or the virtual model's targets (see
    /// [`VirtualModel::target_order`]).
    pub fn target_order(&self, draw: impl FnOnce() -> u64) -> TargetOrder<'_> {
        match self {
            Self::Model(route) => TargetOrder::new(std::slice::from_ref(route), None),
            Self::Virtual(model) => model.target_order(draw),
        }
    }
}

/// Why a virtual model cannot be built; [`VirtualModelError::field`] says which of its
/// settings is wrong so a configuration file can name the key.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub struct VirtualModelError {
    pub name: String,
    pub problem: VirtualModelProblem,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum VirtualModelProblem {
    #[error("the name is taken by a configured model or another virtual model")]
    NameTaken,
    #[error("needs at least one target")]
    NoTargets,
    #[error("`{target}` is not a configured model: targets are `<account>/<model>` names")]
    UnknownTarget { index: usize, target: String },
    #[error("`{target}` is listed twice")]
    RepeatedTarget { index: usize, target: String },
    #[error("strategy \"weighted\" needs `weights`, one per target")]
    WeightsMissing,
    #[error("`weights` only apply to strategy \"weighted\"")]
    WeightsWithoutWeighted,
    #[error("{weights} weights for {targets} targets: give one per target")]
    WeightCount { weights: usize, targets: usize },
    #[error("must be greater than 0")]
    ZeroWeight { index: usize },
    /// A virtual model answers one kind of request: its targets are all chat models or all
    /// embedding models.
    #[error("`{target}` is {kind} model, unlike the first target")]
    MixedKinds {
        index: usize,
        target: String,
        kind: &'static str,
    },
}

impl VirtualModelError {
    /// The setting at fault, relative to the virtual model (`targets[1]`, `weights`), or
    /// `None` for the model as a whole.
    pub fn field(&self) -> Option<String> {
        match &self.problem {
            VirtualModelProblem::NameTaken => None,
            VirtualModelProblem::NoTargets => Some("targets".into()),
            VirtualModelProblem::UnknownTarget { index, .. }
            | VirtualModelProblem::RepeatedTarget { index, .. }
            | VirtualModelProblem::MixedKinds { index, .. } => Some(format!("targets[{index}]")),
            VirtualModelProblem::WeightsMissing
            | VirtualModelProblem::WeightsWithoutWeighted
            | VirtualModelProblem::WeightCount { .. } => Some("weights".into()),
            VirtualModelProblem::ZeroWeight { index } => Some(format!("weights[{index}]")),
        }
    }
}

impl fmt::Display for VirtualModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "virtual model `{}`", self.name)?;
        if let Some(field) = self.field() {
            write!(f, ", {field}")?;
        }
        write!(f, ": {}", self.problem)
    }
}

/// The configured models, looked up by public name.
#[derive(Debug, Clone, Default)]
pub struct ModelCatalog {
    routes: HashMap<String, Arc<Route>>,
    /// Public names in configuration order, for `/v1/models`.
    names: Vec<String>,
    virtual_models: HashMap<String, Arc<VirtualModel>>,
    /// Virtual names in configuration order.
    virtual_names: Vec<String>,
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
                price: entry.price,
                kind: entry.kind,
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

    /// Adds virtual models over the models already in the catalog; every rule about a
    /// virtual model is checked here.
    pub fn with_virtual_models(
        mut self,
        entries: impl IntoIterator<Item = VirtualModelEntry>,
    ) -> Result<Self, VirtualModelError> {
        for entry in entries {
            let model = self.virtual_model(entry)?;
            self.virtual_names.push(model.name.clone());
            self.virtual_models
                .insert(model.name.clone(), Arc::new(model));
        }
        Ok(self)
    }

    fn virtual_model(&self, entry: VirtualModelEntry) -> Result<VirtualModel, VirtualModelError> {
        let VirtualModelEntry {
            name,
            strategy,
            targets: target_names,
            weights,
        } = entry;
        let fail = |problem| VirtualModelError {
            name: name.clone(),
            problem,
        };
        if self.routes.contains_key(&name) || self.virtual_models.contains_key(&name) {
            return Err(fail(VirtualModelProblem::NameTaken));
        }
        if target_names.is_empty() {
            return Err(fail(VirtualModelProblem::NoTargets));
        }
        let mut seen = HashSet::new();
        let mut targets = Vec::with_capacity(target_names.len());
        for (index, target) in target_names.into_iter().enumerate() {
            let Some(route) = self.routes.get(&target) else {
                return Err(fail(VirtualModelProblem::UnknownTarget { index, target }));
            };
            if !seen.insert(target.clone()) {
                return Err(fail(VirtualModelProblem::RepeatedTarget { index, target }));
            }
            if targets
                .first()
                .is_some_and(|first: &Arc<Route>| first.kind != route.kind)
            {
                let kind = route.kind.with_article();
                return Err(fail(VirtualModelProblem::MixedKinds {
                    index,
                    target,
                    kind,
                }));
            }
            targets.push(Arc::clone(route));
        }
        let weights = match (strategy, weights) {
            (Strategy::Failover, None) => Vec::new(),
            (Strategy::Failover, Some(_)) => {
                return Err(fail(VirtualModelProblem::WeightsWithoutWeighted))
            }
            (Strategy::Weighted, None) => return Err(fail(VirtualModelProblem::WeightsMissing)),
            (Strategy::Weighted, Some(weights)) => {
                if weights.len() != targets.len() {
                    return Err(fail(VirtualModelProblem::WeightCount {
                        weights: weights.len(),
                        targets: targets.len(),
                    }));
                }
                if let Some(index) = weights.iter().position(|&w| w == 0) {
                    return Err(fail(VirtualModelProblem::ZeroWeight { index }));
                }
                weights
            }
        };
        Ok(VirtualModel {
            name,
            strategy,
            targets,
            weights,
        })
    }
}

impl ModelRouter for ModelCatalog {
    fn resolve(&self, public_name: &str) -> Result<Resolution, RouteError> {
        if let Some(route) = self.routes.get(public_name) {
            return Ok(Resolution::Model(Arc::clone(route)));
        }
        if let Some(model) = self.virtual_models.get(public_name) {
            return Ok(Resolution::Virtual(Arc::clone(model)));
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

    fn virtual_models(&self) -> Vec<Arc<VirtualModel>> {
        self.virtual_names
            .iter()
            .filter_map(|name| self.virtual_models.get(name).cloned())
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
            price: None,
            kind: ModelKind::Chat,
        }
    }

    #[test]
    fn a_virtual_model_over_chat_and_embedding_models_is_refused() {
        let embedder = ModelEntry {
            kind: ModelKind::Embedding,
            ..entry("east", "titan", "amazon.titan-embed-text-v2:0")
        };
        let catalog = ModelCatalog::new([
            entry("east", "claude", "us.claude"),
            embedder.clone(),
            ModelEntry {
                model: "titan-2".into(),
                ..embedder
            },
        ])
        .unwrap();
        let error = catalog
            .clone()
            .with_virtual_models([virtual_entry(
                "mixed",
                Strategy::Failover,
                &["east/claude", "east/titan"],
                None,
            )])
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "virtual model `mixed`, targets[1]: `east/titan` is an embedding model, unlike the first target"
        );
        let embedders = catalog
            .with_virtual_models([virtual_entry(
                "embed-ha",
                Strategy::Failover,
                &["east/titan", "east/titan-2"],
                None,
            )])
            .unwrap();
        let Resolution::Virtual(model) = embedders.resolve("embed-ha").unwrap() else {
            panic!("a virtual model");
        };
        assert!(model
            .targets
            .iter()
            .all(|target| target.kind == ModelKind::Embedding));
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
        let Resolution::Model(route) = catalog.resolve("internal-bedrock/claude-3").unwrap() else {
            panic!("a direct model");
        };
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

    fn three_models() -> ModelCatalog {
        ModelCatalog::new([
            entry("east", "claude", "us.claude"),
            entry("west", "claude", "us.claude"),
            entry("eu", "claude", "eu.claude"),
        ])
        .unwrap()
    }

    fn virtual_entry(
        name: &str,
        strategy: Strategy,
        targets: &[&str],
        weights: Option<Vec<u32>>,
    ) -> VirtualModelEntry {
        VirtualModelEntry {
            name: name.into(),
            strategy,
            targets: targets.iter().map(|&t| t.into()).collect(),
            weights,
        }
    }

    fn order(resolution: &Resolution, draw: u64) -> Vec<&str> {
        resolution
            .target_order(|| draw)
            .map(|route| route.public_name.as_str())
            .collect()
    }

    #[test]
    fn a_failover_model_tries_its_targets_in_the_configured_order() {
        let catalog = three_models()
            .with_virtual_models([virtual_entry(
                "claude-ha",
                Strategy::Failover,
                &["west/claude", "east/claude", "eu/claude"],
                None,
            )])
            .unwrap();
        let resolution = catalog.resolve("claude-ha").unwrap();
        for draw in [0, u64::MAX] {
            assert_eq!(
                order(&resolution, draw),
                ["west/claude", "east/claude", "eu/claude"]
            );
        }
        let direct = catalog.resolve("east/claude").unwrap();
        assert_eq!(order(&direct, 0), ["east/claude"]);
        let names: Vec<_> = catalog
            .virtual_models()
            .iter()
            .map(|m| m.name.clone())
            .collect();
        assert_eq!(names, ["claude-ha"]);
        assert_eq!(catalog.models().len(), 3, "virtual models are listed apart");
    }

    #[test]
    fn a_weighted_model_tries_the_pick_first_then_the_others_in_order() {
        let catalog = three_models()
            .with_virtual_models([virtual_entry(
                "spread",
                Strategy::Weighted,
                &["east/claude", "west/claude", "eu/claude"],
                Some(vec![2, 1, 1]),
            )])
            .unwrap();
        let resolution = catalog.resolve("spread").unwrap();
        let quarter = 1u64 << 62;
        assert_eq!(
            order(&resolution, 0),
            ["east/claude", "west/claude", "eu/claude"]
        );
        assert_eq!(
            order(&resolution, 2 * quarter - 1),
            ["east/claude", "west/claude", "eu/claude"]
        );
        assert_eq!(
            order(&resolution, 2 * quarter),
            ["west/claude", "east/claude", "eu/claude"]
        );
        assert_eq!(
            order(&resolution, 3 * quarter),
            ["eu/claude", "east/claude", "west/claude"]
        );
        assert_eq!(
            order(&resolution, u64::MAX),
            ["eu/claude", "east/claude", "west/claude"]
        );
    }

    #[test]
    fn every_rule_about_virtual_models_names_the_setting() {
        let a = "east/claude";
        let b = "west/claude";
        let cases = [
            (
                "name of a model",
                virtual_entry(a, Strategy::Failover, &[b], None),
            ),
            (
                "no targets",
                virtual_entry("v", Strategy::Failover, &[], None),
            ),
            (
                "unknown target",
                virtual_entry("v", Strategy::Failover, &[a, "east/titan"], None),
            ),
            (
                "virtual target",
                virtual_entry("v", Strategy::Failover, &[a, "taken"], None),
            ),
            (
                "repeated target",
                virtual_entry("v", Strategy::Failover, &[a, b, a], None),
            ),
            (
                "weighted without weights",
                virtual_entry("v", Strategy::Weighted, &[a, b], None),
            ),
            (
                "failover with weights",
                virtual_entry("v", Strategy::Failover, &[a, b], Some(vec![1, 1])),
            ),
            (
                "weights count",
                virtual_entry("v", Strategy::Weighted, &[a, b], Some(vec![1])),
            ),
            (
                "zero weight",
                virtual_entry("v", Strategy::Weighted, &[a, b], Some(vec![1, 0])),
            ),
            (
                "name of a virtual model",
                virtual_entry("taken", Strategy::Failover, &[b], None),
            ),
        ];
        let mut lines = Vec::new();
        for (case, entry) in cases {
            let error = three_models()
                .with_virtual_models([
                    virtual_entry("taken", Strategy::Failover, &[a], None),
                    entry,
                ])
                .unwrap_err();
            lines.push(format!("{case}: [{:?}] {error}", error.field()));
        }
        let table = lines.join("\n");
        insta::assert_snapshot!(table);
    }
}
