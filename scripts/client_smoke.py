# Smoke test of real clients (OpenAI Python SDK, LangChain) against `gateway demo`.
# Run: cargo run --release -p gateway -- demo --listen 127.0.0.1:18080 & python3 scripts/client_smoke.py
# (another address: GATEWAY_URL=http://127.0.0.1:18247 python3 scripts/client_smoke.py)
# (pip install openai langchain-openai pydantic)
# Prints one line per check; exits 1 if any expectation failed.
import os
import base64
import json
import struct
import sys
import traceback

import openai
from openai import OpenAI
from pydantic import BaseModel

BASE = os.environ.get("GATEWAY_URL", "http://127.0.0.1:18080") + "/v1"
KEY = "demo-key-not-secret"
client = OpenAI(base_url=BASE, api_key=KEY, max_retries=0)
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
CHECKS = []


def check(fn):
    CHECKS.append(fn)
    return fn


def extra(obj, name):
    """A field the OpenAI SDK does not model (reasoning_content, thinking_blocks, ...)."""
    return (obj.model_extra or {}).get(name)


def expect_error(error_type, code, param, call):
    try:
        call()
    except error_type as e:
        error = e.body if isinstance(e.body, dict) and "code" in e.body else (e.body or {}).get("error", {})
        assert error.get("code") == code, f"code {error.get('code')!r}, want {code!r}: {e.body}"
        assert error.get("param") == param, f"param {error.get('param')!r}, want {param!r}: {e.body}"
        return f"{e.status_code} {code} param={param}"
    raise AssertionError(f"no {error_type.__name__}")


# --- what worked before issue 9 -------------------------------------------------------------

@check
def basic_completion():
    r = client.chat.completions.create(model="demo/claude-3", max_tokens=50, messages=[
        {"role": "system", "content": "be brief"}, {"role": "user", "content": "Hello from the SDK"}])
    assert r.choices[0].finish_reason == "stop", r
    assert r.choices[0].message.content == "You said: Hello from the SDK", r
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0, r.usage
    return repr(r.choices[0].message.content)


@check
def guardrail_masks():
    r = client.chat.completions.create(model="demo/guarded", messages=[
        {"role": "user", "content": "What are some ideas for email for Elon Musk?"}],
        extra_body={"guardrailConfig": {"guardrailIdentifier": "xyz-123-768", "guardrailVersion": "1", "trace": "enabled"}})
    assert r.choices[0].finish_reason == "guardrail_intervened", r
    assert "{NAME}" in r.choices[0].message.content, r
    assert extra(r, "guardrail_trace") is not None, r
    return r.choices[0].message.content


@check
def streaming_with_usage():
    s = client.chat.completions.create(model="demo/claude-3", stream=True, stream_options={"include_usage": True},
                                       messages=[{"role": "user", "content": "stream me"}])
    parts, finish, usage = [], None, None
    for c in s:
        if c.choices:
            parts.append(c.choices[0].delta.content or "")
            finish = c.choices[0].finish_reason or finish
        if c.usage:
            usage = c.usage
    assert "".join(parts) == "You said: stream me", parts
    assert finish == "stop" and usage and usage.total_tokens > 0, (finish, usage)
    return f"{''.join(parts)!r} {finish} total_tokens={usage.total_tokens}"


@check
def tool_call():
    r = client.chat.completions.create(model="demo/tools", tools=[WEATHER_TOOL],
                                       messages=[{"role": "user", "content": "weather?"}])
    call = r.choices[0].message.tool_calls[0]
    assert r.choices[0].finish_reason == "tool_calls", r
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}, call
    return f"{call.function.name}({call.function.arguments})"


@check
def throttled_is_429():
    try:
        client.chat.completions.create(model="demo/throttled", messages=[{"role": "user", "content": "x"}])
    except openai.RateLimitError as e:
        assert e.status_code == 429
        return f"RateLimitError {e.status_code}"
    raise AssertionError("no RateLimitError")


