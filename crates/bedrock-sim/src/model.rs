//! The simulated model behind the request-driven scripts ([`Script::Echo`], the guardrail
//! scripts, [`Script::ThinkingToolLoop`]): what it answers, the reasoning it shows first, the
//! usage it reports, and the answer fields requested by options (service tier, latency,
//! additional response fields).
//!
//! What [`Script::Echo`] answers, first match wins:
//! 1. `toolConfig.toolChoice.tool` (or `any`: the first tool) -> a `toolUse` of that tool whose
//!    input is [`crate::minimal_instance`] of its `inputSchema.json`, stop reason `tool_use`;
//! 2. `outputConfig.textFormat` -> a text block holding the compact JSON of
//!    [`crate::minimal_instance`] of the schema;
//! 3. otherwise `Read document <name> (<format>, N bytes).` for each document of the last user
//!    message, then `You said: <its text and guardContent blocks>`.
//!
//! [`Script::Echo`]: crate::Script::Echo
//! [`Script::ThinkingToolLoop`]: crate::Script::ThinkingToolLoop

use aws_smithy_types::base64;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::guardrail::{self, GuardrailConfig, PiiMatch};
use crate::reasoning::{self, REDACTED_THINKING_TRIGGER};
use crate::request::{block_text, content, guarded_text, last_user, tool_spec, tools, word_count};
use crate::schema::minimal_instance;
use crate::state::Shared;
use crate::{documents, options, prompt, Reply};

/// Which parts of the echoed user text the PII mask applies to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mask {
    Nothing,
    Everything,
    /// Only the `guardContent` text (Bedrock's selective evaluation).
    GuardedOnly,
}

/// What the model says, before reasoning, usage and answer fields are added.
enum Output {
    Text(String),
    ToolUse { name: String, input: Value },
}

/// One request, answered by the simulated model.
pub(crate) struct Model<'a> {
    request: &'a Value,
    model_id: &'a str,
    shared: &'a Shared,
}

impl<'a> Model<'a> {
    pub(crate) fn new(request: &'a Value, model_id: &'a str, shared: &'a Shared) -> Self {
        Self {
            request,
            model_id,
            shared,
        }
    }

    /// [`crate::Script::Echo`].
    pub(crate) fn echo(&self) -> Reply {
        let (output, _) = self.output(Mask::Nothing);
        self.answer(output)
    }

    /// [`crate::Script::GuardrailMask`]: the echo with PII masked (only in `guardContent` text
    /// when the request has some).
    pub(crate) fn guardrail_mask(&self, cfg: &GuardrailConfig) -> Reply {
        let mask = if guardrail::selective(self.request) {
            Mask::GuardedOnly
        } else {
            Mask::Everything
        };
        let (output, found) = self.output(mask);
        let mut reply = self.answer(output);
        if !found.is_empty() {
            reply = reply.stop_reason("guardrail_intervened");
            if cfg.trace {
                reply = reply.trace(guardrail::output_trace(&cfg.id, &found));
            }
        }
        reply
    }

    /// [`crate::Script::GuardrailBlockInput`]: the configured message; the model is not
    /// called, so no reasoning, no output tokens and no cache use.
    pub(crate) fn guardrail_blocked(&self, message: &str, trace: Option<Value>) -> Reply {
        let mut reply = Reply::text(message)
            .stop_reason("guardrail_intervened")
            .usage(prompt::count(self.request, self.model_id), 0);
        reply.trace = trace;
        self.with_answer_fields(reply)
    }

    /// [`crate::Script::GuardrailBlockWords`].
    pub(crate) fn guardrail_block_words(
        &self,
        cfg: &GuardrailConfig,
        message: &str,
        words: &[String],
    ) -> Reply {
        let found = guardrail::blocked_words(&guardrail::evaluated_input(self.request), words);
        if found.is_empty() {
            return self.echo();
        }
        let trace = cfg.trace.then(|| guardrail::word_trace(&cfg.id, &found));
        self.guardrail_blocked(message, trace)
    }

    /// [`crate::Script::ThinkingToolLoop`].
    pub(crate) fn thinking_tool_loop(&self, tool: &str, input: &Value) -> Reply {
        let results: Vec<String> = last_user(self.request)
            .map(content)
            .unwrap_or_default()
            .iter()
            .filter_map(|b| b.pointer("/toolResult/content").and_then(Value::as_array))
            .flatten()
            .map(|part| match (block_text(part), part.get("json")) {
                (Some(text), _) => text.to_owned(),
                (None, Some(json)) => json.to_string(),
                (None, None) => String::new(),
            })
            .collect();
        if results.is_empty() {
            self.answer(Output::ToolUse {
                name: tool.to_owned(),
                input: input.clone(),
            })
        } else {
            self.answer(Output::Text(format!(
                "{tool} returned: {}",
                results.join(" ")
            )))
        }
    }

    /// [`crate::Script::Reply`]: the fixed reply plus the answer fields the request asked for
    /// (those the reply does not set itself).
    pub(crate) fn fixed(&self, reply: &Reply) -> Reply {
        self.with_answer_fields(reply.clone())
    }

