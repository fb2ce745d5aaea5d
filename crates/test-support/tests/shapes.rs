//! The botocore shape checker catches each kind of broken rule (so a property built on it can
//! fail), and passes every Converse body in the adapter's snapshots.

use gateway_test_support::shapes::bedrock_runtime;
use gateway_test_support::targets::{fixtures_dir, is_known_gap};
use serde_json::{json, Value};

fn rules_broken(body: Value) -> Vec<String> {
    bedrock_runtime()
        .check_input("Converse", &body)
        .into_iter()
        .map(|violation| violation.to_string())
        .collect()
}

fn valid() -> Value {
    json!({
        "messages": [{"role": "user", "content": [{"text": "Hi"}]}],
        "inferenceConfig": {"maxTokens": 10, "temperature": 0.5},
        "toolConfig": {
            "tools": [{"toolSpec": {"name": "get_weather", "inputSchema": {"json": {"type": "object"}}}}],
            "toolChoice": {"auto": {}}
        }
    })
}

#[test]
fn a_valid_body_passes() {
    assert_eq!(rules_broken(valid()), Vec::<String>::new());
}

#[test]
fn each_kind_of_broken_rule_is_reported_at_its_path() {
    let cases: [(&str, Value, &str); 11] = [
        ("/messages/0/role", json!("robot"), "messages[0].role (ConversationRole): \"robot\" is not one of the enum's values"),
        ("/messages/0/content/0/bogus", json!(1), "messages[0].content[0].bogus (ContentBlock): unknown member"),
        ("/inferenceConfig/maxTokens", json!(0), "inferenceConfig.maxTokens (InferenceConfigurationMaxTokensInteger): 0 is below the minimum 1"),
        ("/inferenceConfig/temperature", json!("hot"), "inferenceConfig.temperature (InferenceConfigurationTemperatureFloat): a float cannot be a string"),
        ("/inferenceConfig/topP", json!(1.5), "inferenceConfig.topP (InferenceConfigurationTopPFloat): 1.5 is above the maximum 1"),
        ("/toolConfig/tools/0/toolSpec/name", json!("get weather"), "toolConfig.tools[0].toolSpec.name (ToolName): \"get weather\" does not match the pattern"),
        ("/toolConfig/tools/0/toolSpec/name", json!("x".repeat(65)), "toolConfig.tools[0].toolSpec.name (ToolName): 65 characters, more than the maximum 64"),
        ("/toolConfig/toolChoice/any", json!({}), "toolConfig.toolChoice (ToolChoice): a union sets exactly one member, not 2"),
        ("/messages/0/content/0/image", json!({"format": "png", "source": {"bytes": "%%%"}}), "not base64"),
        ("/modelId", json!("m"), "modelId (ConverseRequest): belongs in the URI or a header, not the body"),
        ("/messages/0/content", json!(null), "messages[0].content (ContentBlocks): null is not a value"),
    ];
    for (pointer, value, expected) in cases {
        let mut body = valid();
        let (parent, member) = pointer.rsplit_once('/').unwrap();
        body.pointer_mut(parent)
            .unwrap()
            .as_object_mut()
            .unwrap()
            .insert(member.into(), value);
        let broken = rules_broken(body);
        assert!(
            broken.iter().any(|rule| rule.contains(expected)),
            "{pointer}: expected {expected:?}, got {broken:?}"
        );
    }
    let mut body = valid();
    body["messages"][0].as_object_mut().unwrap().remove("role");
    assert_eq!(
        rules_broken(body),
        ["messages[0] (Message): required member `role` is missing"]
    );
}

/// Every Converse body the adapter's snapshots record passes (but for the known gaps): the
/// checker and the adapter agree on today's fixtures.
#[test]
fn every_converse_body_snapshot_passes() {
    let snapshots = fixtures_dir().join("../crates/adapter-bedrock/tests/snapshots");
    let mut checked = 0;
    let mut failures = Vec::new();
    for entry in std::fs::read_dir(snapshots).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("converse_wire__domain_requests_become_converse_bodies@") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        // An insta snapshot: a `---` header block, then the JSON.
        let json = text.splitn(3, "---\n").nth(2).unwrap();
        let body: Value = serde_json::from_str(json).unwrap();
        let operation = if text.contains("info: converse-stream") {
            "ConverseStream"
        } else {
            "Converse"
        };
        let broken: Vec<String> = bedrock_runtime()
            .check_input(operation, &body)
            .into_iter()
            .filter(|violation| !is_known_gap(violation))
            .map(|violation| violation.to_string())
            .collect();
        if !broken.is_empty() {
            failures.push(format!("{name}: {broken:?}"));
        }
        checked += 1;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked > 40, "only {checked} snapshots found");
}