@check
def virtual_model_fails_over():
    raw = client.chat.completions.with_raw_response.create(
        model="claude-ha", messages=[{"role": "user", "content": "Hello"}])
    target = raw.headers.get("x-gateway-target")
    assert target == "demo-west/claude-3", target
    r = raw.parse()
    assert r.model == "claude-ha" and r.choices[0].message.content, r
    with client.chat.completions.with_streaming_response.create(
            model="claude-ha", stream=True, messages=[{"role": "user", "content": "Hello"}]) as s:
        assert s.headers.get("x-gateway-target") == "demo-west/claude-3", s.headers
        text = "".join(c.choices[0].delta.content or "" for c in s.parse() if c.choices)
    assert text, text
    return f"x-gateway-target: {target}"


@check
def wrong_key_is_401():
    try:
        OpenAI(base_url=BASE, api_key="wrong-key-xx", max_retries=0).chat.completions.create(
            model="demo/claude-3", messages=[{"role": "user", "content": "x"}])
    except openai.AuthenticationError as e:
        return f"AuthenticationError {e.status_code}"
    raise AssertionError("no AuthenticationError")


@check
def unknown_model_is_404():
    return expect_error(openai.NotFoundError, "model_not_found", "model", lambda: client.chat.completions.create(
        model="demo/nope", messages=[{"role": "user", "content": "x"}]))


@check
def models_listed():
    ids = [m.id for m in client.models.list()]
    for name in ("demo/claude-3", "demo/thinker", "demo/thinker-tools", "demo/on-demand", "demo/nova",
                 "claude-ha"):
        assert name in ids, ids
    return ", ".join(ids)


@check
def enforced_guardrail_blocks():
    r = client.chat.completions.create(model="demo/blocked", messages=[{"role": "user", "content": "anything"}])
    assert r.choices[0].finish_reason == "guardrail_intervened", r
    return r.choices[0].message.content


@check
def other_guardrail_refused_when_enforced():
    return expect_error(openai.BadRequestError, "guardrail_enforced", "guardrailConfig",
                        lambda: client.chat.completions.create(
                            model="demo/blocked", messages=[{"role": "user", "content": "x"}],
                            extra_body={"guardrailConfig": {"guardrailIdentifier": "other", "guardrailVersion": "1"}}))


# --- issue 9: reasoning -----------------------------------------------------------------------

@check
def reasoning_effort_gives_thinking_blocks():
    r = client.chat.completions.create(model="demo/thinker", reasoning_effort="low",
                                       messages=[{"role": "user", "content": "Think, then say hi"}])
    message = r.choices[0].message
    reasoning, blocks = extra(message, "reasoning_content"), extra(message, "thinking_blocks")
    assert reasoning, message
    assert blocks and blocks[0]["type"] == "thinking" and blocks[0]["signature"], blocks
    assert blocks[0]["thinking"] == reasoning, (blocks, reasoning)
    assert message.content == "You said: Think, then say hi", message
    return f"reasoning {len(reasoning)} chars, {len(blocks)} block(s), signed"


@check
def reasoning_refused_on_a_model_that_does_not_think():
    return expect_error(openai.BadRequestError, "unsupported_value", "reasoning_effort",
                        lambda: client.chat.completions.create(model="demo/nova", reasoning_effort="high",
                                                               messages=[{"role": "user", "content": "x"}]))


