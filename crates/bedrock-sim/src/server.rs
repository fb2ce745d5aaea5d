//! The HTTP server: accept loop (TCP_NODELAY, one task per connection, HTTP/1.1 keep-alive or
//! HTTP/2 prior knowledge via hyper-util's auto builder), routing and graceful shutdown.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::body::SimBody;
use crate::state::{shutdown_signal, Shared};
use crate::{bedrock, sts, Operation};

pub(crate) async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown_signal(shutdown.clone()) => return,
        };
        match accepted {
            Ok((stream, _peer)) => {
                tokio::spawn(serve_connection(
                    stream,
                    Arc::clone(&shared),
                    shutdown.clone(),
                ));
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "bedrock-sim accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>, shutdown: watch::Receiver<bool>) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "bedrock-sim could not set TCP_NODELAY");
    }
    let builder = auto::Builder::new(TokioExecutor::new());
    let service = service_fn(move |req| handle(Arc::clone(&shared), req));
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "bedrock-sim connection ended with an error");
            }
        }
        () = shutdown_signal(shutdown) => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

enum Route<'a> {
    Sts,
    Bedrock(Operation, &'a str),
    Unknown,
}

fn route<'a>(method: &Method, path: &'a str) -> Route<'a> {
    if method != Method::POST {
        return Route::Unknown;
    }
    if path == "/" {
        return Route::Sts;
    }
    let Some((label, op)) = path
        .strip_prefix("/model/")
        .and_then(|rest| rest.split_once('/'))
    else {
        return Route::Unknown;
    };
    if label.is_empty() {
        return Route::Unknown;
    }
    match op {
        "converse" => Route::Bedrock(Operation::Converse, label),
        "converse-stream" => Route::Bedrock(Operation::ConverseStream, label),
        _ => Route::Unknown,
    }
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<SimBody>, Infallible> {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    // Always read the whole request body (also for unknown routes and the fixed answer).
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            tracing::debug!(error = %e, "bedrock-sim could not read a request body");
            let mut response = Response::new(SimBody::empty());
            *response.status_mut() = StatusCode::BAD_REQUEST;
            return Ok(response);
        }
    };
    let response = match route(&parts.method, parts.uri.path()) {
        Route::Sts => sts::handle(&shared, &parts, &body),
        Route::Bedrock(op, label) => {
            bedrock::handle(&shared, op, label, &parts, body, started).await
        }
        Route::Unknown => bedrock::unknown_operation(),
    };
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert!(matches!(route(&Method::POST, "/"), Route::Sts));
        assert!(matches!(
            route(&Method::POST, "/model/a%3A0/converse"),
            Route::Bedrock(Operation::Converse, "a%3A0")
        ));
        assert!(matches!(
            route(&Method::POST, "/model/arn%3Ax%2Fy/converse-stream"),
            Route::Bedrock(Operation::ConverseStream, "arn%3Ax%2Fy")
        ));
        for (method, path) in [
            (Method::GET, "/model/a/converse"),
            (Method::POST, "/model/a/invoke"),
            (Method::POST, "/model/a/b/converse"),
            (Method::POST, "/model//converse"),
            (Method::POST, "/foo"),
        ] {
            assert!(
                matches!(route(&method, path), Route::Unknown),
                "{method} {path}"
            );
        }
    }
}
