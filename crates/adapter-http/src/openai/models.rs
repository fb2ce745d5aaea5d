//! The routable models to OpenAI's `/v1/models` list.

use gateway_core::{Route, VirtualModel};
use serde::Serialize;

#[derive(Serialize)]
struct ModelList<'a> {
    object: &'static str,
    data: Vec<Model<'a>>,
}

#[derive(Serialize)]
struct Model<'a> {
    id: &'a str,
    object: &'static str,
    /// Bedrock does not say when a model appeared; OpenAI clients only need a number.
    created: u64,
    owned_by: &'a str,
}

/// Who "owns" a virtual model in the list: the gateway spreads it over accounts.
const VIRTUAL_MODEL_OWNER: &str = "gateway";

/// `{"object":"list","data":[{"id":"<account>/<model>","object":"model",...}]}`: the
/// configured models, then the virtual models.
pub(crate) fn model_list_json<'a>(
    routes: impl IntoIterator<Item = &'a Route>,
    virtual_models: impl IntoIterator<Item = &'a VirtualModel>,
) -> Vec<u8> {
    let direct = routes.into_iter().map(|route| Model {
        id: &route.public_name,
        object: "model",
        created: 0,
        owned_by: &route.account,
    });
    let spread = virtual_models.into_iter().map(|model| Model {
        id: &model.name,
        object: "model",
        created: 0,
        owned_by: VIRTUAL_MODEL_OWNER,
    });
    let list = ModelList {
        object: "list",
        data: direct.chain(spread).collect(),
    };
    // Serializing strings into a Vec cannot fail.
    serde_json::to_vec(&list).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::test_support::route;

    #[test]
    fn configured_models_are_listed_in_order_then_virtual_models() {
        let first = route();
        let mut second = (*route()).clone();
        second.public_name = "other-account/titan".into();
        second.account = "other-account".into();
        let spread = VirtualModel {
            name: "claude-ha".into(),
            strategy: gateway_core::Strategy::Failover,
            targets: vec![first.clone()],
            weights: vec![],
        };
        let json = model_list_json([&*first, &second], [&spread]);
        let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
        insta::assert_json_snapshot!(value);
    }
}
