# Smoke test of the OpenAI Python SDK's Responses API (`client.responses`) against `gateway demo`.
# Run: cargo run --release -p gateway -- demo --listen 127.0.0.1:18080 & python3 scripts/responses_smoke.py
# (GATEWAY_URL=http://host:port points it at another address.)
# (pip install openai pydantic)
# Prints one line per check; exits 1 if any expectation failed.
import json
import os
import sys
import traceback

import openai
from openai import OpenAI
from pydantic import BaseModel

BASE = os.environ.get("GATEWAY_URL", "http://127.0.0.1:18080") + "/v1"
KEY = "demo-key-not-secret"
client = OpenAI(base_url=BASE, api_key=KEY, max_retries=0)
WEATHER_TOOL = {"type": "function", "name": "get_weather", "description": "The weather in a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
CHECKS = []


def check(fn):
    CHECKS.append(fn)
    return fn


def items(response):
    """The output items as plain dicts, as a client gives them back in the next turn."""
    return [item.model_dump(exclude_none=True) for item in response.output]


@check
def plain():
    r = client.responses.create(model="demo/claude-3", instructions="be brief", input="Hello from the SDK",
                                max_output_tokens=50, store=False)
    assert r.status == "completed", r
    assert r.id.startswith("resp_"), r.id
    assert r.output_text == "You said: Hello from the SDK", r.output_text
    assert r.usage.input_tokens > 0 and r.usage.output_tokens > 0, r.usage
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens, r.usage
    return repr(r.output_text)


@check
def streaming_raw_events():
    stream = client.responses.create(model="demo/claude-3", input="Stream this please", stream=True)
    kinds, text, final = [], "", None
    for event in stream:
        kinds.append(event.type)
        if event.type == "response.output_text.delta":
            text += event.delta
        if event.type == "response.completed":
            final = event.response
    assert kinds[:2] == ["response.created", "response.in_progress"], kinds
    assert kinds[-1] == "response.completed", kinds
    assert final is not None and final.output_text == text, (final, text)
    return f"{len(kinds)} events, text {text!r}"


@check
def streaming_helper():
    # The SDK's stream manager rebuilds the response from the events and checks their order.
    with client.responses.stream(model="demo/claude-3", input="Stream via the helper") as stream:
        for _ in stream:
            pass
        final = stream.get_final_response()
    assert final.output_text == "You said: Stream via the helper", final.output_text
    return repr(final.output_text)


@check
def function_tool_round_trip():
    question = {"role": "user", "content": "What is the weather in Paris?"}
    r1 = client.responses.create(model="demo/thinker-tools", input=[question], tools=[WEATHER_TOOL])
    calls = [item for item in r1.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather", r1.output
    assert json.loads(calls[0].arguments) == {"city": "Paris"}, calls[0].arguments
    r2 = client.responses.create(model="demo/thinker-tools", tools=[WEATHER_TOOL], input=[
        question, *items(r1),
        {"type": "function_call_output", "call_id": calls[0].call_id, "output": "18 degrees, sunny"}])
    assert r2.status == "completed", r2
    assert "18 degrees, sunny" in r2.output_text, r2.output_text
    return repr(r2.output_text)


@check
def streamed_function_call():
    stream = client.responses.create(model="demo/thinker-tools", input="Weather in Paris?", tools=[WEATHER_TOOL],
                                     stream=True)
    arguments, final = "", None
    for event in stream:
        if event.type == "response.function_call_arguments.delta":
            arguments += event.delta
        if event.type == "response.completed":
            final = event.response
    assert json.loads(arguments) == {"city": "Paris"}, arguments
    assert any(item.type == "function_call" for item in final.output), final.output
    return arguments


@check
def reasoning_given_back():
    question = {"role": "user", "content": "What is the weather in Paris?"}
    r1 = client.responses.create(model="demo/thinker-tools", input=[question], tools=[WEATHER_TOOL],
                                 reasoning={"effort": "low", "summary": "auto"})
    reasoning = [item for item in r1.output if item.type == "reasoning"]
    assert reasoning and reasoning[0].summary and reasoning[0].encrypted_content, r1.output
    call = next(item for item in r1.output if item.type == "function_call")
    # The simulator refuses this turn unless the signed reasoning comes back intact.
    r2 = client.responses.create(model="demo/thinker-tools", tools=[WEATHER_TOOL], reasoning={"effort": "low"},
                                 input=[question, *items(r1),
                                        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}])
    assert r2.status == "completed", r2
    return repr(reasoning[0].summary[0].text[:40])


@check
def json_schema_parse():
    class Weather(BaseModel):
        city: str
        temperature: float

    r = client.responses.parse(model="demo/thinker", input="The weather in Paris, as JSON.", text_format=Weather)
    assert isinstance(r.output_parsed, Weather), r
    return repr(r.output_parsed)


@check
def guardrail_intervention():
    r = client.responses.create(model="demo/guarded", input="What are some ideas for email for Elon Musk?",
                                extra_body={"guardrailConfig": {"guardrailIdentifier": "xyz-123-768",
                                                                "guardrailVersion": "1", "trace": "enabled"}})
    assert r.status == "incomplete", r
    assert r.incomplete_details.reason == "content_filter", r.incomplete_details
    assert (r.model_extra or {}).get("guardrail_intervened") is True, r.model_extra
    assert "{NAME}" in r.output_text, r.output_text
    return repr(r.output_text[:50])


@check
def previous_response_id_refused():
    try:
        client.responses.create(model="demo/claude-3", input="hi", previous_response_id="resp_123")
    except openai.BadRequestError as e:
        error = e.body if isinstance(e.body, dict) and "code" in e.body else (e.body or {}).get("error", {})
        assert error.get("code") == "unsupported_value" and error.get("param") == "previous_response_id", e.body
        return f"400 {error.get('message')[:60]!r}"
    raise AssertionError("no BadRequestError")


def main():
    failed = 0
    for fn in CHECKS:
        try:
            print(f"ok   {fn.__name__}: {fn()}")
        except Exception:  # noqa: BLE001 - report every check
            failed += 1
            print(f"FAIL {fn.__name__}")
            traceback.print_exc()
    print(f"{len(CHECKS) - failed}/{len(CHECKS)} passed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