@check
def thinking_tool_loop_two_turns():
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = client.chat.completions.create(model="demo/thinker-tools", reasoning_effort="low",
                                           tools=[WEATHER_TOOL], messages=messages)
    turn = first.choices[0].message
    blocks = extra(turn, "thinking_blocks")
    assert first.choices[0].finish_reason == "tool_calls" and turn.tool_calls, first
    assert blocks and blocks[0]["signature"], turn
    # The assistant turn goes back as the SDK returned it: thinking_blocks included.
    messages.append(turn.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": turn.tool_calls[0].id, "content": "18 C and sunny"})
    second = client.chat.completions.create(model="demo/thinker-tools", reasoning_effort="low",
                                            tools=[WEATHER_TOOL], messages=messages)
    assert second.choices[0].finish_reason == "stop", second
    assert second.choices[0].message.content == "get_weather returned: 18 C and sunny", second
    assert extra(second.choices[0].message, "thinking_blocks"), second
    return repr(second.choices[0].message.content)


@check
def thinking_loop_without_blocks_is_bedrocks_400():
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = client.chat.completions.create(model="demo/thinker-tools", reasoning_effort="low",
                                           tools=[WEATHER_TOOL], messages=messages)
    turn = first.choices[0].message
    messages.append({"role": "assistant", "content": None,
                     "tool_calls": [c.model_dump() for c in turn.tool_calls]})
    messages.append({"role": "tool", "tool_call_id": turn.tool_calls[0].id, "content": "18 C"})
    try:
        client.chat.completions.create(model="demo/thinker-tools", reasoning_effort="low",
                                       tools=[WEATHER_TOOL], messages=messages)
    except openai.BadRequestError as e:
        assert "thinking" in str(e.body), e.body
        return f"{e.status_code} {str(e.body.get('message', e.body))[:70]}..."
    raise AssertionError("accepted a thinking tool loop without its thinking block")


@check
def streaming_reasoning_deltas():
    s = client.chat.completions.create(model="demo/thinker", reasoning_effort="minimal", stream=True,
                                       stream_options={"include_usage": True},
                                       messages=[{"role": "user", "content": "stream your thoughts"}])
    order, reasoning, signatures, text, usage = [], [], [], [], None
    for c in s:
        if c.usage:
            usage = c.usage
        if not c.choices:
            continue
        delta = c.choices[0].delta
        if extra(delta, "reasoning_content"):
            reasoning.append(extra(delta, "reasoning_content"))
            order.append("reasoning")
        for block in extra(delta, "thinking_blocks") or []:
            signatures.append(block.get("signature"))
            order.append("signature")
        if delta.content:
            text.append(delta.content)
            order.append("text")
    assert len(reasoning) > 1 and signatures and all(signatures), (reasoning, signatures)
    assert order.index("signature") < order.index("text"), order
    assert max(i for i, kind in enumerate(order) if kind == "reasoning") < order.index("text"), order
    assert "".join(text) == "You said: stream your thoughts", text
    assert usage and usage.completion_tokens > 0, usage
    return f"{len(reasoning)} reasoning deltas, signature before text, text {''.join(text)!r}"


# --- issue 9: prompt caching ------------------------------------------------------------------

@check
def cache_control_reports_cache_tokens():
    system = "You are a meticulous assistant. " * 20
    messages = [
        {"role": "system", "content": [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}]},
        {"role": "user", "content": "Hello, cache"},
    ]
    first = client.chat.completions.create(model="demo/thinker", messages=messages)
    second = client.chat.completions.create(model="demo/thinker", messages=messages)
    u1, u2 = first.usage, second.usage
    assert extra(u1, "cache_creation_input_tokens") > 0, u1
    assert extra(u2, "cache_read_input_tokens") == extra(u1, "cache_creation_input_tokens"), (u1, u2)
    assert u2.prompt_tokens_details.cached_tokens == extra(u2, "cache_read_input_tokens"), u2
    assert u2.prompt_tokens == u1.prompt_tokens, (u1, u2)  # prompt_tokens counts cached tokens too
    assert u2.total_tokens == u2.prompt_tokens + u2.completion_tokens, u2
    return (f"write {extra(u1, 'cache_creation_input_tokens')}, then read {extra(u2, 'cache_read_input_tokens')}"
            f" (cached_tokens {u2.prompt_tokens_details.cached_tokens}, prompt_tokens {u2.prompt_tokens})")


