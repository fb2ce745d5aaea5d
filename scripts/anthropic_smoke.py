# Smoke test of real Anthropic clients (Anthropic Python SDK, LangChain's ChatAnthropic)
# against `gateway demo`'s /v1/messages.
# Run: cargo run --release -p gateway -- demo --listen 127.0.0.1:18080 & python3 scripts/anthropic_smoke.py
# (another address: GATEWAY_URL=http://127.0.0.1:18247 python3 scripts/anthropic_smoke.py)
# (pip install anthropic langchain-anthropic)
# Prints one line per check; exits 1 if any expectation failed.
import os
import sys
import traceback

import anthropic

BASE = os.environ.get("GATEWAY_URL", "http://127.0.0.1:18080")
KEY = "demo-key-not-secret"
# The SDK sends the key in x-api-key and appends /v1/messages to the base URL.
client = anthropic.Anthropic(base_url=BASE, api_key=KEY, max_retries=0)
WEATHER_TOOL = {"name": "get_weather", "description": "The weather in a city",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                                 "required": ["city"]}}
CHECKS = []


def check(fn):
    CHECKS.append(fn)
    return fn


@check
def message():
    r = client.messages.create(model="demo/claude-3", max_tokens=50, system="be brief",
                               messages=[{"role": "user", "content": "Hello from the SDK"}])
    assert r.type == "message" and r.role == "assistant", r
    assert r.stop_reason == "end_turn", r
    assert r.content[0].type == "text" and r.content[0].text == "You said: Hello from the SDK", r
    assert r.usage.input_tokens > 0 and r.usage.output_tokens > 0, r.usage
    assert r.id.startswith("msg_"), r.id
    return repr(r.content[0].text)


@check
def streaming():
    with client.messages.stream(model="demo/claude-3", max_tokens=50,
                                messages=[{"role": "user", "content": "one two three"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "You said: one two three", text
    assert final.stop_reason == "end_turn", final
    assert final.usage.output_tokens > 0, final.usage
    return repr(text)


@check
def tools():
    r = client.messages.create(model="demo/tools", max_tokens=200, tools=[WEATHER_TOOL],
                               tool_choice={"type": "any"},
                               messages=[{"role": "user", "content": "Weather in Paris?"}])
    assert r.stop_reason == "tool_use", r
    call = next(block for block in r.content if block.type == "tool_use")
    assert call.name == "get_weather", call
    second = client.messages.create(model="demo/tools", max_tokens=200, tools=[WEATHER_TOOL], messages=[
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": r.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18 C"}]}])
    assert second.content, second
    return f"{call.name}({call.input}) -> {second.stop_reason}"


@check
def thinking_tool_loop():
    params = dict(model="demo/thinker-tools", max_tokens=4096, tools=[WEATHER_TOOL],
                  thinking={"type": "enabled", "budget_tokens": 2048})
    question = {"role": "user", "content": "Weather in Paris?"}
    first = client.messages.create(messages=[question], **params)
    kinds = [block.type for block in first.content]
    assert kinds[0] == "thinking" and first.content[0].signature, first
    call = next(block for block in first.content if block.type == "tool_use")
    second = client.messages.create(messages=[
        question, {"role": "assistant", "content": first.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18 C, sunny"}]}],
        **params)
    text = next(block.text for block in second.content if block.type == "text")
    assert text == "get_weather returned: 18 C, sunny", second
    with client.messages.stream(messages=[question], **params) as stream:
        streamed = stream.get_final_message()
    assert [block.type for block in streamed.content] == kinds, streamed
    assert streamed.content[0].signature == first.content[0].signature, streamed
    return f"{kinds} -> {text!r}"


@check
def guardrail_intervention():
    r = client.messages.create(model="demo/blocked", max_tokens=50,
                               messages=[{"role": "user", "content": "anything"}])
    assert r.stop_reason == "guardrail_intervened", r
    return f"{r.stop_reason}: {r.content[0].text!r}"


@check
def errors():
    try:
        client.messages.create(model="demo/nope", max_tokens=10, messages=[{"role": "user", "content": "Hi"}])
        raise AssertionError("no error")
    except anthropic.NotFoundError as e:
        assert e.body["error"]["type"] == "not_found_error", e.body
    try:
        anthropic.Anthropic(base_url=BASE, api_key="wrong", max_retries=0).messages.create(
            model="demo/claude-3", max_tokens=10, messages=[{"role": "user", "content": "Hi"}])
        raise AssertionError("no error")
    except anthropic.AuthenticationError as e:
        assert e.body["error"]["type"] == "authentication_error", e.body
    return "404 not_found_error, 401 authentication_error"


@check
def count_tokens():
    r = client.messages.count_tokens(model="demo/thinker", system="be brief",
                                     messages=[{"role": "user", "content": "one two three"}])
    assert r.input_tokens > 0, r
    return r.input_tokens


@check
def langchain_chat_anthropic():
    from langchain_anthropic import ChatAnthropic

    llm = ChatAnthropic(model="demo/claude-3", base_url=BASE, api_key=KEY, max_tokens=50, max_retries=0)
    answer = llm.invoke("Hello from LangChain")
    assert answer.content == "You said: Hello from LangChain", answer
    chunks = "".join(chunk.content if isinstance(chunk.content, str) else
                     "".join(part.get("text", "") for part in chunk.content)
                     for chunk in llm.stream("streamed words"))
    assert chunks == "You said: streamed words", chunks
    tooled = ChatAnthropic(model="demo/tools", base_url=BASE, api_key=KEY, max_tokens=200, max_retries=0)
    call = tooled.bind_tools([WEATHER_TOOL], tool_choice="any").invoke("Weather in Paris?")
    assert call.tool_calls and call.tool_calls[0]["name"] == "get_weather", call
    return f"{answer.content!r}, tool {call.tool_calls[0]['name']}"


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
