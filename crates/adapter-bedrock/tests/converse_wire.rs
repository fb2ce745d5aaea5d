//! Converse wire conversions, one snapshot per fixture.
//!
//! - `fixtures/domain/request/*.json`: a domain `ChatRequest` (serde JSON) and the Converse
//!   body the adapter sends for it (ConverseStream's when the request streams). The routes
//!   here have no guardrail policy, so the fixture's `guardrail` is also the effective one.
//! - `fixtures/bedrock/converse/*.json`: a Bedrock Converse response and the domain
//!   `ChatResponse` it becomes. A fixture may carry a top-level `"_fixture"` object, removed
//!   before parsing: `{"unwrap_tool": "<name>"}` reads the answer as one to a request that
//!   forced that tool for structured output.

#![expect(
    clippy::unwrap_used,
    reason = "helpers outside #[test] functions fail the test on bad input, like the tests themselves"
)]

use gateway_adapter_bedrock::testing::parse_converse_response;
use gateway_adapter_bedrock::testing::{converse_body, Operation};
use gateway_core::{ChatRequest, ProviderRequest, Route};
use serde_json::Value;

#[test]
fn domain_requests_become_converse_bodies() {
    insta::glob!("../../../fixtures/domain/request", "*.json", |path| {
        let request: ChatRequest =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let operation = if request.stream {
            Operation::ConverseStream
        } else {
            Operation::Converse
        };
        let route = Route {
            public_name: request.model.clone(),
            account: "acct".into(),
            model_id: "model".into(),
            region: "us-east-1".into(),
            guardrail: Default::default(),
            finish_reason_style: Default::default(),
            drop_unsupported_params: false,
            family: None,
        };
        let call = ProviderRequest::new(&route, &request, request.requested_guardrail.as_ref());
        let body: Value = serde_json::from_slice(&converse_body(call, operation).unwrap()).unwrap();
        insta::with_settings!({ info => &operation.path_suffix() }, {
            insta::assert_json_snapshot!(body);
        });
    });
}

/// The fixture's Bedrock body and the forced tool its `_fixture` names, if any.
fn response_fixture(path: &std::path::Path) -> (Vec<u8>, Option<String>) {
    let mut fixture: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let options = fixture.as_object_mut().unwrap().remove("_fixture");
    let unwrap_tool = options.map(|options| {
        let Some(object) = options.as_object() else {
            panic!("_fixture in {} is not an object", path.display());
        };
        assert!(
            object.keys().all(|key| key == "unwrap_tool"),
            "unknown _fixture option in {}",
            path.display()
        );
        object["unwrap_tool"].as_str().unwrap().to_owned()
    });
    (serde_json::to_vec(&fixture).unwrap(), unwrap_tool)
}

#[test]
fn converse_responses_become_chat_responses() {
    insta::glob!("../../../fixtures/bedrock/converse", "*.json", |path| {
        let (body, unwrap_tool) = response_fixture(path);
        let response = parse_converse_response(&body, unwrap_tool.as_deref()).unwrap();
        insta::assert_json_snapshot!(response);
    });
}

#[test]
fn every_botocore_stop_reason_has_a_response_fixture() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/bedrock/converse");
    for reason in gateway_core::StopReason::KNOWN {
        let path = dir.join(format!("{}.json", reason.as_str()));
        let response = parse_converse_response(&std::fs::read(&path).unwrap(), None).unwrap();
        assert_eq!(response.stop_reason, reason, "{}", path.display());
    }
}
