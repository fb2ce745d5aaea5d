//! ApplyGuardrail wire conversions, one snapshot per fixture.
//!
//! - `fixtures/domain/guardrail_check/*.json`: a check (`guardrail` {identifier, version},
//!   `source`, `content`) and the path and body the adapter sends for it.
//! - `fixtures/bedrock/apply_guardrail/*.json`: a Bedrock ApplyGuardrail answer and the
//!   outcome it becomes (or the error, for answers that are not one).

use gateway_adapter_bedrock::testing::{
    apply_guardrail_body, apply_guardrail_path, parse_apply_guardrail_response,
};
use gateway_core::GuardrailSource;
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckFixture {
    guardrail: GuardrailFixture,
    source: String,
    content: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GuardrailFixture {
    identifier: String,
    version: String,
}

#[test]
fn checks_become_apply_guardrail_requests() {
    insta::glob!(
        "../../../fixtures/domain/guardrail_check",
        "*.json",
        |path| {
            let fixture: CheckFixture =
                serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
            let source = GuardrailSource::parse(&fixture.source).unwrap();
            let body: Value =
                serde_json::from_slice(&apply_guardrail_body(source, &fixture.content)).unwrap();
            let path =
                apply_guardrail_path(&fixture.guardrail.identifier, &fixture.guardrail.version);
            insta::assert_json_snapshot!(serde_json::json!({ "path": path, "body": body }));
        }
    );
}

#[test]
fn apply_guardrail_answers_become_outcomes() {
    insta::glob!(
        "../../../fixtures/bedrock/apply_guardrail",
        "*.json",
        |path| {
            let body = std::fs::read(path).unwrap();
            insta::assert_debug_snapshot!(parse_apply_guardrail_response(&body));
        }
    );
}
