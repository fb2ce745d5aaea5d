//! Prompt accounting: the simulated token count of a request and its prompt cache.
//!
//! Tokens are words: every `text` block, `guardContent` text and tool-result text counts its
//! whitespace-separated words; a tool definition counts 1 plus the words of its description; a
//! document counts one token per 4 bytes (rounded up). Images, tool calls and reasoning
//! blocks of the history count nothing.
//!
//! Prompt caching follows Anthropic's model. The prompt is read in cache order (tools, then
//! system, then messages); each `cachePoint` marks the end of a prefix. A prefix is remembered
//! (per model id, as a SHA-256 of its blocks) for its `ttl` (`5m` default, or `1h`) on the
//! simulator's clock ([`crate::SimHandle::advance_clock`] expires it). A request reads the
//! longest remembered prefix (`cacheReadInputTokens`, refreshing it), writes the rest up to its
//! last cache point (`cacheWriteInputTokens`), and `inputTokens` counts what follows the last
//! cache point. There is no minimum cacheable length.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::documents;
use crate::request::{content, messages, system, tools, word_count};
use crate::script::CacheUsage;

/// Bedrock's limit of cache points per request.
pub(crate) const MAX_CACHE_POINTS: usize = 4;
const TTLS: [&str; 2] = ["5m", "1h"];

/// Remembered prompt prefixes and when they expire.
#[derive(Debug, Default)]
pub(crate) struct PromptCache {
    entries: Mutex<HashMap<[u8; 32], SystemTime>>,
}

/// The token count of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Accounting {
    /// `inputTokens`: tokens after the last cache point (all of them without cache points).
    pub(crate) input_tokens: u32,
    /// Cache read/write counts, when the request has cache points.
    pub(crate) cache: Option<CacheUsage>,
}

/// One `cachePoint` of a request: the prefix before it and how long it is kept.
struct CachePoint {
    prefix: [u8; 32],
    tokens_before: u32,
    ttl: Duration,
}

/// The request's prompt in cache order, counted (and, when it has cache points, hashed) as
/// it goes.
struct Walk {
    /// `None` without cache points: nothing to remember, so no serialising and hashing.
    hasher: Option<Sha256>,
    tokens: u32,
    points: Vec<CachePoint>,
}

impl Walk {
    fn new(model_id: &str, hashing: bool) -> Self {
        let hasher = hashing.then(|| {
            let mut hasher = Sha256::new();
            hasher.update(model_id.as_bytes());
            hasher
        });
        Self {
            hasher,
            tokens: 0,
            points: Vec::new(),
        }
    }

    fn block(&mut self, block: &Value, tokens: u32) {
        let Some(hasher) = &mut self.hasher else {
            self.tokens = self.tokens.saturating_add(tokens);
            return;
        };
        if let Some(point) = block.get("cachePoint") {
            let ttl = match point.get("ttl").and_then(Value::as_str) {
                Some("1h") => Duration::from_secs(3600),
                _ => Duration::from_secs(300),
            };
            self.points.push(CachePoint {
                prefix: hasher.clone().finalize().into(),
                tokens_before: self.tokens,
                ttl,
            });
        } else {
            hasher.update(block.to_string().as_bytes());
            self.tokens = self.tokens.saturating_add(tokens);
        }
    }

    fn marker(&mut self, marker: &str) {
        if let Some(hasher) = &mut self.hasher {
            hasher.update(b"\0");
            hasher.update(marker.as_bytes());
        }
    }
}

/// Every block of the prompt in cache order: tools, system, then each message's content.
fn prompt_blocks(request: &Value) -> impl Iterator<Item = &Value> {
    tools(request)
        .iter()
        .chain(system(request))
        .chain(messages(request).iter().flat_map(content))
}

fn walk(request: &Value, model_id: &str, hashing: bool) -> Walk {
    let mut walk = Walk::new(model_id, hashing);
    walk.marker("tools");
    for tool in tools(request) {
        walk.block(tool, tool_tokens(tool));
    }
    walk.marker("system");
    for block in system(request) {
        walk.block(block, block_tokens(block));
    }
    for message in messages(request) {
        walk.marker(
            message
                .get("role")
                .and_then(Value::as_str)
                .unwrap_or_default(),
        );
        for block in content(message) {
            walk.block(block, block_tokens(block));
        }
    }
    walk
}

fn tool_tokens(tool: &Value) -> u32 {
    tool.get("toolSpec").map_or(0, |spec| {
        let description = spec.get("description").and_then(Value::as_str);
        1 + description.map_or(0, word_count)
    })
}

fn block_tokens(block: &Value) -> u32 {
    if let Some(text) = crate::request::block_text(block) {
        return word_count(text);
    }
    if let Some(document) = block.get("document") {
        return u32::try_from(documents::size(document).div_ceil(4)).unwrap_or(u32::MAX);
    }
    if let Some(results) = block
        .pointer("/toolResult/content")
        .and_then(Value::as_array)
    {
        return results
            .iter()
            .map(
                |r| match (r.get("text").and_then(Value::as_str), r.get("json")) {
                    (Some(text), _) => word_count(text),
                    (None, Some(json)) => word_count(&json.to_string()),
                    (None, None) => block_tokens(r),
                },
            )
            .fold(0, u32::saturating_add);
    }
    0
}

/// The request's token count without touching the cache (for answers that never reach the
/// model, like a guardrail block).
pub(crate) fn count(request: &Value, model_id: &str) -> u32 {
    walk(request, model_id, false).tokens
}

