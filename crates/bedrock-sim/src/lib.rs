//! `bedrock-sim`: an AWS Bedrock Runtime + STS simulator served over HTTP on loopback.
//!
//! Tests, benchmarks and `gateway demo` point the gateway's Bedrock `endpoint` and STS
//! `sts_endpoint` at [`SimHandle::url`]. The simulator
//!
//! - serves `POST /model/{modelId}/converse` and `/converse-stream` (the model id label is
//!   percent-decoded) with botocore's response shapes, answering per model id according to a
//!   [`Script`] (echo, fixed replies, errors, exact event streams, garbage, stalls, guardrails);
//! - serves ApplyGuardrail, `POST /guardrail/{id}/version/{version}/apply`: PII masked, or
//!   the word and input filters of the [`Script`] set for the guardrail id (calls counted
//!   under the id, not recorded; see `apply_guardrail.rs`);
//! - serves `POST /model/{modelId}/invoke` for the embedding models (Titan Text Embeddings,
//!   Cohere Embed) with their own bodies: deterministic vectors from the text's hash,
//!   honouring dimensions and normalisation, one token per word;
//! - verifies SigV4 (service `bedrock`, any region, 5 minutes of clock skew) against the
//!   configured access keys and the temporary credentials it issued, or accepts Bedrock API keys
//!   (`Authorization: Bearer <key>`);
//! - serves STS `AssumeRole` / `AssumeRoleWithWebIdentity` at `POST /`;
//! - fails on demand per model id ([`Failure`]: a [`Fault`] on a [`Schedule`], over the
//!   script), so retries, failover and circuit breakers can be tested;
//! - records every Bedrock request ([`SimHandle::requests`]), counts calls per model id
//!   ([`SimHandle::calls`], [`SimHandle::wait_calls`]) and reports streaming bodies the
//!   client abandoned ([`SimHandle::wait_stream_dropped`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), bedrock_sim::SimError> {
//! use bedrock_sim::{BedrockSim, Reply, Script};
//!
//! let sim = BedrockSim::builder()
//!     .access_key("AKIDEXAMPLE", "secret")
//!     .script("anthropic.claude-3-sonnet-20240229-v1:0", Script::Reply(Reply::text("hi")))
//!     .start()
//!     .await?;
//! let endpoint = sim.url(); // "http://127.0.0.1:PORT"
//! # let _ = endpoint;
//! # Ok(()) }
//! ```
//!
//! Failure injection: [`Failure`]s (below), and as scripts: [`Script::Error`] (any Bedrock
//! error), [`Script::Raw`] (non-JSON 200, HTML 502 without `x-amzn-ErrorType`, truncated JSON),
//! [`Script::CutBody`] (connection closed mid-body), [`Script::Stall`], [`Script::Sequence`],
//! and inside [`Script::Stream`]: exception frames, corrupt CRCs, oversized preludes, cut
//! frames, delays, [`Gate`]s and [`StreamStep::Hold`].
//!
//! # Failures on demand
//!
//! A [`Failure`] is a [`Fault`] and a [`Schedule`], set per model id over its script with
//! [`SimBuilder::failure`] / [`SimHandle::set_failure`] (or for every other model id with
//! [`SimBuilder::default_failure`] / [`SimHandle::set_default_failure`]; removed with
//! [`SimHandle::clear_failure`] / [`SimHandle::clear_default_failure`]). It applies to
//! authenticated calls of both operations, before the body is validated; when it does not
//! apply, the script answers. A cross-region profile id without its own failure uses its base
//! model id's. One simulator is one account (or region): for failover, start one per
//! account, each with its own keys, failures, clock and counters.
//!
//! ```no_run
//! # async fn demo() -> Result<(), bedrock_sim::SimError> {
//! use std::time::Duration;
//! use bedrock_sim::{BedrockSim, Failure, Fault};
//!
//! let model = "anthropic.claude-3-sonnet-20240229-v1:0";
//! let east = BedrockSim::builder()
//!     .access_key("AKIDEAST", "secret")
//!     .failure(model, Failure::first_calls(2, Fault::throttling()))
//!     .start()
//!     .await?;
//! // ... two 429s, then the script answers; a test then asserts the exact count:
//! assert_eq!(east.calls(model), 3);
//! east.set_failure(model, Failure::during(Duration::ZERO..Duration::from_secs(60), Fault::Reset));
//! east.advance_clock(Duration::from_secs(60)); // the window is over
//! # Ok(()) }
//! ```
//!
//! | When | How |
//! |---|---|
//! | every call | [`Failure::always`] |
//! | the first N calls (counted from when the failure is set), then the script | [`Failure::first_calls`] |
//! | while the simulator's clock is in a window (from when the failure is set) | [`Failure::during`]`(start..end, fault)`, moved through with [`SimHandle::advance_clock`] |
//!
//! | Fault | How | Converse | ConverseStream |
//! |---|---|---|---|
//! | `429 ThrottlingException` "Too many tokens, please wait before trying again." | [`Fault::throttling`] | HTTP error, `x-amzn-ErrorType`, `{"message"}` | the same HTTP error, no stream |
//! | `503 ServiceUnavailableException` | [`Fault::service_unavailable`] | same | same |
//! | `500 InternalServerException` | [`Fault::internal_server_error`] | same | same |
//! | `400 ValidationException` | [`Fault::validation`]`(message)` | same | same |
//! | `403 AccessDeniedException` | [`Fault::access_denied`] | same | same |
//! | `404 ResourceNotFoundException`, `408 ModelTimeoutException`, `424 ModelErrorException` | [`Fault::not_found`], [`Fault::model_timeout`], [`Fault::model_error`] | same | same |
//! | any other status and exception name | [`Fault::error`]`(status, kind, message)` | same | same |
//! | connection closed (FIN) without an answer | [`Fault::Close`] | the client sees the connection end with not a byte answered (HTTP/2: the whole connection closes) | same |
//! | connection reset (RST) without an answer | [`Fault::Reset`] | the client's read fails with "connection reset" | same |
//! | stall before the first byte (no status line) until released | [`Fault::stall_until`]`(&gate)`; [`Gate::open`] releases every stalled call, which the script then answers | no answer until released | same |
//! | stall before the first byte forever | [`Fault::stall`] | no answer until [`SimHandle::shutdown`] (then `503`) | same |
//! | a stream cut after K events | [`Fault::cut_after_events`]`(k)` | `200`, headers and the first half of the JSON body, then the connection is cut | `200` and the script's first K frames, then the connection is cut (an answer with no more than K frames is sent whole, then cut instead of ending); error answers are sent whole |
//! | an exception frame as the first event | [`Fault::throttling_event`] (`throttlingException`), [`Fault::exception_event`]`(type, message)` | the HTTP error of the exception (`throttlingException` -> `429 ThrottlingException`) | `200`, one `exception` frame, then the body ends |
//!
//! To know that a call arrived (e.g. a stalled one) without sleeping: [`SimHandle::wait_calls`]
//! and [`SimHandle::wait_total_calls`]. [`SimHandle::calls`] counts every call received for a
//! model id (refused, failed and unauthenticated ones too), [`SimHandle::total_calls`] all.
//!
//! # The Converse surface
//!
//! The request-driven scripts ([`Script::Echo`], the guardrail scripts,
//! [`Script::ThinkingToolLoop`]) play a model that understands the whole Converse request.
//! Every script (except [`Script::Fixed`] without signature checks) first validates the body
//! like Bedrock, so refusals come whatever the script.
//!
//! ## Answers and how to get each shape
//!
//! | Shape | How |
//! |---|---|
//! | Reasoning first: `reasoningContent.reasoningText {text, signature}`; streamed as `reasoningContent.text` deltas (one per word) then one `signature` delta, then `contentBlockStop` before the answer's blocks | the request turns reasoning on: `additionalModelRequestFields.thinking` `{"type": "enabled" (or "adaptive"), "budget_tokens": N}` (Claude), `additionalModelRequestFields.reasoningConfig {"type": "enabled"}` (Nova), `additionalModelRequestFields.reasoning_effort` (gpt-oss), or a model id whose base is `deepseek.r1...` (always reasons); or [`Reply::reasoning`] |
//! | `reasoningContent.redactedContent` after the reasoning text (one `redactedContent` delta) | reasoning on and [`REDACTED_THINKING_TRIGGER`] in the last user message; or [`Reply::redacted_reasoning`] |
//! | Thinking tool loop: turn 1 reasoning + `toolUse`, turn 2 (with the `toolResult`) reasoning + `<tool> returned: <result>` | [`Script::thinking_tool_loop`] and thinking on |
//! | `usage.cacheReadInputTokens` / `cacheWriteInputTokens` (omitted without cache points) | `cachePoint` blocks in `toolConfig.tools`, `system` or messages: the first request writes the prefix, a later one with the same prefix (same model id, within the `ttl`) reads it; or [`Reply::cache_usage`] |
//! | `Read document <name> (<format>, N bytes).` | `document` blocks in the last user message |
//! | Text holding minimal JSON for a schema | `outputConfig.textFormat {type: json_schema, structure: {jsonSchema: {schema: "<JSON string>"}}}` ([`minimal_instance`]) |
//! | `toolUse` of a named tool with a minimal input, stop reason `tool_use` | `toolConfig.toolChoice {tool: {name}}` (`any`: the first tool) |
//! | `serviceTier {type}`, `performanceConfig {latency}` (response and stream `metadata`) | the same request fields; or [`Reply::service_tier`], [`Reply::performance_latency`] |
//! | `additionalModelResponseFields` (response; stream `messageStop`) | `additionalModelResponseFieldPaths`, resolved against an Anthropic-style native response (`/stop_sequence` -> `{"stop_sequence": null}`, `/stop_reason`, `/usage/input_tokens`, ...); paths not found are left out |
//! | Guardrail evaluates only `guardContent` text | `guardContent` blocks plus [`Script::GuardrailMask`] or [`Script::GuardrailBlockWords`] |
//! | On-demand refusal for a bare id, answers through `us.`/`eu.`/`apac.`... profiles | [`SimBuilder::profile_only`] |
//!
//! Reasoning signatures are [`reasoning_signature`] of the text (a keyed SHA-256, base64),
//! redacted blobs [`redacted_reasoning_data`]: deterministic, so a later turn can be checked.
//! Tool-use ids the simulated model makes are stable for the same conversation.
//!
//! ## Prompt accounting
//!
//! Tokens are words: `text`, `guardContent` text and tool-result text count their words, a
//! tool definition 1 plus its description's words, a document one per 4 bytes. Prompt caching
//! reads the prompt in Anthropic's cache order (tools, system, messages); each `cachePoint`
//! ends a prefix remembered per model id for its `ttl` (`5m` or `1h`) on the simulator's clock
//! ([`SimHandle::advance_clock`] expires it). A request reads the longest remembered prefix
//! (refreshing it), writes the rest up to its last cache point, and `inputTokens` counts the
//! tokens after the last cache point. `totalTokens` adds all four. There is no minimum
//! cacheable length.
//!
//! ## Refusals (`400 ValidationException`, for both operations)
//!
//! | Request | Message (excerpt) |
//! |---|---|
//! | a bare id (or `foundation-model/` ARN) of a [`SimBuilder::profile_only`] model | `Invocation of model ID <id> with on-demand throughput isn’t supported. Retry your request with the ID or ARN of an inference profile that contains this model.` |
//! | no `messages`, first turn not `user`, roles not alternating, bad role, no `content` | as before (`...must start with a user message...`, `...must alternate...`) |
//! | a message with `content: []` | `The content field in the Message object at messages.<i> is empty...` |
//! | a whitespace-only `text` block | `The text field in the ContentBlock object at messages.<i>.content.<j> is blank...` (system: `SystemContentBlock object at system.<i>`) |
//! | `toolUse`/`toolResult` in the history without `toolConfig` | `The toolConfig field must be defined when using toolUse and toolResult content blocks.` |
//! | `toolConfig` without `tools`, or with `[]` (e.g. a `toolChoice` alone) | `Value null at 'toolConfig.tools'...` / `Value '[]' at 'toolConfig.tools'...` |
//! | `toolChoice.tool.name` not among the tools | `...Tool '<name>' not found in the provided tools...` |
//! | a document `format` outside pdf, csv, doc, docx, xls, xlsx, html, txt, md | `...document.format' failed to satisfy constraint: Member must satisfy enum value set...` |
//! | a document name outside ASCII letters/digits, single spaces, `-`, `()`, `[]`, or not 1..=200 chars (so `report.pdf`, `a_b`, `a  b`) | `The document file name can only contain alphanumeric characters, whitespace characters, hyphens, parentheses, and square brackets...` |
//! | two documents with the same name anywhere in the conversation | `Messages can't contain duplicate document names...` |
//! | document `source.bytes` not base64, or empty | `...document.source.bytes' failed to satisfy constraint...` |
//! | a message with a document but no text block | `A text block must be included when using documents...` |
//! | more than 4 `cachePoint`s (tools, system and messages together) | `The model returned the following errors: A maximum of 4 blocks with cache_control may be provided. Found <n>.` |
//! | `cachePoint.type` not `default`, `ttl` not `5m`/`1h` | `...cachePoint.type' failed to satisfy constraint...` |
//! | a `cachePoint` right after a reasoning block | `Cache point cannot be inserted after reasoning block...` |
//! | `serviceTier.type` outside priority, default, flex, reserved; `performanceConfig.latency` outside standard, optimized | `Value '<v>' at 'serviceTier.type' failed to satisfy constraint: Member must satisfy enum value set: [...]` |
//! | `requestMetadata` empty or over 16 pairs, a key (1..=256) or value (0..=256) outside `[a-zA-Z0-9\s:_@$#=/+,-.]` | `...'requestMetadata' failed to satisfy constraint...` |
//! | over 10 `additionalModelResponseFieldPaths`, one empty or over 256 chars, or not a JSON pointer (`/...`) | `...additionalModelResponseFieldPaths...` |
//! | `outputConfig.textFormat.type` not `json_schema`, or a `schema` string that is not a JSON object | `...outputConfig.textFormat.type'...` / `The JSON schema in outputConfig.textFormat.structure.jsonSchema.schema is not valid...` |
//! | an assistant turn holding reasoning whose first block is not reasoning | `If an assistant message contains any thinking blocks, the first block must be thinking. Found <kind>` |
//! | a `reasoningText` whose signature is not [`reasoning_signature`] of its text | ``The model returned the following errors: messages.<i>.content.<j>: Invalid `signature` in `thinking` block`` |
//! | a `redactedContent` the simulator did not produce | ``...Invalid `data` in `redacted_thinking` block`` |
//!
//! With Claude thinking on (`additionalModelRequestFields.thinking`) also, each worded as a
//! model error (`The model returned the following errors: ...`):
//!
//! | Request | Message (excerpt) |
//! |---|---|
//! | `budget_tokens` below 1024 | `thinking.enabled.budget_tokens: Input should be greater than or equal to 1024` |
//! | `inferenceConfig.maxTokens` not above `budget_tokens` | ``` `max_tokens` must be greater than `thinking.budget_tokens` ``` |
//! | `inferenceConfig.temperature` other than 1 | ``` `temperature` may only be set to 1 when thinking is enabled ``` |
//! | `toolChoice` `any` or `tool` | `Thinking may not be enabled when tool_choice forces tool use.` |
//! | a `reasoningText` without `signature` | `messages.<i>.content.<j>.thinking.signature: Field required` |
//! | the conversation ends with tool results and the assistant turn they answer does not start with its reasoning block (the rule is Anthropic's and does not depend on what the simulator answered before) | ``messages.<i>.content.0.type: Expected `thinking` or `redacted_thinking`, but found `tool_use`. When `thinking` is enabled, a final `assistant` message must start with a thinking block...`` |