@check
def cache_usage_in_stream():
    messages = [
        {"role": "system", "content": [{"type": "text", "text": "Stream cache " * 30, "cache_control": {"type": "ephemeral", "ttl": "1h"}}]},
        {"role": "user", "content": "Hello"},
    ]
    usage = None
    for _ in range(2):
        for c in client.chat.completions.create(model="demo/thinker", messages=messages, stream=True,
                                                stream_options={"include_usage": True}):
            usage = c.usage or usage
    assert extra(usage, "cache_read_input_tokens") > 0, usage
    assert usage.prompt_tokens_details.cached_tokens == extra(usage, "cache_read_input_tokens"), usage
    return f"streamed usage: cache_read_input_tokens {extra(usage, 'cache_read_input_tokens')}"


@check
def five_cache_points_refused():
    part = lambda t: {"type": "text", "text": t, "cache_control": {"type": "ephemeral"}}
    return expect_error(openai.BadRequestError, "unsupported_value", "cache_control",
                        lambda: client.chat.completions.create(model="demo/thinker", messages=[
                            {"role": "user", "content": [part(f"part {i}") for i in range(5)]}]))


# --- issue 9: documents -----------------------------------------------------------------------

PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"


@check
def pdf_file_part():
    data = "data:application/pdf;base64," + base64.b64encode(PDF).decode()
    r = client.chat.completions.create(model="demo/thinker", messages=[{"role": "user", "content": [
        {"type": "file", "file": {"filename": "Q3 report_final.pdf", "file_data": data}},
        {"type": "text", "text": "Summarise it"}]}])
    content = r.choices[0].message.content
    assert content.startswith(f"Read document Q3 report-final (pdf, {len(PDF)} bytes)."), content
    return content


@check
def file_that_lies_about_its_type():
    data = "data:application/pdf;base64," + base64.b64encode(b"not a pdf at all").decode()
    return expect_error(openai.BadRequestError, "invalid_value", "messages[0].content[0].file.file_data",
                        lambda: client.chat.completions.create(model="demo/thinker", messages=[{"role": "user", "content": [
                            {"type": "file", "file": {"filename": "x.pdf", "file_data": data}},
                            {"type": "text", "text": "read"}]}]))


# --- issue 9: structured output ---------------------------------------------------------------

class Weather(BaseModel):
    city: str
    temperature_c: int
    sunny: bool


@check
def parse_native_json_schema():
    r = client.chat.completions.parse(model="demo/thinker", response_format=Weather,
                                      messages=[{"role": "user", "content": "Weather in Paris as JSON"}])
    parsed = r.choices[0].message.parsed
    assert isinstance(parsed, Weather), r
    return f"demo/thinker (outputConfig): {parsed!r}"


@check
def parse_forced_tool_json_schema():
    r = client.chat.completions.parse(model="demo/nova", response_format=Weather,
                                      messages=[{"role": "user", "content": "Weather in Paris as JSON"}])
    choice = r.choices[0]
    assert isinstance(choice.message.parsed, Weather), r
    assert choice.finish_reason == "stop" and not choice.message.tool_calls, choice
    return f"demo/nova (forced tool): {choice.message.parsed!r}"


@check
def json_object():
    results = []
    for model in ("demo/thinker", "demo/nova"):
        r = client.chat.completions.create(model=model, response_format={"type": "json_object"},
                                           messages=[{"role": "user", "content": "Answer in JSON"}])
        assert isinstance(json.loads(r.choices[0].message.content), dict), r
        results.append(f"{model} {r.choices[0].message.content}")
    return "; ".join(results)


