//! The processes `cargo xtask bench` measures against: the simulator in fixed-answer mode
//! (plain HTTP, or HTTPS with `--tls <cert.pem> <key.pem>`) and the hyper floor, a do-nothing
//! pass-through proxy.

use std::convert::Infallible;
use std::process::ExitCode;

use bedrock_sim::{BedrockSim, Reply, Script, StreamStep, TlsPem};
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

fn runtime() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .ok()
}

#[expect(clippy::print_stdout, reason = "the bench reads the URL from stdout")]
fn announce(url: &str) {
    println!("{url}");
}

/// Model ids of the bench's scripts besides the fixed answer.
pub const HOLD_MODEL_ID: &str = "bench.hold";
pub const DELTAS_MODEL_ID: &str = "bench.deltas";
/// Text deltas in each `bench.deltas` stream.
pub const DELTAS_PER_STREAM: usize = 500;

/// `xtask bench-sim [--tls <cert.pem> <key.pem>]`: the fixed-answer upstream (`bench.hold`
/// streams one delta and holds; `bench.deltas` streams 500 one-word deltas as fast as it can);
/// prints its URL, runs until killed.
pub fn sim(args: &[String]) -> ExitCode {
    let tls = match args {
        [] => None,
        [flag, cert, key] if flag == "--tls" => match (std::fs::read(cert), std::fs::read(key)) {
            (Ok(cert_chain), Ok(private_key)) => Some(TlsPem {
                cert_chain,
                private_key,
            }),
            _ => {
                eprintln!("bench-sim: cannot read {cert} or {key}");
                return ExitCode::FAILURE;
            }
        },
        _ => {
            eprintln!("usage: xtask bench-sim [--tls <cert.pem> <key.pem>]");
            return ExitCode::from(2);
        }
    };
    let Some(rt) = runtime() else {
        return ExitCode::FAILURE;
    };
    rt.block_on(async {
        let hold = vec![
            StreamStep::event("messageStart", serde_json::json!({"role": "assistant"})),
            StreamStep::event(
                "contentBlockDelta",
                serde_json::json!({"contentBlockIndex": 0, "delta": {"text": "held"}}),
            ),
            StreamStep::Hold,
        ];
        let deltas =
            bedrock_sim::stream::from_reply(&Reply::text(&"tok ".repeat(DELTAS_PER_STREAM)));
        let mut builder = BedrockSim::builder()
            .verify_signatures(false)
            .record_requests(false)
            .default_script(Script::Fixed)
            .script(HOLD_MODEL_ID, Script::Stream(hold))
            .script(DELTAS_MODEL_ID, Script::Stream(deltas));
        if let Some(pem) = tls {
            builder = builder.tls(pem);
        }
        let sim = builder.start().await;
        match sim {
            Ok(sim) => {
                announce(&sim.url());
                std::future::pending::<()>().await;
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("bench-sim: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// `xtask bench-floor <upstream>`: forwards every request to the upstream on pooled
/// keep-alive connections and streams the answer back, doing nothing else.
pub fn floor(upstream: &str) -> ExitCode {
    let Some(rt) = runtime() else {
        return ExitCode::FAILURE;
    };
    let upstream = upstream.to_owned();
    rt.block_on(async move {
        let listener = match TcpListener::bind("127.0.0.1:0").await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("bench-floor: {e}");
                return ExitCode::FAILURE;
            }
        };
        let Ok(addr) = listener.local_addr() else {
            return ExitCode::FAILURE;
        };
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client: Client<HttpConnector, Incoming> =
            Client::builder(TokioExecutor::new()).build(connector);
        announce(&format!("http://{addr}"));
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let client = client.clone();
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: hyper::Request<Incoming>| {
                    let client = client.clone();
                    let upstream = upstream.clone();
                    async move { Ok::<_, Infallible>(forward(&client, &upstream, request).await) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

async fn forward(
    client: &Client<HttpConnector, Incoming>,
    upstream: &str,
    request: hyper::Request<Incoming>,
) -> hyper::Response<BoxBody<Bytes, hyper::Error>> {
    let (mut parts, body) = request.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    match format!("{upstream}{path}").parse() {
        Ok(uri) => parts.uri = uri,
        Err(_) => return bad_gateway(),
    }
    parts.headers.remove(hyper::header::HOST);
    match client
        .request(hyper::Request::from_parts(parts, body))
        .await
    {
        Ok(response) => response.map(BodyExt::boxed),
        Err(_) => bad_gateway(),
    }
}

fn bad_gateway() -> hyper::Response<BoxBody<Bytes, hyper::Error>> {
    let mut response = hyper::Response::new(Empty::new().map_err(|never| match never {}).boxed());
    *response.status_mut() = hyper::StatusCode::BAD_GATEWAY;
    response
}