#![forbid(unsafe_code)]

mod apply_guardrail;
mod bedrock;
mod body;
mod clock;
mod documents;
mod embedding;
mod failure;
mod frame;
mod guardrail;
mod model;
mod model_id;
mod options;
mod prompt;
mod reasoning;
mod request;
mod rules;
mod schema;
mod script;
mod server;
mod sigv4;
mod state;
pub mod stream;
mod sts;
mod tls;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use tokio::net::TcpListener;
use tokio::sync::watch;

pub use failure::{Failure, Fault, Schedule};
pub use frame::{encode_frame, event_frame, exception_frame, OVERSIZED_FRAME_LEN};
pub use guardrail::NAMES as GUARDRAIL_NAMES;
pub use reasoning::{reasoning_signature, redacted_reasoning_data, REDACTED_THINKING_TRIGGER};
pub use schema::minimal_instance;
pub use script::{CacheUsage, Gate, Reply, Script, StreamStep};
pub use tls::TlsPem;

use body::DropLog;
use clock::SimClock;
use state::{FixedAnswers, Shared};

/// Errors starting the simulator or encoding frames.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// The loopback listener could not be bound or inspected.
    #[error("bedrock-sim could not bind its listener: {0}")]
    Bind(#[source] std::io::Error),
    /// An event-stream frame could not be encoded.
    #[error("event-stream frame could not be encoded: {0}")]
    Frame(String),
    /// The TLS certificate or key given to [`SimBuilder::tls`] is unusable.
    #[error("bedrock-sim could not set up TLS: {0}")]
    Tls(String),
}

