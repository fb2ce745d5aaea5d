//! The HTTP server: accept loop (TCP_NODELAY, one task per connection, HTTP/1.1 keep-alive or
//! HTTP/2 prior knowledge via hyper-util's auto builder, optionally inside TLS), routing,
//! graceful shutdown, and connections dropped on purpose ([`crate::Fault::Close`],
//! [`crate::Fault::Reset`]).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio_rustls::TlsAcceptor;

use crate::body::SimBody;
use crate::state::{shutdown_signal, Shared};
use crate::{apply_guardrail, bedrock, sts, Operation};

pub(crate) async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
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
                    tls.clone(),
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

/// How a handler ends its connection instead of answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Abort {
    /// Close the connection (FIN).
    #[error("bedrock-sim closes the connection without answering")]
    Close,
    /// Reset the connection (RST).
    #[error("bedrock-sim resets the connection without answering")]
    Reset,
}

/// Shared between a connection's task, its socket and its request handlers: a handler that
/// aborts asks the task to drop the connection at once, and says whether with a reset.
#[derive(Debug, Default)]
struct ConnectionControl {
    drop_now: Notify,
    reset: AtomicBool,
}

impl ConnectionControl {
    fn abort(&self, abort: Abort) {
        if abort == Abort::Reset {
            self.reset.store(true, Ordering::SeqCst);
        }
        self.drop_now.notify_one();
    }

    fn resetting(&self) -> bool {
        self.reset.load(Ordering::SeqCst)
    }
}

/// The connection's socket: closing it after [`Abort::Reset`] sends a TCP RST (linger 0, and
/// no orderly shutdown first) instead of a FIN.
struct Socket {
    stream: TcpStream,
    control: Arc<ConnectionControl>,
}

impl AsyncRead for Socket {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.control.resetting() {
            // A FIN now would let the client see an orderly end before the reset.
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        if self.control.resetting() {
            // Linger 0 makes the close below an abortive one (RST); it cannot block.
            if let Err(e) = self.stream.set_zero_linger() {
                tracing::debug!(error = %e, "bedrock-sim could not arm a connection reset");
            }
        }
    }
}

async fn serve_connection(
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "bedrock-sim could not set TCP_NODELAY");
    }
    let control = Arc::new(ConnectionControl::default());
    let socket = Socket {
        stream,
        control: Arc::clone(&control),
    };
    match tls {
        None => serve_http(socket, control, shared, shutdown).await,
        Some(acceptor) => match acceptor.accept(socket).await {
            Ok(tls_stream) => serve_http(tls_stream, control, shared, shutdown).await,
            Err(e) => tracing::debug!(error = %e, "bedrock-sim TLS handshake failed"),
        },
    }
}

async fn serve_http<S>(
    socket: S,
    control: Arc<ConnectionControl>,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let builder = auto::Builder::new(TokioExecutor::new());
    let service = {
        let control = Arc::clone(&control);
        service_fn(move |req| {
            let shared = Arc::clone(&shared);
            let control = Arc::clone(&control);
            async move {
                let answer = handle(shared, req).await;
                if let Err(abort) = answer {
                    control.abort(abort);
                }
                answer
            }
        })
    };
    let conn = builder.serve_connection(TokioIo::new(socket), service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "bedrock-sim connection ended with an error");
            }
        }
        // Dropping the connection drops the socket (closed, or reset if asked) without
        // writing anything more.
        () = control.drop_now.notified() => {}
        () = shutdown_signal(shutdown) => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

enum Route<'a> {
    Sts,
    Bedrock(Operation, &'a str),
    CountTokens(&'a str),
    /// ApplyGuardrail: the guardrail identifier and version labels, still encoded.
    ApplyGuardrail(&'a str, &'a str),
    Unknown,
}

fn route<'a>(method: &Method, path: &'a str) -> Route<'a> {
    if method != Method::POST {
        return Route::Unknown;
    }
    if path == "/" {
        return Route::Sts;
    }
    if let Some(rest) = path.strip_prefix("/guardrail/") {
        return match rest.split('/').collect::<Vec<_>>()[..] {
            [identifier, "version", version, "apply"]
                if !identifier.is_empty() && !version.is_empty() =>
            {
                Route::ApplyGuardrail(identifier, version)
            }
            _ => Route::Unknown,
        };
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
        "count-tokens" => Route::CountTokens(label),
        "invoke" => Route::Bedrock(Operation::InvokeModel, label),
        _ => Route::Unknown,
    }
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<SimBody>, Abort> {
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
            bedrock::handle(&shared, op, label, &parts, body, started).await?
        }
        Route::CountTokens(label) => bedrock::count_tokens(&shared, label, &parts, body),
        Route::ApplyGuardrail(identifier, version) => {
            apply_guardrail::handle(&shared, identifier, version, &parts, &body)?
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
        assert!(matches!(
            route(&Method::POST, "/guardrail/arn%3Ag%2Fx/version/DRAFT/apply"),
            Route::ApplyGuardrail("arn%3Ag%2Fx", "DRAFT")
        ));
        for (method, path) in [
            (Method::GET, "/guardrail/g/version/1/apply"),
            (Method::POST, "/guardrail//version/1/apply"),
            (Method::POST, "/guardrail/g/version/1/apply/more"),
            (Method::POST, "/guardrail/g/1/apply"),
            (Method::GET, "/model/a/converse"),
            (Method::POST, "/model/a/invoke-with-response-stream"),
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
