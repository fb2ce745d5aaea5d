//! Model ids as Bedrock reads them: ARNs, cross-region inference profiles (`us.`, `eu.`,
//! `apac.`, ... prefixes) and the base model behind them; the on-demand throughput refusal.

/// Geographic prefixes of system-defined cross-region inference profiles.
pub(crate) const GEO_PREFIXES: [&str; 8] =
    ["us", "eu", "apac", "us-gov", "jp", "au", "ca", "global"];

/// The model id without ARN resource prefix and without geographic profile prefix, e.g.
/// `anthropic.claude-sonnet-4-5-20250929-v1:0` for
/// `arn:aws:bedrock:us-east-1::inference-profile/us.anthropic.claude-sonnet-4-5-20250929-v1:0`.
pub(crate) fn base(model_id: &str) -> &str {
    let resource = resource(model_id);
    strip_geo(resource).unwrap_or(resource)
}

/// The id without a geographic prefix, if it has one.
pub(crate) fn strip_geo(id: &str) -> Option<&str> {
    let (prefix, rest) = id.split_once('.')?;
    GEO_PREFIXES.contains(&prefix).then_some(rest)
}

/// The resource of an ARN (`foundation-model/x` -> `x`), or the id itself.
fn resource(model_id: &str) -> &str {
    if !model_id.starts_with("arn:") {
        return model_id;
    }
    // arn:partition:bedrock:region:account:resource-type/resource
    model_id
        .splitn(6, ':')
        .nth(5)
        .and_then(|r| r.split_once('/'))
        .map_or(model_id, |(_, id)| id)
}

/// Whether a call on `model_id` goes through on-demand throughput of the base model: a bare
/// id or a `foundation-model/` ARN (not an inference profile, application profile or
/// provisioned model).
pub(crate) fn is_on_demand(model_id: &str) -> bool {
    if model_id.starts_with("arn:") {
        let resource_type = model_id
            .splitn(6, ':')
            .nth(5)
            .and_then(|r| r.split('/').next());
        return resource_type == Some("foundation-model");
    }
    strip_geo(model_id).is_none()
}

/// Bedrock's refusal of an on-demand call to a model that is only served through inference
/// profiles (note the typographic apostrophe, as Bedrock writes it).
pub(crate) fn on_demand_refusal(model_id: &str) -> String {
    format!("Invocation of model ID {model_id} with on-demand throughput isn\u{2019}t supported. Retry your request with the ID or ARN of an inference profile that contains this model.")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SONNET: &str = "anthropic.claude-sonnet-4-5-20250929-v1:0";

    #[test]
    fn base_strips_arns_and_geo_prefixes() {
        assert_eq!(base(SONNET), SONNET);
        assert_eq!(base(&format!("us.{SONNET}")), SONNET);
        assert_eq!(base(&format!("us-gov.{SONNET}")), SONNET);
        assert_eq!(
            base(&format!(
                "arn:aws:bedrock:us-east-1:123:inference-profile/eu.{SONNET}"
            )),
            SONNET
        );
        assert_eq!(
            base(&format!(
                "arn:aws:bedrock:us-east-1::foundation-model/{SONNET}"
            )),
            SONNET
        );
        assert_eq!(base("amazon.nova-pro-v1:0"), "amazon.nova-pro-v1:0");
    }

    #[test]
    fn on_demand_is_a_bare_id_or_a_foundation_model_arn() {
        assert!(is_on_demand(SONNET));
        assert!(is_on_demand(&format!(
            "arn:aws:bedrock:us-east-1::foundation-model/{SONNET}"
        )));
        assert!(!is_on_demand(&format!("apac.{SONNET}")));
        assert!(!is_on_demand(&format!(
            "arn:aws:bedrock:us-east-1:123:inference-profile/us.{SONNET}"
        )));
        assert!(!is_on_demand(
            "arn:aws:bedrock:us-east-1:123:application-inference-profile/abc123"
        ));
    }
}