/// Entry point: `BedrockSim::builder()...start().await`.
#[derive(Debug)]
pub struct BedrockSim;

impl BedrockSim {
    /// A builder with defaults: no keys, signature verification on, every model [`Script::Echo`],
    /// no roles, STS credentials valid for one hour, requests recorded.
    pub fn builder() -> SimBuilder {
        SimBuilder::default()
    }
}

/// An STS role that may be assumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimRole {
    /// The role ARN callers pass as `RoleArn`.
    pub role_arn: String,
    /// If `Some`, `AssumeRole` must pass exactly this `ExternalId`.
    pub external_id: Option<String>,
    /// Answer `403 AccessDenied` to every attempt.
    pub deny: bool,
}

impl SimRole {
    /// An assumable role without external id.
    pub fn new(role_arn: &str) -> Self {
        Self {
            role_arn: role_arn.to_owned(),
            external_id: None,
            deny: false,
        }
    }

    /// Requires this `ExternalId`.
    #[must_use]
    pub fn external_id(mut self, external_id: &str) -> Self {
        self.external_id = Some(external_id.to_owned());
        self
    }

    /// Denies every attempt to assume the role.
    #[must_use]
    pub fn denied(mut self) -> Self {
        self.deny = true;
        self
    }
}

/// Configures and starts a simulator. `Debug` redacts every secret.
pub struct SimBuilder {
    access_keys: Vec<(String, String)>,
    session_credentials: Vec<(String, String, String)>,
    api_keys: Vec<String>,
    verify: bool,
    record: bool,
    scripts: HashMap<String, Script>,
    default_script: Script,
    roles: Vec<SimRole>,
    web_identity_tokens: Vec<String>,
    ttl: Duration,
    frozen_clock: Option<SystemTime>,
    profile_only: HashSet<String>,
    failures: HashMap<String, Failure>,
    default_failure: Option<Failure>,
    tls: Option<TlsPem>,
}

