//! Converse wire conversions, one snapshot per fixture.
//!
//! - `fixtures/domain/request/*.json`: a domain `ChatRequest` (serde JSON) and the Converse
//!   body the adapter sends for it (ConverseStream's when the request streams). The routes
//!   here have no guardrail policy, so the fixture's `guardrail` is also the effective one.
//! - `fixtures/bedrock/converse/*.json`: a Bedrock Converse response and the domain
//!   `ChatResponse` it becomes.

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

#[test]
fn converse_responses_become_chat_responses() {
    insta::glob!("../../../fixtures/bedrock/converse", "*.json", |path| {
        let response = parse_converse_response(&std::fs::read(path).unwrap()).unwrap();
        insta::assert_json_snapshot!(response);
    });
}

#[test]
fn every_botocore_stop_reason_has_a_response_fixture() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/bedrock/converse");
    for reason in gateway_core::StopReason::KNOWN {
        let path = dir.join(format!("{}.json", reason.as_str()));
        let response = parse_converse_response(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(response.stop_reason, reason, "{}", path.display());
    }
}
