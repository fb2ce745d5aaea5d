//! Which Bedrock model does what: the one place that knows.
//!
//! A route's model is read once per request: its [`ModelFamily`] from the configured
//! `family` if any, else from the model id (an ARN's resource prefix and a cross-region
//! geo prefix stripped, then the `provider.model` prefix matched), and the
//! [`ModelCapabilities`] of that model, which the request conversion asks instead of
//! matching model ids itself.
//!
//! Capabilities follow AWS's "Supported models and model features" pages for Converse.
//! Where only the family is known (an application inference profile ARN with a configured
//! `family`, or a model name this build cannot read), the family's current models are
//! assumed, except where a wrong guess would break requests that work without it (native
//! structured output: the forced tool works on every model with tools).

use crate::inference_profile::GEO_PREFIXES;
use std::fmt;
use std::str::FromStr;

use gateway_core::Route;
use serde::{Deserialize, Deserializer};
use thiserror::Error;

/// A family of Bedrock models that share request conventions, named as Bedrock model ids
/// begin (`anthropic.claude`, `amazon.nova`, ...). Hosts name one in configuration for
/// model ids that do not say it (application inference profile ARNs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ModelFamily {
    AnthropicClaude,
    AmazonNova,
    AmazonTitan,
    MetaLlama,
    Mistral,
    DeepSeek,
    OpenAi,
    Qwen,
    Cohere,
    Ai21,
    Writer,
    Google,
    Nvidia,
    MiniMax,
    Moonshot,
    /// A model id this build cannot place (a provisioned-throughput or custom-model ARN, an
    /// application inference profile without configured family, a new provider). Never
    /// configured: it is what no configuration means.
    Other,
}

/// A `family` value that names no known family.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown model family `{0}`: use one of {known}", known = ModelFamily::KNOWN_NAMES)]
pub struct UnknownModelFamily(pub String);

impl ModelFamily {
    /// Every family a configuration may name, in the order errors list them.
    const CONFIGURABLE: [Self; 15] = [
        Self::AnthropicClaude,
        Self::AmazonNova,
        Self::AmazonTitan,
        Self::MetaLlama,
        Self::Mistral,
        Self::DeepSeek,
        Self::OpenAi,
        Self::Qwen,
        Self::Cohere,
        Self::Ai21,
        Self::Writer,
        Self::Google,
        Self::Nvidia,
        Self::MiniMax,
        Self::Moonshot,
    ];

    /// [`Self::CONFIGURABLE`]'s names, for error messages (checked against it in a test).
    const KNOWN_NAMES: &'static str = "anthropic.claude, amazon.nova, amazon.titan, meta.llama, \
        mistral, deepseek, openai, qwen, cohere, ai21, writer, google, nvidia, minimax, moonshot";

    /// The canonical name, as configuration writes it and model ids begin.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AnthropicClaude => "anthropic.claude",
            Self::AmazonNova => "amazon.nova",
            Self::AmazonTitan => "amazon.titan",
            Self::MetaLlama => "meta.llama",
            Self::Mistral => "mistral",
            Self::DeepSeek => "deepseek",
            Self::OpenAi => "openai",
            Self::Qwen => "qwen",
            Self::Cohere => "cohere",
            Self::Ai21 => "ai21",
            Self::Writer => "writer",
            Self::Google => "google",
            Self::Nvidia => "nvidia",
            Self::MiniMax => "minimax",
            Self::Moonshot => "moonshot",
            Self::Other => "other",
        }
    }

    /// A configured family name (ASCII case ignored); `other` is not one.
    pub fn parse(name: &str) -> Result<Self, UnknownModelFamily> {
        Self::CONFIGURABLE
            .into_iter()
            .find(|family| family.as_str().eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| UnknownModelFamily(name.to_owned()))
    }

    /// The family a model id names, and the model's name within it (`claude-3-7-sonnet-...`),
    /// or `None` when the id names no model (an application inference profile, a
    /// provisioned-throughput ARN, ...).
    fn of_model_id(model_id: &str) -> Option<(Self, &str)> {
        let id = base_model_id(model_id)?;
        let (provider, model) = id.split_once('.')?;
        let family = match provider {
            "anthropic" if model.starts_with("claude") => Self::AnthropicClaude,
            "amazon" if model.starts_with("nova") => Self::AmazonNova,
            "amazon" if model.starts_with("titan") => Self::AmazonTitan,
            "meta" if model.starts_with("llama") => Self::MetaLlama,
            "mistral" => Self::Mistral,
            "deepseek" => Self::DeepSeek,
            "openai" => Self::OpenAi,
            "qwen" => Self::Qwen,
            "cohere" => Self::Cohere,
            "ai21" => Self::Ai21,
            "writer" => Self::Writer,
            "google" => Self::Google,
            "nvidia" => Self::Nvidia,
            "minimax" => Self::MiniMax,
            "moonshot" | "moonshotai" => Self::Moonshot,
            _ => Self::Other,
        };
        Some((family, model))
    }
}