impl Default for SimBuilder {
    fn default() -> Self {
        Self {
            access_keys: Vec::new(),
            session_credentials: Vec::new(),
            api_keys: Vec::new(),
            verify: true,
            record: true,
            scripts: HashMap::new(),
            default_script: Script::Echo,
            roles: Vec::new(),
            web_identity_tokens: Vec::new(),
            ttl: Duration::from_secs(3600),
            frozen_clock: None,
            profile_only: HashSet::new(),
            failures: HashMap::new(),
            default_failure: None,
            tls: None,
        }
    }
}

impl fmt::Debug for SimBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key_ids: Vec<&str> = self.access_keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("SimBuilder")
            .field("access_key_ids", &key_ids)
            .field("secret_access_keys", &"<redacted>")
            .field(
                "session_credential_ids",
                &self
                    .session_credentials
                    .iter()
                    .map(|(id, _, _)| id.as_str())
                    .collect::<Vec<_>>(),
            )
            .field(
                "api_keys",
                &format_args!("<{} redacted>", self.api_keys.len()),
            )
            .field("verify_signatures", &self.verify)
            .field("record_requests", &self.record)
            .field("scripts", &self.scripts)
            .field("default_script", &self.default_script)
            .field("roles", &self.roles)
            .field(
                "web_identity_tokens",
                &format_args!("<{} redacted>", self.web_identity_tokens.len()),
            )
            .field("temp_credentials_ttl", &self.ttl)
            .field("frozen_clock", &self.frozen_clock)
            .field("profile_only", &self.profile_only)
            .field("failures", &self.failures)
            .field("default_failure", &self.default_failure)
            .field("tls", &self.tls)
            .finish()
    }
}

