//! Every recorded ConverseStream body in `fixtures/bedrock/converse-stream/`, served by the
//! simulator byte for byte, through the real gateway: the exact SSE text the client gets.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "helpers outside #[test] functions fail the test by panicking"
)]

mod common;

use bedrock_sim::{Script, StreamStep};
use common::*;
use http_body_util::BodyExt;
use serde_json::json;

/// The chunk id and `created` differ per run; everything else must be exact.
fn stable(sse: &str) -> String {
    let mut out = String::with_capacity(sse.len());
    for line in sse.split_inclusive('\n') {
        let mut line = line.to_owned();
        if let Some(start) = line.find("\"id\":\"chatcmpl-") {
            let end = line[start + 6..]
                .find('"')
                .map_or(line.len(), |e| start + 6 + e + 1);
            line.replace_range(start..end, "\"id\":\"[id]\"");
        }
        if let Some(start) = line.find("\"created\":") {
            let digits = line[start + 10..]
                .find(|c: char| !c.is_ascii_digit())
                .map_or(line.len(), |e| start + 10 + e);
            line.replace_range(start..digits, "\"created\":[created]");
        }
        out.push_str(&line);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_capture_becomes_the_expected_sse_text() {
    let gw = TestGateway::start(sim()).await;
    insta::glob!(
        "../../../fixtures/bedrock/converse-stream",
        "*.bin",
        |path| {
            let capture = std::fs::read(path).unwrap();
            gw.sim.set_script(
                CLAUDE,
                Script::Stream(vec![StreamStep::RawBytes(capture.into())]),
            );
            let sse = tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(async {
                    let response = gw
                        .stream(&json!({
                            "model": "sim/claude-3",
                            "stream": true,
                            "stream_options": {"include_usage": true},
                            "messages": user("hi"),
                        }))
                        .await;
                    assert_eq!(response.status(), 200);
                    let body = response.into_body().collect().await.unwrap().to_bytes();
                    String::from_utf8(body.to_vec()).unwrap()
                })
            });
            insta::assert_snapshot!(stable(&sse));
        }
    );
}