impl PromptCache {
    /// The request's token count, reading and writing the cache as Bedrock would.
    pub(crate) fn account(&self, request: &Value, model_id: &str, now: SystemTime) -> Accounting {
        let has_cache_points = prompt_blocks(request).any(|b| b.get("cachePoint").is_some());
        let walk = walk(request, model_id, has_cache_points);
        let Some(last) = walk.points.last() else {
            return Accounting {
                input_tokens: walk.tokens,
                cache: None,
            };
        };
        let cached_until = last.tokens_before;
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|_, expires| *expires > now);
        let read = walk
            .points
            .iter()
            .rev()
            .find(|p| entries.contains_key(&p.prefix))
            .map_or(0, |p| p.tokens_before);
        for point in &walk.points {
            entries.insert(point.prefix, now + point.ttl);
        }
        Accounting {
            input_tokens: walk.tokens.saturating_sub(cached_until),
            cache: Some(CacheUsage {
                read_input_tokens: read,
                write_input_tokens: cached_until.saturating_sub(read),
            }),
        }
    }
}

/// Bedrock's cache-point checks: at most [`MAX_CACHE_POINTS`], `type` and `ttl` in their
/// enums, and never right after a reasoning block.
pub(crate) fn check_cache_points(request: &Value) -> Result<(), String> {
    let mut found = 0usize;
    let mut check = |block: &Value, at: &str, previous: Option<&Value>| {
        let Some(point) = block.get("cachePoint") else {
            return Ok(());
        };
        found += 1;
        let kind = point.get("type");
        if kind.and_then(Value::as_str) != Some("default") {
            return Err(format!("1 validation error detected: Value '{}' at '{at}.cachePoint.type' failed to satisfy constraint: Member must satisfy enum value set: [default]", kind.map_or_else(|| "null".to_owned(), display)));
        }
        if let Some(ttl) = point.get("ttl") {
            if !ttl.as_str().is_some_and(|t| TTLS.contains(&t)) {
                return Err(format!("1 validation error detected: Value '{}' at '{at}.cachePoint.ttl' failed to satisfy constraint: Member must satisfy enum value set: [5m, 1h]", display(ttl)));
            }
        }
        if previous.is_some_and(|p| p.get("reasoningContent").is_some()) {
            return Err("Cache point cannot be inserted after reasoning block. Please remove the invalid cache point and try again.".to_owned());
        }
        Ok(())
    };
    for (i, tool) in tools(request).iter().enumerate() {
        check(tool, &format!("toolConfig.tools.{}.member", i + 1), None)?;
    }
    for (i, block) in system(request).iter().enumerate() {
        check(block, &format!("system.{}.member", i + 1), None)?;
    }
    for (i, message) in messages(request).iter().enumerate() {
        let blocks = content(message);
        for (j, block) in blocks.iter().enumerate() {
            let previous = j.checked_sub(1).and_then(|p| blocks.get(p));
            let at = format!("messages.{}.member.content.{}.member", i + 1, j + 1);
            check(block, &at, previous)?;
        }
    }
    if found > MAX_CACHE_POINTS {
        return Err(format!("The model returned the following errors: A maximum of {MAX_CACHE_POINTS} blocks with cache_control may be provided. Found {found}."));
    }
    Ok(())
}

fn display(value: &Value) -> String {
    value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(question: &str) -> Value {
        json!({
            "system": [{"text": "one two three"}, {"cachePoint": {"type": "default"}}],
            "messages": [{"role": "user", "content": [{"text": question}]}],
        })
    }

    #[test]
    fn first_call_writes_then_identical_prefix_reads() {
        let cache = PromptCache::default();
        let now = SystemTime::UNIX_EPOCH;
        let first = cache.account(&request("a b"), "m", now);
        assert_eq!(first.input_tokens, 2);
        assert_eq!(
            first.cache,
            Some(CacheUsage {
                read_input_tokens: 0,
                write_input_tokens: 3
            })
        );
        let second = cache.account(&request("c"), "m", now);
        assert_eq!(second.input_tokens, 1);
        assert_eq!(
            second.cache,
            Some(CacheUsage {
                read_input_tokens: 3,
                write_input_tokens: 0
            })
        );
        // Another model has its own cache; an expired prefix is written again.
        assert_eq!(
            cache
                .account(&request("c"), "other", now)
                .cache
                .unwrap()
                .read_input_tokens,
            0
        );
        let later = now + Duration::from_secs(301);
        assert_eq!(
            cache
                .account(&request("c"), "m", later)
                .cache
                .unwrap()
                .write_input_tokens,
            3
        );
    }

    #[test]
    fn longest_known_prefix_is_read_and_the_rest_written() {
        let cache = PromptCache::default();
        let now = SystemTime::UNIX_EPOCH;
        cache.account(&request("x"), "m", now);
        let longer = json!({
            "system": [{"text": "one two three"}, {"cachePoint": {"type": "default"}}],
            "messages": [{"role": "user", "content": [{"text": "four five"}, {"cachePoint": {"type": "default", "ttl": "1h"}}, {"text": "six"}]}],
        });
        let accounting = cache.account(&longer, "m", now);
        assert_eq!(accounting.input_tokens, 1);
        assert_eq!(
            accounting.cache,
            Some(CacheUsage {
                read_input_tokens: 3,
                write_input_tokens: 2
            })
        );
    }

    #[test]
    fn no_cache_points_no_cache_counts() {
        let cache = PromptCache::default();
        let plain = json!({"messages": [{"role": "user", "content": [{"text": "a b c"}]}]});
        let accounting = cache.account(&plain, "m", SystemTime::UNIX_EPOCH);
        assert_eq!(
            accounting,
            Accounting {
                input_tokens: 3,
                cache: None
            }
        );
    }
}