impl SimBuilder {
    /// Accepts SigV4 requests signed with this long-term key (may be called several times).
    #[must_use]
    pub fn access_key(mut self, access_key_id: &str, secret_access_key: &str) -> Self {
        self.access_keys
            .push((access_key_id.to_owned(), secret_access_key.to_owned()));
        self
    }

    /// Accepts these temporary credentials (as if issued by STS, never expiring): requests
    /// must carry and sign `x-amz-security-token: <session_token>`. For gateway configs with a
    /// static `session_token` (may be called several times).
    #[must_use]
    pub fn session_credentials(
        mut self,
        access_key_id: &str,
        secret_access_key: &str,
        session_token: &str,
    ) -> Self {
        self.session_credentials.push((
            access_key_id.to_owned(),
            secret_access_key.to_owned(),
            session_token.to_owned(),
        ));
        self
    }

    /// Accepts this Bedrock API key (`Authorization: Bearer <key>`, no SigV4) on the Bedrock
    /// endpoints (may be called several times).
    #[must_use]
    pub fn api_key(mut self, bearer_key: &str) -> Self {
        self.api_keys.push(bearer_key.to_owned());
        self
    }

    /// `true` (default): authenticate every request. `false`: accept anything (benchmarks);
    /// STS `AssumeRole` then skips SigV4 too (web identity tokens are still checked).
    #[must_use]
    pub fn verify_signatures(mut self, on: bool) -> Self {
        self.verify = on;
        self
    }

    /// `true` (default): keep every Bedrock request for [`SimHandle::requests`]. Turn off for
    /// long benchmark runs so memory stays flat.
    #[must_use]
    pub fn record_requests(mut self, on: bool) -> Self {
        self.record = on;
        self
    }

