//! The simulated guardrail: reading `guardrailConfig`, selective evaluation (`guardContent`),
//! masking PII in an answer ([`crate::Script::GuardrailMask`]), the word filter
//! ([`crate::Script::GuardrailBlockWords`]) and the trace shapes Bedrock returns.

use serde_json::{json, Value};

use crate::request::{block_text, content, guarded_text, messages, system};

/// Names the simulated PII filter recognises (matched as whole words, case-sensitive).
pub const NAMES: [&str; 4] = ["Elon", "Musk", "Jane", "Doe"];

/// The request's `guardrailConfig`.
#[derive(Debug)]
pub(crate) struct GuardrailConfig {
    pub(crate) id: String,
    pub(crate) trace: bool,
}

pub(crate) fn config(body: &Value) -> Option<GuardrailConfig> {
    let cfg = body.get("guardrailConfig")?;
    let id = cfg
        .get("guardrailIdentifier")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let trace = matches!(
        cfg.get("trace").and_then(Value::as_str),
        Some("enabled" | "enabled_full")
    );
    Some(GuardrailConfig { id, trace })
}

/// Whether the request marks what the guardrail evaluates: any `guardContent` block in the
/// system prompt or the messages. Then Bedrock evaluates only those blocks.
pub(crate) fn selective(request: &Value) -> bool {
    all_blocks(request).any(|b| guarded_text(b).is_some())
}

fn all_blocks(request: &Value) -> impl Iterator<Item = &Value> {
    system(request)
        .iter()
        .chain(messages(request).iter().flat_map(content))
}

/// The input texts the guardrail evaluates: the `guardContent` texts when the request is
/// [`selective`], else every text of system and messages.
pub(crate) fn evaluated_input(request: &Value) -> Vec<&str> {
    let selective = selective(request);
    all_blocks(request)
        .filter_map(|b| {
            if selective {
                guarded_text(b)
            } else {
                block_text(b)
            }
        })
        .collect()
}

/// The `words` found in `texts` (case-insensitive whole words, surrounding punctuation
/// ignored), as written in `words`, each once.
pub(crate) fn blocked_words<'w>(texts: &[&str], words: &'w [String]) -> Vec<&'w str> {
    words
        .iter()
        .filter(|word| {
            texts.iter().any(|text| {
                text.split_whitespace()
                    .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()))
                    .any(|w| w.eq_ignore_ascii_case(word))
            })
        })
        .map(String::as_str)
        .collect()
}

/// `trace` for input blocked by the word filter.
pub(crate) fn word_trace(guardrail_id: &str, matches: &[&str]) -> Value {
    let words: Vec<Value> = matches
        .iter()
        .map(|m| json!({ "match": m, "action": "BLOCKED", "detected": true }))
        .collect();
    json!({ "guardrail": { "inputAssessment": {
        guardrail_id: { "wordPolicy": { "customWords": words } }
    } } })
}

/// A PII entity found by [`mask`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct PiiMatch {
    pub(crate) text: String,
    pub(crate) kind: &'static str,
}

/// Replaces e-mail addresses with `{EMAIL}` and [`NAMES`] with `{NAME}`, keeping whitespace
/// and surrounding punctuation.
pub(crate) fn mask(text: &str) -> (String, Vec<PiiMatch>) {
    let mut out = String::with_capacity(text.len());
    let mut found = Vec::new();
    for piece in text.split_inclusive(char::is_whitespace) {
        let word = piece.trim_end_matches(char::is_whitespace);
        let space = &piece[word.len()..];
        let core = word.trim_matches(|c: char| !c.is_alphanumeric());
        let start = word.find(core).unwrap_or(0);
        let (prefix, suffix) = (&word[..start], &word[start + core.len()..]);
        let kind = if is_email(core) {
            Some(("{EMAIL}", "EMAIL"))
        } else if NAMES.contains(&core) {
            Some(("{NAME}", "NAME"))
        } else {
            None
        };
        match kind {
            Some((placeholder, kind)) if !core.is_empty() => {
                out.push_str(prefix);
                out.push_str(placeholder);
                out.push_str(suffix);
                found.push(PiiMatch {
                    text: core.to_owned(),
                    kind,
                });
            }
            _ => out.push_str(word),
        }
        out.push_str(space);
    }
    (out, found)
}

fn is_email(word: &str) -> bool {
    let Some((local, domain)) = word.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.split('.').count() >= 2
        && domain.split('.').all(|part| !part.is_empty())
}

/// `trace` for masked output.
pub(crate) fn output_trace(guardrail_id: &str, matches: &[PiiMatch]) -> Value {
    let entities: Vec<Value> = matches
        .iter()
        .map(|m| json!({ "match": m.text, "type": m.kind, "action": "ANONYMIZED", "detected": true }))
        .collect();
    json!({ "guardrail": { "outputAssessments": {
        guardrail_id: [ { "sensitiveInformationPolicy": { "piiEntities": entities } } ]
    } } })
}

/// `trace` for a blocked input.
pub(crate) fn input_trace(guardrail_id: &str) -> Value {
    json!({ "guardrail": { "inputAssessment": {
        guardrail_id: { "contentPolicy": { "filters": [ {
            "type": "VIOLENCE",
            "confidence": "HIGH",
            "filterStrength": "HIGH",
            "action": "BLOCKED",
            "detected": true,
        } ] } }
    } } })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_emails_and_names() {
        let (masked, found) = mask("Mail jane.doe@example.com, ask Elon Musk (or Jane).");
        assert_eq!(masked, "Mail {EMAIL}, ask {NAME} {NAME} (or {NAME}).");
        let kinds: Vec<&str> = found.iter().map(|m| m.kind).collect();
        assert_eq!(kinds, ["EMAIL", "NAME", "NAME", "NAME"]);
        assert_eq!(found[0].text, "jane.doe@example.com");
    }

    #[test]
    fn blocked_words_are_whole_words_case_insensitive() {
        let words = vec!["Secret".to_owned(), "plan".to_owned()];
        assert_eq!(blocked_words(&["the SECRET, ok"], &words), ["Secret"]);
        assert!(blocked_words(&["secrets planned"], &words).is_empty());
    }

    #[test]
    fn leaves_clean_text_alone() {
        let (masked, found) = mask("No PII here @ all, a@b  ok");
        assert_eq!(masked, "No PII here @ all, a@b  ok");
        assert!(found.is_empty());
    }
}