impl fmt::Display for ModelFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ModelFamily {
    type Err = UnknownModelFamily;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::parse(name)
    }
}

impl<'de> Deserialize<'de> for ModelFamily {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Self::parse(&name).map_err(serde::de::Error::custom)
    }
}

/// `provider.model...` of a model id, inference profile id or their ARNs; `None` for ARNs
/// of resources that do not name their model.
pub(crate) fn base_model_id(model_id: &str) -> Option<&str> {
    let id = if model_id.starts_with("arn:") {
        // arn:partition:bedrock:region:account:resource-type/resource-id
        let resource = model_id.splitn(6, ':').nth(5)?;
        match resource.split_once('/')? {
            ("foundation-model" | "inference-profile", id) => id,
            _ => return None,
        }
    } else {
        model_id
    };
    Some(
        GEO_PREFIXES
            .iter()
            .find_map(|geo| id.strip_prefix(geo)?.strip_prefix('.'))
            .unwrap_or(id),
    )
}

/// How a model is asked to reason (see `crate::reasoning` for the values sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReasoningControl {
    /// Anthropic's extended thinking: `additionalModelRequestFields.thinking` with a token
    /// budget.
    AnthropicThinking,
    /// Amazon Nova 2: `additionalModelRequestFields.reasoningConfig` with an effort level.
    NovaReasoningConfig,
    /// OpenAI gpt-oss: `additionalModelRequestFields.reasoning_effort`.
    ReasoningEffortField,
    /// The model reasons on every call and has no setting (DeepSeek R1).
    Always,
}

/// What one route's model can do, as far as the request conversion cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ModelCapabilities {
    pub family: ModelFamily,
    /// `None`: the model does not reason; a reasoning request is refused and reasoning
    /// blocks in the history are left out.
    pub reasoning: Option<ReasoningControl>,
    /// Takes `outputConfig.textFormat` (JSON Schema constrained decoding).
    pub native_structured_output: bool,
    /// Takes `cachePoint` blocks.
    pub prompt_caching: bool,
    /// Takes `toolConfig`.
    pub tools: bool,
    /// The most `maxTokens` the model takes (AWS's and Anthropic's published output limits;
    /// for Claude 3.7 Sonnet the 128K that its beta header unlocks). `None` where this build
    /// does not know the model's limit: Bedrock then decides.
    pub max_output_tokens: Option<u32>,
}

impl ModelCapabilities {
    /// The capabilities of `route`'s model. A configured family that differs from what the
    /// model id says wins (the operator knows what stands behind an ARN); an unknown
    /// configured name (only a host that skipped validation can have one) is ignored.
    pub fn of(route: &Route) -> Self {
        let configured = route
            .family
            .as_deref()
            .and_then(|name| ModelFamily::parse(name).ok());
        match (ModelFamily::of_model_id(&route.model_id), configured) {
            (Some((family, model)), None) => Self::of_model(family, Some(model)),
            (Some((family, model)), Some(configured)) if family == configured => {
                Self::of_model(family, Some(model))
            }
            (_, Some(configured)) => Self::of_model(configured, None),
            (None, None) => Self::of_model(ModelFamily::Other, None),
        }
    }