    /// Behaviour for one model id (the decoded path label, e.g.
    /// `anthropic.claude-3-sonnet-20240229-v1:0` or an ARN).
    #[must_use]
    pub fn script(mut self, model_id: &str, script: Script) -> Self {
        self.scripts.insert(model_id.to_owned(), script);
        self
    }

    /// Behaviour for model ids without their own script (default [`Script::Echo`]).
    #[must_use]
    pub fn default_script(mut self, script: Script) -> Self {
        self.default_script = script;
        self
    }

    /// An STS role that may be assumed (may be called several times).
    #[must_use]
    pub fn role(mut self, role: SimRole) -> Self {
        self.roles.push(role);
        self
    }

    /// Accepts this token in `AssumeRoleWithWebIdentity` (may be called several times).
    #[must_use]
    pub fn web_identity_token(mut self, token: &str) -> Self {
        self.web_identity_tokens.push(token.to_owned());
        self
    }

    /// Lifetime of STS-issued credentials (default one hour). `Duration::ZERO` issues
    /// credentials that are already expired: Bedrock answers them `403 ExpiredTokenException`.
    #[must_use]
    pub fn temp_credentials_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Freezes the simulator's clock (used for SigV4 skew checks and credential expiry) at
    /// `at`, e.g. to replay a request signed at a fixed time. See also
    /// [`SimHandle::advance_clock`].
    #[must_use]
    pub fn clock_at(mut self, at: SystemTime) -> Self {
        self.frozen_clock = Some(at);
        self
    }

    /// Serves `model_id` (a base model id such as
    /// `anthropic.claude-sonnet-4-5-20250929-v1:0`) only through inference profiles, like the
    /// newest models on Bedrock: a call with the bare id (or its `foundation-model/` ARN) is
    /// refused with `400 ValidationException` `Invocation of model ID <id> with on-demand
    /// throughput isn’t supported. Retry your request with the ID or ARN of an inference
    /// profile that contains this model.`, while `us.<id>`, `eu.<id>`, `apac.<id>` (any
    /// geographic prefix) and inference-profile ARNs answer. A profile id without its own
    /// script uses the base id's script. May be called several times.
    #[must_use]
    pub fn profile_only(mut self, model_id: &str) -> Self {
        self.profile_only.insert(model_id.to_owned());
        self
    }

    /// A [`Failure`] for one model id (the decoded path label), over its script: while the
    /// failure's [`Schedule`] applies its [`Fault`] answers, otherwise the script does. A
    /// cross-region profile id (`us.<id>`) without its own failure uses the base id's. One
    /// failure per model id (a later call replaces it); its schedule starts at
    /// [`SimBuilder::start`].
    #[must_use]
    pub fn failure(mut self, model_id: &str, failure: Failure) -> Self {
        self.failures.insert(model_id.to_owned(), failure);
        self
    }

    /// A [`Failure`] for every model id without its own (e.g. a whole account or region
    /// down). Its schedule counts the calls of all those model ids together.
    #[must_use]
    pub fn default_failure(mut self, failure: Failure) -> Self {
        self.default_failure = Some(failure);
        self
    }

    /// Serves HTTPS (HTTP/1.1 over TLS) with this certificate and key instead of plain HTTP;
    /// [`SimHandle::url`] then starts with `https://`.
    #[must_use]
    pub fn tls(mut self, pem: TlsPem) -> Self {
        self.tls = Some(pem);
        self
    }

