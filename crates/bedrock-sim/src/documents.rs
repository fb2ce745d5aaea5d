//! `document` blocks: Bedrock's checks (format, name, unique names, bytes, a text block
//! alongside) and what the simulated model says about the documents it read.

use std::collections::HashSet;

use aws_smithy_types::base64;
use serde_json::Value;

use crate::request::{content, messages};

/// botocore's `DocumentFormat` enum.
pub(crate) const FORMATS: [&str; 9] = [
    "pdf", "csv", "doc", "docx", "xls", "xlsx", "html", "txt", "md",
];

const NAME_RULE: &str = "The document file name can only contain alphanumeric characters, whitespace characters, hyphens, parentheses, and square brackets. The name can't contain more than one consecutive whitespace character. Check that the file name conforms to these restrictions and retry your request.";

/// Whether `name` is a valid document name: 1 to 200 characters, ASCII letters and digits,
/// single spaces, hyphens, parentheses and square brackets (the documented set).
pub(crate) fn valid_name(name: &str) -> bool {
    (1..=200).contains(&name.chars().count())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '-' | '(' | ')' | '[' | ']'))
        && !name.contains("  ")
}

/// Every document block of the request, with its location for error messages: those in
/// message content and those inside tool results.
fn documents(request: &Value) -> Vec<(usize, usize, &Value)> {
    let mut out = Vec::new();
    for (i, message) in messages(request).iter().enumerate() {
        for (j, block) in content(message).iter().enumerate() {
            if let Some(document) = block.get("document") {
                out.push((i, j, document));
            }
            let nested = block
                .pointer("/toolResult/content")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|b| b.get("document"));
            out.extend(nested.map(|document| (i, j, document)));
        }
    }
    out
}

/// Bedrock's document checks.
pub(crate) fn check(request: &Value) -> Result<(), String> {
    let mut names = HashSet::new();
    for (i, j, document) in documents(request) {
        let at = format!(
            "messages.{}.member.content.{}.member.document",
            i + 1,
            j + 1
        );
        if let Some(format) = document.get("format") {
            if !format.as_str().is_some_and(|f| FORMATS.contains(&f)) {
                return Err(format!("1 validation error detected: Value '{}' at '{at}.format' failed to satisfy constraint: Member must satisfy enum value set: [{}]", display(format), FORMATS.join(", ")));
            }
        }
        let Some(name) = document.get("name").and_then(Value::as_str) else {
            return Err(format!("1 validation error detected: Value null at '{at}.name' failed to satisfy constraint: Member must not be null"));
        };
        if !valid_name(name) {
            return Err(NAME_RULE.to_owned());
        }
        if !names.insert(name) {
            return Err("Messages can't contain duplicate document names. Rename the document and retry your request.".to_owned());
        }
        let Some(source) = document.get("source") else {
            return Err(format!("1 validation error detected: Value null at '{at}.source' failed to satisfy constraint: Member must not be null"));
        };
        if let Some(bytes) = source.get("bytes") {
            match bytes.as_str().map(base64::decode) {
                Some(Ok(decoded)) if !decoded.is_empty() => {}
                Some(Ok(_)) => {
                    return Err(format!("1 validation error detected: Value at '{at}.source.bytes' failed to satisfy constraint: Member must have length greater than or equal to 1"));
                }
                _ => {
                    return Err(format!("1 validation error detected: Value at '{at}.source.bytes' failed to satisfy constraint: Member must be valid Base64-encoded binary data"));
                }
            }
        }
    }
    for (i, message) in messages(request).iter().enumerate() {
        let blocks = content(message);
        let has_document = blocks.iter().any(|b| b.get("document").is_some());
        let has_text = blocks
            .iter()
            .any(|b| b.get("text").is_some() || b.get("guardContent").is_some());
        if has_document && !has_text {
            return Err(format!(
                "A text block must be included when using documents. Add a text block to messages.{i}.content and try again."
            ));
        }
    }
    Ok(())
}

fn display(value: &Value) -> String {
    value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_owned)
}

/// `Read document <name> (<format>, N bytes).` for each document of `message`: what the
/// simulated model says first when it was given documents.
pub(crate) fn describe(message: &Value) -> Vec<String> {
    content(message)
        .iter()
        .filter_map(|b| b.get("document"))
        .map(|document| {
            let name = document
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let format = document
                .get("format")
                .and_then(Value::as_str)
                .unwrap_or("unknown format");
            format!("Read document {name} ({format}, {} bytes).", size(document))
        })
        .collect()
}

/// Decoded size of a document's bytes (or of its inline text).
pub(crate) fn size(document: &Value) -> usize {
    let source = document.get("source");
    if let Some(bytes) = source.and_then(|s| s.get("bytes")).and_then(Value::as_str) {
        return base64::decode(bytes).map_or(0, |b| b.len());
    }
    source
        .and_then(|s| s.get("text"))
        .and_then(Value::as_str)
        .map_or(0, str::len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_documented_pattern() {
        for ok in ["report", "Q3 report (final) [v2]", "a-b", &"x".repeat(200)] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in [
            "",
            "report.pdf",
            "a  b",
            "a_b",
            "résumé",
            "tab\there",
            &"x".repeat(201),
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
