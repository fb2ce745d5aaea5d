//! Converse wire conversions, one snapshot per fixture.
//!
//! - `fixtures/domain/request/*.json`: a domain `ChatRequest` (serde JSON) and the Converse
//!   body the adapter sends for it (ConverseStream's when the request streams). The routes
//!   here have no guardrail policy, so the fixture's `guardrail` is also the effective one.
//!   A fixture may say which model the route goes to, beside the request:
//!   `"route": {"model_id": ..., "family"?: ...}` (without it: model id `model`, which names
//!   no family).
//! - `fixtures/domain/request_unsupported/*.json`: the same, for requests the route's model
//!   cannot honour, and the error the adapter refuses them with before any call.
//! - `fixtures/bedrock/converse/*.json`: a Bedrock Converse response and the domain
//!   `ChatResponse` it becomes. A fixture may carry a top-level `"_fixture"` object, removed
//!   before parsing: `{"unwrap_tool": "<name>"}` reads the answer as one to a request that
//!   forced that tool for structured output.

#![allow(
    clippy::unwrap_used,
    reason = "the fixture reader outside #[test] functions fails the test by panicking"
)]

use gateway_adapter_bedrock::testing::parse_converse_response;
use gateway_adapter_bedrock::testing::{converse_body, Operation};
use std::path::Path;

use gateway_core::{ChatRequest, ProviderError, ProviderRequest, Route};
use serde::Deserialize;
use serde_json::Value;

/// A domain request fixture: the request and, optionally, its route's model.
struct Fixture {
    request: ChatRequest,
    route: Route,
}

#[derive(Default, Deserialize)]
struct FixtureRoute {
    model_id: Option<String>,
    family: Option<String>,
}

#[derive(Deserialize)]
struct RouteMember {
    #[serde(default)]
    route: FixtureRoute,
}

fn fixture(path: &Path) -> Fixture {
    let text = std::fs::read_to_string(path).unwrap();
    // `ChatRequest` ignores the `route` member; it is read apart.
    let request: ChatRequest = serde_json::from_str(&text).unwrap();
    let RouteMember { route } = serde_json::from_str(&text).unwrap();
    let route = Route {
        public_name: request.model.clone(),
        account: "acct".into(),
        model_id: route.model_id.unwrap_or_else(|| "model".into()),
        region: "us-east-1".into(),
        guardrail: Default::default(),
        finish_reason_style: Default::default(),
        drop_unsupported_params: false,
        price: None,
        family: route.family,
        kind: gateway_core::ModelKind::Chat,
    };
    Fixture { request, route }
}

fn operation(request: &ChatRequest) -> Operation {
    if request.stream {
        Operation::ConverseStream
    } else {
        Operation::Converse
    }
}

#[test]
fn domain_requests_become_converse_bodies() {
    insta::glob!("../../../fixtures/domain/request", "*.json", |path| {
        let Fixture { request, route } = fixture(path);
        let operation = operation(&request);
        let call = ProviderRequest::new(&route, &request, request.requested_guardrail.as_ref());
        let body: Value = serde_json::from_slice(&converse_body(call, operation).unwrap()).unwrap();
        insta::with_settings!({ info => &operation.path_suffix() }, {
            insta::assert_json_snapshot!(body);
        });
    });
}

/// CountTokens bodies: the counted parts of the Converse body (`messages`, `system`,
/// `toolConfig`, `additionalModelRequestFields`) under `input.converse`; the guardrail, the
/// inference settings and the other options generate, and are left out.
#[test]
fn domain_requests_become_count_tokens_bodies() {
    insta::glob!("../../../fixtures/domain/count_tokens", "*.json", |path| {
        let Fixture { request, route } = fixture(path);
        let call = ProviderRequest::new(&route, &request, request.requested_guardrail.as_ref());
        let body: Value =
            serde_json::from_slice(&converse_body(call, Operation::CountTokens).unwrap()).unwrap();
        let converse: Value =
            serde_json::from_slice(&converse_body(call, Operation::Converse).unwrap()).unwrap();
        let input = &body["input"]["converse"];
        for member in [
            "messages",
            "system",
            "toolConfig",
            "additionalModelRequestFields",
        ] {
            assert_eq!(input.get(member), converse.get(member), "{member}");
        }
        insta::assert_json_snapshot!(body);
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
fn requests_the_model_cannot_honour_are_refused_before_any_call() {
    insta::glob!(
        "../../../fixtures/domain/request_unsupported",
        "*.json",
        |path| {
            let Fixture { request, route } = fixture(path);
            let call = ProviderRequest::new(&route, &request, request.requested_guardrail.as_ref());
            let error = converse_body(call, operation(&request)).unwrap_err();
            assert!(
                matches!(error, ProviderError::Unsupported { .. }),
                "{}: {error:?}",
                path.display()
            );
            insta::assert_debug_snapshot!(error);
        }
    );
}

#[test]
fn requests_outside_bedrocks_ranges_are_refused_before_any_call() {
    insta::glob!(
        "../../../fixtures/domain/request_out_of_range",
        "*.json",
        |path| {
            let Fixture { request, route } = fixture(path);
            let call = ProviderRequest::new(&route, &request, request.requested_guardrail.as_ref());
            let error = converse_body(call, operation(&request)).unwrap_err();
            assert!(
                matches!(error, ProviderError::InvalidRequest { .. }),
                "{}: {error:?}",
                path.display()
            );
            insta::assert_debug_snapshot!(error);
        }
    );
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