    /// Binds `127.0.0.1:0` and starts serving. Must be called inside a Tokio runtime.
    ///
    /// # Errors
    /// [`SimError::Bind`] if the listener cannot be bound.
    pub async fn start(self) -> Result<SimHandle, SimError> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(SimError::Bind)?;
        self.start_on(listener).await
    }

    /// Starts serving on `listener`. Must be called inside a Tokio runtime.
    ///
    /// # Errors
    /// [`SimError::Bind`] if the listener's address cannot be read; [`SimError::Frame`] if
    /// the fixed answer cannot be encoded (does not happen); [`SimError::Tls`] if the TLS
    /// certificate or key is unusable.
    pub async fn start_on(self, listener: TcpListener) -> Result<SimHandle, SimError> {
        let addr = listener.local_addr().map_err(SimError::Bind)?;
        let tls = self.tls.as_ref().map(tls::acceptor).transpose()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let fixed = fixed_answers()?;
        let shared = Arc::new(Shared {
            access_keys: self.access_keys.into_iter().collect(),
            api_keys: self.api_keys,
            verify: self.verify,
            record: self.record,
            roles: self.roles,
            web_identity_tokens: self.web_identity_tokens,
            ttl: self.ttl,
            scripts: RwLock::new(
                self.scripts
                    .into_iter()
                    .map(|(id, script)| (id, Arc::new(script)))
                    .collect(),
            ),
            default_script: Arc::new(self.default_script),
            sequence_calls: Mutex::new(HashMap::new()),
            requests: Mutex::new(Vec::new()),
            sts_calls: AtomicUsize::new(0),
            temp_credentials: Mutex::new(
                self.session_credentials
                    .into_iter()
                    .map(|(id, secret, token)| {
                        let credential = state::TempCredential {
                            secret_access_key: secret,
                            session_token: token,
                            expiration: SystemTime::UNIX_EPOCH
                                + Duration::from_secs(u32::MAX.into()),
                        };
                        (id, credential)
                    })
                    .collect(),
            ),
            drops: Arc::new(DropLog::default()),
            clock: SimClock::new(self.frozen_clock),
            fixed,
            shutdown: shutdown_rx.clone(),
            profile_only: self.profile_only,
            prompt_cache: prompt::PromptCache::default(),
            failures: RwLock::new(HashMap::new()),
            default_failure: RwLock::new(None),
            calls: failure::CallCounter::default(),
        });
        for (model_id, failure) in self.failures {
            shared.set_failure(&model_id, failure);
        }
        shared.set_default_failure(self.default_failure);
        tokio::spawn(server::accept_loop(
            listener,
            tls,
            Arc::clone(&shared),
            shutdown_rx,
        ));
        tracing::debug!(%addr, scheme, "bedrock-sim listening");
        Ok(SimHandle {
            inner: Arc::new(HandleInner {
                addr,
                scheme,
                shared,
                shutdown: shutdown_tx,
            }),
        })
    }
}

fn fixed_answers() -> Result<FixedAnswers, SimError> {
    let reply = bedrock::fixed_reply();
    let converse = reply
        .to_converse_json(bedrock::FIXED_LATENCY_MS)
        .to_string()
        .into();
    let stream = stream::from_reply(&reply)
        .into_iter()
        .filter_map(|step| match step {
            StreamStep::Event {
                event_type,
                payload,
            } => Some(event_frame(&event_type, &payload)),
            _ => None,
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(FixedAnswers { converse, stream })
}

/// A running simulator. Clones share it; it shuts down on [`SimHandle::shutdown`] or when the
/// last clone is dropped.
#[derive(Clone)]
pub struct SimHandle {
    inner: Arc<HandleInner>,
}

struct HandleInner {
    addr: SocketAddr,
    /// `http`, or `https` when serving TLS.
    scheme: &'static str,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
}

impl Drop for HandleInner {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
    }
}

impl fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimHandle")
            .field("addr", &self.inner.addr)
            .finish_non_exhaustive()
    }
}

impl SimHandle {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// `http://127.0.0.1:PORT` (`https://` with [`SimBuilder::tls`]): both the Bedrock Runtime
    /// endpoint and the STS endpoint.
    pub fn url(&self) -> String {
        format!("{}://{}", self.inner.scheme, self.inner.addr)
    }