    fn output(&self, mask: Mask) -> (Output, Vec<PiiMatch>) {
        if let Some((name, input)) = self.forced_tool() {
            return (Output::ToolUse { name, input }, Vec::new());
        }
        if let Some(schema) = self
            .request
            .pointer("/outputConfig/textFormat")
            .and_then(options::output_schema)
        {
            return (
                Output::Text(minimal_instance(&schema).to_string()),
                Vec::new(),
            );
        }
        let (text, found) = self.echo_text(mask);
        (Output::Text(text), found)
    }

    /// The tool `toolChoice` forces (`tool`, or the first tool for `any`) and an input for it.
    fn forced_tool(&self) -> Option<(String, Value)> {
        let choice = self.request.pointer("/toolConfig/toolChoice")?;
        let spec = match choice.pointer("/tool/name").and_then(Value::as_str) {
            Some(name) => tool_spec(self.request, name)?,
            None if choice.get("any").is_some() => {
                tools(self.request).iter().find_map(|t| t.get("toolSpec"))?
            }
            None => return None,
        };
        let name = spec.get("name").and_then(Value::as_str)?.to_owned();
        let input = spec
            .pointer("/inputSchema/json")
            .map_or_else(|| json!({}), minimal_instance);
        Some((name, input))
    }

    /// The document notes and `You said: ...` of the last user message, masked as asked.
    fn echo_text(&self, mask: Mask) -> (String, Vec<PiiMatch>) {
        let message = last_user(self.request);
        let mut found = Vec::new();
        let pieces: Vec<String> = message
            .map(content)
            .unwrap_or_default()
            .iter()
            .filter_map(|block| {
                let text = block_text(block)?;
                let masked = match mask {
                    Mask::Nothing => false,
                    Mask::Everything => true,
                    Mask::GuardedOnly => guarded_text(block).is_some(),
                };
                if !masked {
                    return Some(text.to_owned());
                }
                let (text, matches) = guardrail::mask(text);
                found.extend(matches);
                Some(text)
            })
            .collect();
        let mut text = message.map(documents::describe).unwrap_or_default();
        text.push(format!("You said: {}", pieces.join(" ")));
        (text.join(" "), found)
    }

    /// The reply for `output`: reasoning first when the request turns it on, usage from the
    /// prompt accounting (and cache), the requested answer fields.
    fn answer(&self, output: Output) -> Reply {
        let mut reply = Reply::default();
        let user_text = self.user_text();
        let reasoning_text = match output {
            Output::Text(text) => {
                let note = format!(
                    "The user wrote {} words; I will answer in {} words.",
                    word_count(&user_text),
                    word_count(&text)
                );
                reply.content.push(json!({ "text": text }));
                note
            }
            Output::ToolUse { name, input } => {
                let note = format!("To answer I need the {name} tool; I will call it.");
                reply = reply.tool_use(&self.tool_use_id(&name), &name, input);
                note
            }
        };
        if reasoning::requested(self.request, self.model_id).is_some() {
            reply = reply.reasoning(&reasoning_text);
            if user_text.contains(REDACTED_THINKING_TRIGGER) {
                reply = reply.redacted_reasoning(&reasoning_text);
            }
        }
        let accounting =
            self.shared
                .prompt_cache
                .account(self.request, self.model_id, self.shared.clock.now());
        reply.usage = (accounting.input_tokens, output_tokens(&reply.content));
        reply.cache_usage = accounting.cache;
        self.with_answer_fields(reply)
    }

    /// Adds `serviceTier`, `performanceConfig` and `additionalModelResponseFields` as the
    /// request asked, unless the reply sets them itself.
    fn with_answer_fields(&self, mut reply: Reply) -> Reply {
        if reply.service_tier.is_none() {
            reply.service_tier = options::service_tier(self.request);
        }
        if reply.performance_latency.is_none() {
            reply.performance_latency = options::latency(self.request);
        }
        if reply.additional_model_response_fields.is_none() {
            reply.additional_model_response_fields =
                options::response_fields(self.request, &reply.stop_reason, reply.usage);
        }
        reply
    }

    fn user_text(&self) -> String {
        last_user(self.request)
            .map(content)
            .unwrap_or_default()
            .iter()
            .filter_map(block_text)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// A tool-use id that is the same for the same conversation (stable snapshots).
    fn tool_use_id(&self, name: &str) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.model_id.as_bytes());
        hasher.update(
            self.request
                .get("messages")
                .map(Value::to_string)
                .unwrap_or_default(),
        );
        hasher.update(name.as_bytes());
        let digest: [u8; 32] = hasher.finalize().into();
        let id: String = base64::encode(&digest[..16])
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect();
        format!("tooluse_{id}")
    }
}

/// Output tokens: the words of text and reasoning text, and of a tool call's input JSON.
fn output_tokens(content: &[Value]) -> u32 {
    content
        .iter()
        .map(|block| {
            if let Some(text) = block.get("text").and_then(Value::as_str) {
                word_count(text)
            } else if let Some(text) = block
                .pointer("/reasoningContent/reasoningText/text")
                .and_then(Value::as_str)
            {
                word_count(text)
            } else if let Some(input) = block.pointer("/toolUse/input") {
                word_count(&input.to_string()).max(1)
            } else {
                0
            }
        })
        .fold(0, u32::saturating_add)
}
