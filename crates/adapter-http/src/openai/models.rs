//! The routable models to OpenAI's `/v1/models` list.

use gateway_core::Route;
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

/// `{"object":"list","data":[{"id":"<account>/<model>","object":"model",...}]}`.
pub(crate) fn model_list_json<'a>(routes: impl IntoIterator<Item = &'a Route>) -> Vec<u8> {
    let list = ModelList {
        object: "list",
        data: routes
            .into_iter()
            .map(|route| Model {
                id: &route.public_name,
                object: "model",
                created: 0,
                owned_by: &route.account,
            })
            .collect(),
    };
    // Serializing strings into a Vec cannot fail.
    serde_json::to_vec(&list).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::test_support::route;

    #[test]
    fn configured_models_are_listed_in_order() {
        let first = route();
        let mut second = (*route()).clone();
        second.public_name = "other-account/titan".into();
        second.account = "other-account".into();
        let json = model_list_json([&*first, &second]);
        let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
        insta::assert_json_snapshot!(value);
    }
}
