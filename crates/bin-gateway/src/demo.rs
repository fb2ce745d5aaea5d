//! `gateway demo`: the built-in Bedrock simulator plus a gateway configured against it, so a
//! newcomer sees real requests answered with no AWS account.

use std::net::SocketAddr;

use bedrock_sim::{BedrockSim, Reply, Script, SimHandle};
use gateway_core::clock::SharedClock;
use thiserror::Error;

use crate::config::{ConfigError, GatewayConfig};
use crate::wiring::{start_sharded, ShardedGateway, StartError};

/// The demo's configuration file, an ordinary config with two variables filled in.
pub const DEMO_CONFIG: &str = include_str!("../demo.toml");
pub const DEMO_KEY: &str = "demo-key-not-secret";
/// The console's admin key in `demo.toml` (the console's own, not a gateway key).
pub const DEMO_ADMIN_KEY: &str = "demo-admin-key-not-secret";

#[derive(Debug, Error)]
pub enum DemoError {
    #[error("cannot start the Bedrock simulator: {0}")]
    Simulator(String),
    #[error("demo configuration: {0}")]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Start(#[from] StartError),
}

/// A running demo: keep it alive as long as it should serve.
#[derive(Debug)]
pub struct Demo {
    pub sim: SimHandle,
    pub gateway: ShardedGateway,
}

/// The Claude model `demo/on-demand` names by its bare id: the simulator serves it only
/// through inference profiles, as Bedrock does for the newest models, so the gateway's
/// on-demand retry (`us.` for the demo's `us-east-1`) is seen on the first call.
const PROFILE_ONLY_MODEL: &str = "anthropic.claude-haiku-4-5-20251001-v1:0";

/// Starts the simulator on a free loopback port and the gateway on `listen`.
pub async fn start_demo(listen: SocketAddr) -> Result<Demo, DemoError> {
    let sim = BedrockSim::builder()
        .access_key(
            "AKIDDEMOGATEWAY00000",
            "demo/secret/signed-and-verified-by-the-simulator",
        )
        .script("demo.guardrail-mask", Script::GuardrailMask)
        .script(
            "demo.guardrail-block-input",
            Script::GuardrailBlockInput {
                message: "Sorry, the model cannot answer this question.".into(),
            },
        )
        .script(
            "demo.tool-use",
            Script::Reply(
                Reply::text("Let me look up the weather.")
                    .tool_use(
                        "tooluse_demo_1",
                        "get_weather",
                        serde_json::json!({"city": "Paris"}),
                    )
                    .stop_reason("tool_use"),
            ),
        )
        .script(
            "us.anthropic.claude-sonnet-4-20250514-v1:0",
            Script::thinking_tool_loop("get_weather", serde_json::json!({"city": "Paris"})),
        )
        .profile_only(PROFILE_ONLY_MODEL)
        .script(
            "demo.throttled",
            Script::error(
                429,
                "ThrottlingException",
                "Too many requests, please wait before trying again.",
            ),
        )
        .start()
        .await
        .map_err(|e| DemoError::Simulator(e.to_string()))?;
    let sim_url = sim.url();
    let config = GatewayConfig::parse(DEMO_CONFIG, &|name| match name {
        "BEDROCK_SIM_URL" => Some(sim_url.clone()),
        "DEMO_LISTEN" => Some(listen.to_string()),
        other => std::env::var(other).ok(),
    })?;
    let mut gateway = start_sharded(&config, SharedClock::system()).await?;
    // Its accounts sign with fixed keys: ready as soon as asked.
    gateway.check_readiness();
    Ok(Demo { sim, gateway })
}

/// What to paste to try it.
pub fn instructions(gateway_url: &str) -> String {
    format!(
        r#"AI gateway demo: OpenAI-compatible API at {gateway_url}/v1, answered by the built-in Bedrock simulator.
Also: POST /v1/messages (Anthropic Messages, key in x-api-key), /v1/responses (OpenAI Responses),
      /v1/embeddings, /v1/guardrails/check (guardrail "pii").
Gateway key: {DEMO_KEY}
Console: {gateway_url}/console (admin key: {DEMO_ADMIN_KEY}; the playground takes the gateway key)
Models: demo/claude-3 (echo), demo/guarded (guardrail masks names and e-mails), demo/blocked (enforced guardrail blocks input),
        demo/tools (tool call), demo/throttled (Bedrock throttling -> 429),
        demo/thinker (Claude Sonnet 4.5: reasoning_effort, native response_format, cache_control, file parts),
        demo/thinker-tools (thinking tool loop calling get_weather), demo/on-demand (bare id retried as a us. profile),
        demo/nova (Nova Pro: response_format through a forced tool, prompt caching),
        demo/titan-embed, demo/cohere-embed (embedding models, at POST /v1/embeddings),
        claude-ha (virtual model: demo-east/claude-3, always throttled, fails over to demo-west/claude-3 in us-west-2;
                   the header x-gateway-target names the target that answered)

curl {gateway_url}/v1/chat/completions \
  -H "Authorization: Bearer {DEMO_KEY}" -H "Content-Type: application/json" \
  -d '{{"model":"demo/claude-3","messages":[{{"role":"user","content":"Hello, Bedrock!"}}]}}'

curl -i {gateway_url}/v1/chat/completions \
  -H "Authorization: Bearer {DEMO_KEY}" -H "Content-Type: application/json" \
  -d '{{"model":"claude-ha","messages":[{{"role":"user","content":"Hello from us-east-1?"}}]}}'

curl -N {gateway_url}/v1/chat/completions \
  -H "Authorization: Bearer {DEMO_KEY}" -H "Content-Type: application/json" \
  -d '{{"model":"demo/guarded","stream":true,"messages":[{{"role":"user","content":"Write to Elon Musk at elon@example.com"}}]}}'

curl {gateway_url}/v1/chat/completions \
  -H "Authorization: Bearer {DEMO_KEY}" -H "Content-Type: application/json" \
  -d '{{"model":"demo/thinker","reasoning_effort":"low","messages":[{{"role":"user","content":"Think first, then answer."}}]}}'

curl {gateway_url}/v1/guardrails/check \
  -H "Authorization: Bearer {DEMO_KEY}" -H "Content-Type: application/json" \
  -d '{{"guardrail":"pii","source":"OUTPUT","content":["Mail Elon Musk at elon@example.com"]}}'

curl {gateway_url}/v1/embeddings \
  -H "Authorization: Bearer {DEMO_KEY}" -H "Content-Type: application/json" \
  -d '{{"model":"demo/titan-embed","input":["Hello, Bedrock!"],"dimensions":256}}'

python3 - <<'PY'
from openai import OpenAI
client = OpenAI(base_url="{gateway_url}/v1", api_key="{DEMO_KEY}")
r = client.chat.completions.create(
    model="demo/claude-3",
    messages=[{{"role": "user", "content": "What are some ideas for email for Elon Musk?"}}],
    extra_body={{"guardrailConfig": {{"guardrailIdentifier": "xyz-123-768", "guardrailVersion": "1"}}}},
)
print(r.choices[0].finish_reason, r.choices[0].message.content)
PY
Press Ctrl-C to stop."#
    )
}