@check
def json_schema_streamed_through_forced_tool():
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    text, finish = [], None
    for c in client.chat.completions.create(model="demo/nova", stream=True, messages=[{"role": "user", "content": "x"}],
                                            response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": schema}}):
        if c.choices:
            assert not c.choices[0].delta.tool_calls, c
            text.append(c.choices[0].delta.content or "")
            finish = c.choices[0].finish_reason or finish
    assert "answer" in json.loads("".join(text)) and finish == "stop", (text, finish)
    return "".join(text)


@check
def forced_tool_refused_while_claude_thinks():
    return expect_error(openai.BadRequestError, "unsupported_value", "response_format",
                        lambda: client.chat.completions.create(model="demo/thinker", reasoning_effort="low",
                                                               response_format={"type": "json_object"},
                                                               messages=[{"role": "user", "content": "x"}]))


# --- issue 9: request options and strict parameters -------------------------------------------

@check
def service_tier_metadata_and_extras():
    r = client.chat.completions.create(
        model="demo/thinker", service_tier="priority", metadata={"team": "search", "run": "smoke-1"},
        messages=[{"role": "user", "content": "options"}],
        extra_body={"performanceConfig": {"latency": "optimized"},
                    "additionalModelResponseFieldPaths": ["/stop_sequence"]})
    fields = extra(r.choices[0].message, "additional_model_response_fields")
    assert fields == {"stop_sequence": None}, r
    return f"200, additional_model_response_fields={fields}"


@check
def bad_service_tier():
    return expect_error(openai.BadRequestError, "invalid_value", "service_tier",
                        lambda: client.chat.completions.create(model="demo/thinker", service_tier="turbo",
                                                               messages=[{"role": "user", "content": "x"}]))


@check
def metadata_beyond_bedrock_limits():
    return expect_error(openai.BadRequestError, "unsupported_value", "requestMetadata",
                        lambda: client.chat.completions.create(model="demo/thinker", metadata={"k": "semi;colon"},
                                                               messages=[{"role": "user", "content": "x"}]))


@check
def unknown_parameter():
    return expect_error(openai.BadRequestError, "unknown_parameter", "guardrail_config",
                        lambda: client.chat.completions.create(
                            model="demo/claude-3", messages=[{"role": "user", "content": "x"}],
                            extra_body={"guardrail_config": {"guardrailIdentifier": "x", "guardrailVersion": "1"}}))


@check
def seed_unsupported():
    return expect_error(openai.BadRequestError, "unsupported_parameter", "seed",
                        lambda: client.chat.completions.create(model="demo/claude-3", seed=7,
                                                               messages=[{"role": "user", "content": "x"}]))


@check
def ignored_openai_parameters():
    r = client.chat.completions.create(model="demo/claude-3", user="u-1", store=False, n=1, logprobs=False,
                                       parallel_tool_calls=True, tools=[WEATHER_TOOL],
                                       messages=[{"role": "user", "content": "fine"}])
    assert r.choices[0].message.content == "You said: fine", r
    return "user, store, n=1, logprobs=false, parallel_tool_calls accepted"


@check
def on_demand_retry():
    r = client.chat.completions.create(model="demo/on-demand", reasoning_effort="minimal",
                                       messages=[{"role": "user", "content": "profiles"}])
    assert r.choices[0].message.content == "You said: profiles", r
    assert extra(r.choices[0].message, "thinking_blocks"), r
    return "bare id answered through the us. profile"


# --- LangChain --------------------------------------------------------------------------------

def langchain(model, **kwargs):
    from langchain_openai import ChatOpenAI
    return ChatOpenAI(model=model, base_url=BASE, api_key=KEY, max_retries=0, **kwargs)


@check
def langchain_guardrail():
    llm = langchain("demo/guarded", extra_body={"guardrailConfig": {"guardrailIdentifier": "xyz-123-768", "guardrailVersion": "1"}})
    m = llm.invoke("Email Jane Doe at jane@example.com")
    assert "{EMAIL}" in m.content and m.response_metadata.get("finish_reason") == "guardrail_intervened", m
    streamed = "".join(c.content for c in llm.stream("hello there Elon"))
    assert "{NAME}" in streamed, streamed
    return f"{m.content!r}; stream {streamed!r}"


@check
def langchain_structured_output():
    out = langchain("demo/thinker").with_structured_output(Weather, method="json_schema").invoke("Weather in Paris?")
    assert isinstance(out, Weather), out
    out = langchain("demo/nova").with_structured_output(Weather, method="json_schema").invoke("Weather in Paris?")
    assert isinstance(out, Weather), out
    return f"{out!r} (native and forced tool)"


@check
def langchain_tools_with_thinking():
    from langchain_core.messages import HumanMessage, ToolMessage
    llm = langchain("demo/thinker-tools", reasoning_effort="low").bind_tools([WEATHER_TOOL])
    question = HumanMessage("What is the weather in Paris?")
    ai = llm.invoke([question])
    assert ai.tool_calls and ai.tool_calls[0]["name"] == "get_weather", ai
    assert ai.tool_calls[0]["args"] == {"city": "Paris"}, ai
    # ChatOpenAI keeps no thinking_blocks on the AIMessage (it reads OpenAI's fields only), so
    # the second turn cannot give the signed reasoning back: Bedrock's refusal comes through as
    # a 400 naming the thinking block, not as a gateway failure.
    try:
        llm.invoke([question, ai, ToolMessage("18 C", tool_call_id=ai.tool_calls[0]["id"])])
    except openai.BadRequestError as e:
        assert "thinking" in str(e.body), e.body
        return f"tool call {ai.tool_calls[0]['args']}; 2nd turn without thinking_blocks -> {e.status_code}"
    return f"tool call {ai.tool_calls[0]['args']}; 2nd turn answered"


# --- issue 14: embeddings -------------------------------------------------------------------

@check
def embeddings_float_with_dimensions():
    r = client.embeddings.create(model="demo/titan-embed", input=["hello world", "bonjour"], dimensions=256,
                                 encoding_format="float")
    assert [d.index for d in r.data] == [0, 1], r
    assert all(len(d.embedding) == 256 for d in r.data), [len(d.embedding) for d in r.data]
    assert r.usage.prompt_tokens == 3 and r.usage.total_tokens == 3, r.usage
    assert r.model == "demo/titan-embed", r.model
    return f"2 x {len(r.data[0].embedding)} floats, {r.usage.prompt_tokens} tokens"


@check
def embeddings_base64_by_default_and_input_type():
    # The SDK asks for base64 when no encoding_format is given, and decodes it itself.
    encoded = client.embeddings.create(model="demo/cohere-embed", input="where is the fox?",
                                       extra_body={"input_type": "search_query"})
    floats = client.embeddings.create(model="demo/cohere-embed", input="where is the fox?",
                                      encoding_format="float", extra_body={"input_type": "search_query"})
    # JSON numbers are the f32s' shortest text: as f32 they are exactly the base64 ones.
    as_f32 = [struct.unpack("<f", struct.pack("<f", x))[0] for x in floats.data[0].embedding]
    assert list(encoded.data[0].embedding) == as_f32, "base64 decodes to the same f32s"
    document = client.embeddings.create(model="demo/cohere-embed", input="where is the fox?",
                                        encoding_format="float")
    assert document.data[0].embedding != floats.data[0].embedding, "input_type changes the vector"
    return f"{len(encoded.data[0].embedding)} floats, same through base64; search_query != search_document"


@check
def embeddings_refusals():
    chat_model = expect_error(openai.BadRequestError, "model_not_supported", "model",
                              lambda: client.embeddings.create(model="demo/claude-3", input="x"))
    embed_model = expect_error(openai.BadRequestError, "model_not_supported", "model",
                               lambda: client.chat.completions.create(
                                   model="demo/titan-embed", messages=[{"role": "user", "content": "x"}]))
    tokens = expect_error(openai.BadRequestError, "unsupported_value", "input",
                          lambda: client.embeddings.create(model="demo/titan-embed", input=[[101, 2023]]))
    return f"{chat_model}; {embed_model}; {tokens}"


def main():
    failed = 0
    for fn in CHECKS:
        try:
            print(f"ok   {fn.__name__}: {fn()}")
        except Exception as e:  # every failure is reported, then the run fails
            failed += 1
            print(f"FAIL {fn.__name__}: {type(e).__name__}: {e}")
            traceback.print_exc(limit=2, file=sys.stdout)
    print(f"{len(CHECKS) - failed}/{len(CHECKS)} checks passed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