    /// Every Bedrock request received so far (including rejected ones), in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.inner
            .shared
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(state::StoredRequest::to_recorded)
            .collect()
    }

    /// Number of `AssumeRole` and `AssumeRoleWithWebIdentity` calls answered (successful or
    /// not).
    pub fn sts_calls(&self) -> usize {
        self.inner.shared.sts_calls.load(Ordering::SeqCst)
    }

    /// Changes the behaviour for one model id; requests already being answered are unaffected.
    pub fn set_script(&self, model_id: &str, script: Script) {
        self.inner.shared.set_script(model_id, script);
    }

    /// Sets (or replaces) the [`Failure`] of one model id, as [`SimBuilder::failure`]; its
    /// schedule starts now (a [`Schedule::FirstCalls`] counts from zero again, a
    /// [`Schedule::During`] window is measured from the simulator's clock now). Calls already
    /// being answered are unaffected.
    pub fn set_failure(&self, model_id: &str, failure: Failure) {
        self.inner.shared.set_failure(model_id, failure);
    }

    /// Removes the [`Failure`] of one model id (the default failure, if any, then applies).
    pub fn clear_failure(&self, model_id: &str) {
        self.inner.shared.clear_failure(model_id);
    }

    /// Sets (or replaces) the failure of every model id without its own, as
    /// [`SimBuilder::default_failure`]; its schedule starts now.
    pub fn set_default_failure(&self, failure: Failure) {
        self.inner.shared.set_default_failure(Some(failure));
    }

    /// Removes the default failure.
    pub fn clear_default_failure(&self) {
        self.inner.shared.set_default_failure(None);
    }

    /// Bedrock calls (Converse and ConverseStream) received so far for this model id (the
    /// decoded path label, exactly as sent), whatever they were answered (refusals,
    /// failures and unauthenticated calls included). Counted when the request has been read
    /// and recorded, before it is answered.
    pub fn calls(&self, model_id: &str) -> usize {
        self.inner.shared.calls.calls(model_id)
    }

    /// Bedrock calls received so far for all model ids together (see [`SimHandle::calls`]).
    pub fn total_calls(&self) -> usize {
        self.inner.shared.calls.total()
    }

    /// Resolves once [`SimHandle::calls`] for `model_id` reaches `calls` (at once if it
    /// already has), without polling or sleeping: e.g. to know a stalled call arrived. Bound
    /// it with `tokio::time::timeout` in tests.
    pub async fn wait_calls(&self, model_id: &str, calls: usize) {
        let counter = &self.inner.shared.calls;
        counter.wait_until(|c| c.calls(model_id) >= calls).await;
    }

    /// Resolves once [`SimHandle::total_calls`] reaches `calls` (at once if it already has).
    pub async fn wait_total_calls(&self, calls: usize) {
        let counter = &self.inner.shared.calls;
        counter.wait_until(|c| c.total() >= calls).await;
    }

    /// Resolves when a streaming response body that was still being produced is dropped
    /// because the client went away, and returns when that happened. Each drop is reported
    /// once, in order; a drop that happened before the call is returned at once.
    pub async fn wait_stream_dropped(&self) -> Instant {
        self.inner.shared.drops.next().await
    }

    /// Moves the simulator's clock forward (credential expiry, skew checks, prompt-cache
    /// expiry, [`Schedule::During`] windows) without sleeping.
    pub fn advance_clock(&self, by: Duration) {
        self.inner.shared.clock.advance(by);
    }

    /// Stops accepting connections, lets connections finish their current response
    /// (stalled and held streams are ended) and closes them. Also happens when the last
    /// handle is dropped.
    pub fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
    }
}

/// A Bedrock operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `POST /model/{modelId}/converse`.
    Converse,
    /// `POST /model/{modelId}/converse-stream`.
    ConverseStream,
    /// `POST /model/{modelId}/count-tokens`.
    CountTokens,
    /// `POST /model/{modelId}/invoke`, for the embedding models (Titan, Cohere Embed).
    InvokeModel,
}

/// How a recorded request authenticated (as presented; rejected requests are recorded too).
#[derive(Clone, PartialEq, Eq)]
pub enum RecordedAuth {
    /// `Authorization: AWS4-HMAC-SHA256 ...`.
    SigV4 {
        /// The access key id of the credential scope.
        access_key_id: String,
        /// The `x-amz-security-token` header, if any.
        session_token: Option<String>,
    },
    /// `Authorization: Bearer <key>`.
    Bearer,
    /// No (recognisable) `Authorization` header.
    Unsigned,
}

impl fmt::Debug for RecordedAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SigV4 {
                access_key_id,
                session_token,
            } => f
                .debug_struct("SigV4")
                .field("access_key_id", access_key_id)
                .field(
                    "session_token",
                    &session_token.as_ref().map(|_| "<redacted>"),
                )
                .finish(),
            Self::Bearer => f.write_str("Bearer"),
            Self::Unsigned => f.write_str("Unsigned"),
        }
    }
}

/// One Bedrock request as received.
#[derive(Clone)]
pub struct RecordedRequest {
    /// Converse or ConverseStream.
    pub operation: Operation,
    /// The decoded model id.
    pub model_id: String,
    /// The path as received (still percent-encoded).
    pub raw_path: String,
    /// Request headers (including `authorization`).
    pub headers: http::HeaderMap,
    /// The body as JSON (`Null` if it was not JSON).
    pub body: serde_json::Value,
    /// The body bytes as received.
    pub raw_body: bytes::Bytes,
    /// How the request authenticated.
    pub auth: RecordedAuth,
}

impl fmt::Debug for RecordedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header_names: Vec<&str> = self.headers.keys().map(http::HeaderName::as_str).collect();
        f.debug_struct("RecordedRequest")
            .field("operation", &self.operation)
            .field("model_id", &self.model_id)
            .field("raw_path", &self.raw_path)
            .field("header_names", &header_names)
            .field("body", &self.body)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}