    /// `model` is the name within the family (`claude-sonnet-4-5-20250929-v1:0`); `None`
    /// when only the family is known.
    fn of_model(family: ModelFamily, model: Option<&str>) -> Self {
        let plain = |tools| Self {
            family,
            reasoning: None,
            native_structured_output: false,
            prompt_caching: false,
            tools,
            max_output_tokens: None,
        };
        match family {
            ModelFamily::AnthropicClaude => claude(model),
            ModelFamily::AmazonNova => Self {
                reasoning: match model {
                    // Nova 2 reasons; the first generation (micro, lite, pro, premier) does not.
                    Some(name) if !name.starts_with("nova-2-") => None,
                    _ => Some(ReasoningControl::NovaReasoningConfig),
                },
                prompt_caching: true,
                // Nova Micro, Lite and Pro write at most 10K tokens.
                max_output_tokens: model
                    .filter(|name| {
                        ["nova-micro", "nova-lite", "nova-pro"]
                            .iter()
                            .any(|m| name.starts_with(m))
                    })
                    .map(|_| 10_000),
                ..plain(true)
            },
            ModelFamily::AmazonTitan => plain(false),
            ModelFamily::MetaLlama => plain(model.is_none_or(llama_has_tools)),
            ModelFamily::Mistral => Self {
                native_structured_output: true,
                // Mistral 7B and Mixtral predate tool use.
                ..plain(!model.is_some_and(|name| {
                    name.starts_with("mistral-7b") || name.starts_with("mixtral")
                }))
            },
            ModelFamily::DeepSeek => {
                let r1 = model.is_some_and(|name| name.starts_with("r1"));
                Self {
                    reasoning: r1.then_some(ReasoningControl::Always),
                    native_structured_output: true,
                    // R1 takes no tools on Bedrock.
                    ..plain(!r1)
                }
            }
            ModelFamily::OpenAi => Self {
                reasoning: Some(ReasoningControl::ReasoningEffortField),
                native_structured_output: true,
                ..plain(true)
            },
            ModelFamily::Qwen
            | ModelFamily::Google
            | ModelFamily::Nvidia
            | ModelFamily::MiniMax
            | ModelFamily::Moonshot => Self {
                native_structured_output: true,
                ..plain(true)
            },
            // Command R / R+ and A take tools; the older Command (Light) models do not.
            ModelFamily::Cohere => plain(model.is_none_or(|name| {
                !name.starts_with("command-text") && !name.starts_with("command-light")
            })),
            // Jamba takes tools; Jurassic-2 does not.
            ModelFamily::Ai21 => plain(model.is_none_or(|name| name.starts_with("jamba"))),
            ModelFamily::Writer => plain(true),
            // Unknown: tools are assumed (Bedrock refuses them if wrong, and the forced-tool
            // structured output needs them); caching is an optimisation, so not assumed.
            ModelFamily::Other => plain(true),
        }
    }
}

/// Claude by version. Extended thinking: 3.7 Sonnet and every Claude 4 and later (Sonnet 4,
/// 4.5, Opus 4, 4.1, 4.5, Haiku 4.5). Native structured output: 4.5 and later. Prompt
/// caching: 3.5 Haiku, 3.7 Sonnet and later. Tools: Claude 3 and later.
fn claude(model: Option<&str>) -> ModelCapabilities {
    let version = match model {
        None => None,
        // Claude Instant and Claude 2 (`claude-instant-v1`, `claude-v2:1`).
        Some(name) if name.starts_with("claude-instant") || name.starts_with("claude-v") => {
            return ModelCapabilities {
                family: ModelFamily::AnthropicClaude,
                reasoning: None,
                native_structured_output: false,
                prompt_caching: false,
                tools: false,
                max_output_tokens: Some(4096),
            };
        }
        Some(name) => claude_version(name),
    };
    let Some((version, tier)) = version else {
        // Only the family is known, or a naming this build cannot read: a current Claude.
        return ModelCapabilities {
            family: ModelFamily::AnthropicClaude,
            reasoning: Some(ReasoningControl::AnthropicThinking),
            native_structured_output: false,
            prompt_caching: true,
            tools: true,
            max_output_tokens: None,
        };
    };
    ModelCapabilities {
        family: ModelFamily::AnthropicClaude,
        reasoning: (version >= (3, 7)).then_some(ReasoningControl::AnthropicThinking),
        native_structured_output: version >= (4, 5),
        prompt_caching: version >= (3, 7) || (version == (3, 5) && tier == Some("haiku")),
        tools: version >= (3, 0),
        max_output_tokens: claude_max_output_tokens(version, tier),
    }
}

