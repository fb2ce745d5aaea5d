//! What the unit tests of several modules share.

use gateway_core::Route;

/// A route to `model_id` in `us-east-1` with default policy, and `family` as configured.
pub(crate) fn route(model_id: &str, family: Option<&str>) -> Route {
    Route {
        public_name: "acct/model".into(),
        account: "acct".into(),
        model_id: model_id.into(),
        region: "us-east-1".into(),
        guardrail: Default::default(),
        finish_reason_style: Default::default(),
        family: family.map(str::to_owned),
        drop_unsupported_params: false,
        price: None,
        kind: gateway_core::ModelKind::Chat,
    }
}
