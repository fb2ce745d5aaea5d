//! Documents: the answer names what was read; each of Bedrock's document refusals.

#![allow(
    clippy::unwrap_used,
    reason = "integration tests and their helper functions fail by panicking"
)]

mod common;

use bedrock_sim::Script;
use common::*;
use serde_json::{json, Value};

/// "%PDF-1.4 hello" in base64 (14 bytes).
const PDF_BASE64: &str = "JVBERi0xLjQgaGVsbG8=";

fn document(name: &str, format: &str, bytes: &str) -> Value {
    json!({ "document": { "format": format, "name": name, "source": { "bytes": bytes } } })
}

fn with_documents(documents: Vec<Value>) -> Value {
    let mut content = documents;
    content.push(json!({ "text": "summarise" }));
    json!({ "messages": [ { "role": "user", "content": content } ] })
}

#[tokio::test]
async fn the_answer_names_each_document_read() {
    let sim = sim_with(Script::Echo).await;
    let body = with_documents(vec![
        document("Q3 report (final) [v2]", "pdf", PDF_BASE64),
        document("notes", "txt", "aGk="),
    ]);
    let value = answer(&sim, &body).await;
    assert_eq!(
        value["output"]["message"]["content"][0]["text"],
        "Read document Q3 report (final) [v2] (pdf, 14 bytes). Read document notes (txt, 2 bytes). You said: summarise"
    );
    // One token per 4 bytes of document (4 + 1) plus one word of text.
    assert_eq!(value["usage"]["inputTokens"], 6);
}

#[tokio::test]
async fn invalid_documents_are_refused() {
    let sim = sim_with(Script::Echo).await;
    let name_rule = "The document file name can only contain alphanumeric characters, whitespace characters, hyphens, parentheses, and square brackets. The name can't contain more than one consecutive whitespace character.";
    for name in [
        "report.pdf",
        "two  spaces",
        "under_score",
        "",
        &"x".repeat(201),
    ] {
        refused(
            &sim,
            &with_documents(vec![document(name, "pdf", PDF_BASE64)]),
            name_rule,
        )
        .await;
    }
    refused(
        &sim,
        &with_documents(vec![document("report", "rtf", PDF_BASE64)]),
        "Value 'rtf' at 'messages.1.member.content.1.member.document.format' failed to satisfy constraint: Member must satisfy enum value set: [pdf, csv, doc, docx, xls, xlsx, html, txt, md]",
    )
    .await;
    refused(
        &sim,
        &with_documents(vec![
            document("report", "pdf", PDF_BASE64),
            document("report", "txt", "aGk="),
        ]),
        "Messages can't contain duplicate document names. Rename the document and retry your request.",
    )
    .await;
    refused(
        &sim,
        &with_documents(vec![document("report", "pdf", "not base64!")]),
        "'messages.1.member.content.1.member.document.source.bytes' failed to satisfy constraint: Member must be valid Base64-encoded binary data",
    )
    .await;
    refused(
        &sim,
        &with_documents(vec![document("report", "pdf", "")]),
        "Member must have length greater than or equal to 1",
    )
    .await;
    let alone = json!({ "messages": [ { "role": "user", "content": [document("report", "pdf", PDF_BASE64)] } ] });
    refused(
        &sim,
        &alone,
        "A text block must be included when using documents.",
    )
    .await;
}

#[tokio::test]
async fn document_names_are_unique_across_the_whole_conversation() {
    let sim = sim_with(Script::Echo).await;
    let body = json!({ "messages": [
        { "role": "user", "content": [document("report", "pdf", PDF_BASE64), { "text": "read" }] },
        { "role": "assistant", "content": [{ "text": "done" }] },
        { "role": "user", "content": [document("report", "pdf", PDF_BASE64), { "text": "again" }] },
    ] });
    refused(&sim, &body, "duplicate document names").await;
}