/// Anthropic's published output limits per Claude model; `None` for a version this build
/// does not know (a newer model is not refused for a limit it may have raised).
fn claude_max_output_tokens(version: (u32, u32), tier: Option<&str>) -> Option<u32> {
    match (version, tier) {
        ((3, 0), _) => Some(4_096),
        ((3, 5), _) => Some(8_192),
        ((3, 7), _) => Some(128_000),
        ((4, 0) | (4, 1), Some("opus")) => Some(32_000),
        ((4, 0), _) | ((4, 5), _) => Some(64_000),
        _ => None,
    }
}

/// `(major, minor)` and tier of a Claude model name, in either naming: `claude-3-7-sonnet-
/// 20250219-v1:0` (version first) or `claude-sonnet-4-5-20250929-v1:0`, `claude-opus-4-6-v1`
/// (tier first). Reading stops at the date or the `v1` suffix.
fn claude_version(name: &str) -> Option<((u32, u32), Option<&str>)> {
    let mut numbers = Vec::with_capacity(2);
    let mut tier = None;
    for token in name.strip_prefix("claude-")?.split('-') {
        if token.starts_with('v') && token[1..].starts_with(|c: char| c.is_ascii_digit()) {
            break;
        }
        if token.len() <= 2 && token.bytes().all(|b| b.is_ascii_digit()) {
            numbers.push(token.parse::<u32>().ok()?);
        } else if token.bytes().all(|b| b.is_ascii_digit()) {
            break; // the date
        } else if tier.is_none() {
            tier = Some(token);
        }
    }
    let major = *numbers.first()?;
    Some(((major, numbers.get(1).copied().unwrap_or(0)), tier))
}

