# Smoke test of real clients (OpenAI Python SDK, LangChain) against `gateway demo`.
# Run: cargo run --release -p gateway -- demo --listen 127.0.0.1:18080 & python3 scripts/client_smoke.py
# (pip install openai langchain-openai)
from openai import OpenAI
import openai
base = "http://127.0.0.1:18080/v1"
client = OpenAI(base_url=base, api_key="demo-key-not-secret")
r = client.chat.completions.create(model="demo/claude-3", messages=[{"role":"system","content":"be brief"},{"role": "user", "content": "Hello from the SDK"}], max_tokens=50)
print("1", r.choices[0].finish_reason, repr(r.choices[0].message.content), r.usage)
r = client.chat.completions.create(model="demo/guarded", messages=[{"role": "user", "content": "What are some ideas for email for Elon Musk?"}],
    extra_body={"guardrailConfig": {"guardrailIdentifier": "xyz-123-768", "guardrailVersion": "1", "trace": "enabled"}})
print("2", r.choices[0].finish_reason, r.choices[0].message.content, getattr(r, "guardrail_trace", None) is not None)
s = client.chat.completions.create(model="demo/claude-3", messages=[{"role": "user", "content": "stream me"}], stream=True, stream_options={"include_usage": True})
parts=[]; fr=None; usage=None
for c in s:
    if c.choices:
        parts.append(c.choices[0].delta.content or "")
        fr = c.choices[0].finish_reason or fr
    if c.usage: usage=c.usage
print("3", "".join(parts), fr, usage)
r = client.chat.completions.create(model="demo/tools", messages=[{"role": "user", "content": "weather?"}], tools=[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}])
print("4", r.choices[0].finish_reason, r.choices[0].message.tool_calls)
try:
    client.chat.completions.create(model="demo/throttled", messages=[{"role": "user", "content": "x"}], max_retries=0) if False else OpenAI(base_url=base, api_key="demo-key-not-secret", max_retries=0).chat.completions.create(model="demo/throttled", messages=[{"role": "user", "content": "x"}])
except openai.RateLimitError as e:
    print("5 RateLimitError", e.status_code, e.body)
try:
    OpenAI(base_url=base, api_key="wrong-key-xx", max_retries=0).chat.completions.create(model="demo/claude-3", messages=[{"role": "user", "content": "x"}])
except openai.AuthenticationError as e:
    print("6 AuthenticationError", e.status_code)
try:
    client.chat.completions.create(model="demo/nope", messages=[{"role": "user", "content": "x"}])
except openai.NotFoundError as e:
    print("7 NotFound", e.body)
print("8", [m.id for m in client.models.list()])
r = client.chat.completions.create(model="demo/blocked", messages=[{"role": "user", "content": "anything"}])
print("9", r.choices[0].finish_reason, r.choices[0].message.content)
try:
    client.chat.completions.create(model="demo/blocked", messages=[{"role": "user", "content": "x"}], extra_body={"guardrailConfig": {"guardrailIdentifier": "other", "guardrailVersion": "1"}})
except openai.BadRequestError as e:
    print("10 BadRequest", e.body)

from langchain_openai import ChatOpenAI
llm = ChatOpenAI(model="demo/guarded", base_url=base, api_key="demo-key-not-secret", extra_body={"guardrailConfig": {"guardrailIdentifier": "xyz-123-768", "guardrailVersion": "1"}})
m = llm.invoke("Email Jane Doe at jane@example.com")
print("11 langchain", m.content, m.response_metadata.get("finish_reason"))
print("12 langchain stream", "".join(c.content for c in llm.stream("hello there Elon")))