/// Tool use came with Llama 3.1 (`llama3-1-...`, `llama3-2-...`, `llama3-3-...`, `llama4-...`);
/// Llama 2 and 3 (`llama3-70b-instruct`) have none.
fn llama_has_tools(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("llama") else {
        return false;
    };
    let major_len = rest.bytes().take_while(u8::is_ascii_digit).count();
    let Ok(major) = rest[..major_len].parse::<u32>() else {
        return false;
    };
    // The minor version is a single digit after a hyphen; `70b` is a size, not a version.
    let minor = rest[major_len..]
        .strip_prefix('-')
        .and_then(|after| {
            let mut chars = after.chars();
            let digit = chars.next()?.to_digit(10)?;
            matches!(chars.next(), Some('-') | None).then_some(digit)
        })
        .unwrap_or(0);
    (major, minor) >= (3, 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ReasoningControl::*;

    use crate::test_support::route;

    fn of(model_id: &str) -> ModelCapabilities {
        ModelCapabilities::of(&route(model_id, None))
    }

    /// (family, reasoning, native structured output, prompt caching, tools)
    type Row = (ModelFamily, Option<ReasoningControl>, bool, bool, bool);

    fn row(c: ModelCapabilities) -> Row {
        (
            c.family,
            c.reasoning,
            c.native_structured_output,
            c.prompt_caching,
            c.tools,
        )
    }

    #[test]
    fn real_model_ids_get_their_models_capabilities() {
        use ModelFamily::*;
        let cases: &[(&str, Row)] = &[
            (
                "anthropic.claude-3-7-sonnet-20250219-v1:0",
                (AnthropicClaude, Some(AnthropicThinking), false, true, true),
            ),
            (
                "us.anthropic.claude-sonnet-4-20250514-v1:0",
                (AnthropicClaude, Some(AnthropicThinking), false, true, true),
            ),
            (
                "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
                (AnthropicClaude, Some(AnthropicThinking), true, true, true),
            ),
            (
                "anthropic.claude-haiku-4-5-20251001-v1:0",
                (AnthropicClaude, Some(AnthropicThinking), true, true, true),
            ),
            (
                "eu.anthropic.claude-opus-4-1-20250805-v1:0",
                (AnthropicClaude, Some(AnthropicThinking), false, true, true),
            ),
            (
                "anthropic.claude-opus-4-6-v1",
                (AnthropicClaude, Some(AnthropicThinking), true, true, true),
            ),
            (
                "anthropic.claude-3-5-haiku-20241022-v1:0",
                (AnthropicClaude, None, false, true, true),
            ),
            (
                "anthropic.claude-3-5-sonnet-20241022-v2:0",
                (AnthropicClaude, None, false, false, true),
            ),
            (
                "anthropic.claude-3-haiku-20240307-v1:0",
                (AnthropicClaude, None, false, false, true),
            ),
            (
                "anthropic.claude-v2:1",
                (AnthropicClaude, None, false, false, false),
            ),
            (
                "anthropic.claude-instant-v1",
                (AnthropicClaude, None, false, false, false),
            ),
            (
                "amazon.nova-pro-v1:0",
                (AmazonNova, None, false, true, true),
            ),
            (
                "us.amazon.nova-2-lite-v1:0",
                (AmazonNova, Some(NovaReasoningConfig), false, true, true),
            ),
            (
                "amazon.titan-text-express-v1",
                (AmazonTitan, None, false, false, false),
            ),
            (
                "meta.llama3-70b-instruct-v1:0",
                (MetaLlama, None, false, false, false),
            ),
            (
                "us.meta.llama3-1-70b-instruct-v1:0",
                (MetaLlama, None, false, false, true),
            ),
            (
                "us.meta.llama3-2-11b-instruct-v1:0",
                (MetaLlama, None, false, false, true),
            ),
            (
                "us.meta.llama4-maverick-17b-instruct-v1:0",
                (MetaLlama, None, false, false, true),
            ),
            (
                "meta.llama2-13b-chat-v1",
                (MetaLlama, None, false, false, false),
            ),
            (
                "mistral.mistral-large-2407-v1:0",
                (Mistral, None, true, false, true),
            ),
            (
                "mistral.mixtral-8x7b-instruct-v0:1",
                (Mistral, None, true, false, false),
            ),
            (
                "openai.gpt-oss-120b-1:0",
                (OpenAi, Some(ReasoningEffortField), true, false, true),
            ),
            (
                "deepseek.r1-v1:0",
                (DeepSeek, Some(Always), true, false, false),
            ),
            (
                "us.deepseek.r1-v1:0",
                (DeepSeek, Some(Always), true, false, false),
            ),
            ("deepseek.v3-v1:0", (DeepSeek, None, true, false, true)),
            ("qwen.qwen3-32b-v1:0", (Qwen, None, true, false, true)),
            (
                "cohere.command-r-plus-v1:0",
                (Cohere, None, false, false, true),
            ),
            (
                "cohere.command-light-text-v14",
                (Cohere, None, false, false, false),
            ),
            (
                "ai21.jamba-1-5-large-v1:0",
                (Ai21, None, false, false, true),
            ),
            ("writer.palmyra-x5-v1:0", (Writer, None, false, false, true)),
            ("model", (Other, None, false, false, true)),
            ("acme.newmodel-v1:0", (Other, None, false, false, true)),
        ];
        for (model_id, expected) in cases {
            assert_eq!(row(of(model_id)), *expected, "{model_id}");
        }
    }

    #[test]
    fn known_models_cap_their_output_tokens() {
        let cases = [
            ("anthropic.claude-3-haiku-20240307-v1:0", Some(4_096)),
            ("anthropic.claude-3-5-sonnet-20241022-v2:0", Some(8_192)),
            (
                "us.anthropic.claude-3-7-sonnet-20250219-v1:0",
                Some(128_000),
            ),
            ("anthropic.claude-opus-4-1-20250805-v1:0", Some(32_000)),
            ("anthropic.claude-sonnet-4-20250514-v1:0", Some(64_000)),
            (
                "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
                Some(64_000),
            ),
            ("anthropic.claude-v2:1", Some(4_096)),
            ("amazon.nova-lite-v1:0", Some(10_000)),
            ("amazon.nova-premier-v1:0", None),
            ("meta.llama3-1-70b-instruct-v1:0", None),
            ("anthropic.claude-opus-9-9-v1", None),
        ];
        for (model_id, cap) in cases {
            assert_eq!(of(model_id).max_output_tokens, cap, "{model_id}");
        }
    }

    #[test]
    fn arns_are_read_through_their_resource() {
        assert_eq!(
            row(of("arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-20250514-v1:0")),
            row(of("anthropic.claude-sonnet-4-20250514-v1:0")),
        );
        assert_eq!(
            row(of(
                "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-pro-v1:0"
            )),
            row(of("amazon.nova-pro-v1:0")),
        );
        for opaque in [
            "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4e5f6",
            "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abc123",
            "arn:aws:bedrock:us-east-1:123456789012",
        ] {
            assert_eq!(row(of(opaque)), row(of("model")), "{opaque}");
        }
    }

    #[test]
    fn a_configured_family_names_what_an_arn_hides() {
        let arn =
            "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4e5f6";
        let claude = ModelCapabilities::of(&route(arn, Some("anthropic.claude")));
        assert_eq!(
            row(claude),
            (
                ModelFamily::AnthropicClaude,
                Some(AnthropicThinking),
                false,
                true,
                true
            )
        );
        let nova = ModelCapabilities::of(&route(arn, Some("amazon.nova")));
        assert_eq!(
            row(nova),
            (
                ModelFamily::AmazonNova,
                Some(NovaReasoningConfig),
                false,
                true,
                true
            )
        );
        // Agreeing with the id keeps the model's own capabilities; disagreeing wins.
        let haiku_3 = "anthropic.claude-3-haiku-20240307-v1:0";
        assert_eq!(
            row(ModelCapabilities::of(&route(
                haiku_3,
                Some("anthropic.claude")
            ))),
            row(of(haiku_3))
        );
        assert_eq!(
            ModelCapabilities::of(&route(haiku_3, Some("meta.llama"))).family,
            ModelFamily::MetaLlama
        );
        // A name only an unvalidated host could have is ignored.
        assert_eq!(
            row(ModelCapabilities::of(&route(haiku_3, Some("nonsense")))),
            row(of(haiku_3))
        );
    }

    #[test]
    fn configured_names_parse_to_their_family_and_back() {
        for family in ModelFamily::CONFIGURABLE {
            assert_eq!(ModelFamily::parse(family.as_str()), Ok(family));
            assert_eq!(family.as_str().parse::<ModelFamily>(), Ok(family));
        }
        assert_eq!(
            ModelFamily::parse("Anthropic.Claude"),
            Ok(ModelFamily::AnthropicClaude)
        );
        assert_eq!(
            ModelFamily::parse("other"),
            Err(UnknownModelFamily("other".into()))
        );
        assert_eq!(
            ModelFamily::parse("claude").unwrap_err().to_string(),
            format!(
                "unknown model family `claude`: use one of {}",
                ModelFamily::KNOWN_NAMES
            )
        );
        let listed: Vec<&str> = ModelFamily::CONFIGURABLE
            .iter()
            .map(|f| f.as_str())
            .collect();
        assert_eq!(
            ModelFamily::KNOWN_NAMES.split(", ").collect::<Vec<_>>(),
            listed
        );
    }

    #[test]
    fn families_deserialize_through_parse() {
        let family: ModelFamily = serde_json::from_str("\"amazon.nova\"").unwrap();
        assert_eq!(family, ModelFamily::AmazonNova);
        let error = serde_json::from_str::<ModelFamily>("\"anthropic\"").unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("unknown model family `anthropic`"),
            "{error}"
        );
    }
}
