//! Running a server: accepting connections, replacing the app while it serves, stopping.
//!
//! - [`LiveApp`]: the app new requests get. A reload builds a whole new [`HttpApp`] and
//!   stores it; each request reads the current one once (an atomic load, no lock) and keeps it
//!   to its end, so a request or stream never sees half of one configuration and half of the
//!   next, and nothing in flight is dropped.
//! - [`Phase`]: what the host tells a server loop. `Draining` closes the listener at once
//!   (new connections are refused), closes idle keep-alive connections and lets requests and
//!   streams in flight finish; `Cut` closes whatever is still open.
//!
//! Limits before work: a connection past `max_connections` is closed as soon as it is
//! accepted; hyper refuses heads over `max_header_bytes` or `max_headers` (431), malformed
//! heads (400) and heads slower than `header_read_timeout` (closed) before any handler
//! runs. Those refusals never reach [`HttpApp`], so each is logged here: one line with a
//! generated request id, the peer and the reason (the answer hyper writes cannot carry the
//! id; docs/hardening.md).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::request_id::RequestId;
use crate::request_log;
use crate::server::HttpApp;

/// The app answering new requests; [`LiveApp::replace`] swaps in another. Clones share it.
#[derive(Debug, Clone)]
pub struct LiveApp(Arc<ArcSwap<HttpApp>>);

impl LiveApp {
    pub fn new(app: HttpApp) -> Self {
        Self::from(Arc::new(app))
    }

    /// The app a request starting now gets.
    pub fn current(&self) -> Arc<HttpApp> {
        self.0.load_full()
    }

    /// Requests that start from now on get `app`; those in flight finish with the app they
    /// started with, which is dropped after the last of them.
    pub fn replace(&self, app: HttpApp) {
        self.0.store(Arc::new(app));
    }
}

impl From<Arc<HttpApp>> for LiveApp {
    fn from(app: Arc<HttpApp>) -> Self {
        Self(Arc::new(ArcSwap::new(app)))
    }
}

/// Where a server loop is in its life. Phases only move forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Serving,
    /// The listener is closed; requests and streams in flight go on to their end.
    Draining,
    /// Every connection still open is closed, mid-stream or not.
    Cut,
}

/// Serves `app` on `listener` until `shutdown` completes, then stops accepting and waits for
/// in-flight requests (including open streams) to finish, however long they take.
///
/// HTTP/1.1 with keep-alive and HTTP/2 without TLS (h2c, prior knowledge) on the same port.
pub async fn serve(
    listener: TcpListener,
    app: Arc<HttpApp>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (phase, phases) = watch::channel(Phase::Serving);
    let server = serve_live(listener, LiveApp::from(app), phases, || {});
    tokio::pin!(server, shutdown);
    tokio::select! {
        result = &mut server => return result,
        () = &mut shutdown => {}
    }
    // `phase` lives until the drain is over, so it is never cut.
    phase.send_replace(Phase::Draining);
    server.await
}

/// Serves the current app of `live` on `listener` (read per request, so a reload applies to
/// new requests on open connections too) through the phases the host sends on `phase`.
/// `stopped_accepting` runs once the listener is closed. Returns when every connection is
/// closed: drained, or cut.
///
/// A dropped `phase` sender counts as `Draining`, never as `Cut`.
pub async fn serve_live(
    listener: TcpListener,
    live: LiveApp,
    mut phase: watch::Receiver<Phase>,
    stopped_accepting: impl FnOnce(),
) -> std::io::Result<()> {
    // The connection settings are the process's; a reload does not change them.
    let connections = live.current().connection_settings().clone();
    let header_read_timeout = connections.header_read_timeout;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .max_buf_size(connections.max_header_bytes)
        .max_headers(connections.max_headers)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(connections.max_header_list_size())
        .max_concurrent_streams(connections.max_streams_per_connection.get());
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            () = draining(&mut phase) => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_error(error).await;
                    continue;
                }
            },
        };
        // Closed before a byte is read: under a flood this must cost as little as possible,
        // so it is counted (`gateway_connections_refused_total`), not logged line by line.
        let Some(open) = connections.limit.try_open() else {
            drop(stream);
            tracing::debug!(%peer, "max_connections open: connection closed");
            continue;
        };
        // Small SSE chunks must leave at once, not wait for Nagle.
        let _ = stream.set_nodelay(true);
        let watcher = graceful.watcher();
        let builder = Arc::clone(&builder);
        let live = live.clone();
        let mut phase = phase.clone();
        tokio::spawn(async move {
            // Counted open until the task ends, however it ends.
            let _open = open;
            tokio::select! {
                first = first_bytes(&stream, header_read_timeout) => match first {
                    FirstBytes::Arrived => {}
                    FirstBytes::Closed => return,
                    FirstBytes::TimedOut => {
                        refused_before_handler(peer, "header_read_timeout", None, "no bytes");
                        return;
                    }
                },
                // A connection that has not sent a request yet has nothing to finish.
                () = draining(&mut phase) => return,
            }
            // hyper's header timeout also closes a keep-alive connection idle after its last
            // answer; only one that never got a whole head was refused.
            let served = Arc::new(AtomicBool::new(false));
            let served_by = Arc::clone(&served);
            let service = service_fn(move |request| {
                served_by.store(true, Ordering::Relaxed);
                let app = live.current();
                // Boxed: hyper keeps the service's future inline in the connection's task,
                // so its ~6.5 KiB would stay allocated for every open connection, idle or
                // streaming; boxed, it lives only while the request is being answered.
                async move { Ok::<_, Infallible>(Box::pin(app.handle(request)).await) }
            });
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                result = watcher.watch(connection) => {
                    if let Err(error) = result {
                        connection_error(peer, &*error, served.load(Ordering::Relaxed));
                    }
                }
                // Dropping the connection closes its socket and whatever stream it carried.
                () = cut(&mut phase) => {}
            }
        });
    }
    drop(listener);
    stopped_accepting();
    let drained = graceful.shutdown();
    tokio::pin!(drained);
    tokio::select! {
        () = &mut drained => {}
        // Each connection task sees the cut too and ends, which ends the drain.
        () = cut(&mut phase) => drained.await,
    }
    Ok(())
}

/// Completes once the host drains (or cuts), or went away.
async fn draining(phase: &mut watch::Receiver<Phase>) {
    let _ = phase.wait_for(|phase| *phase >= Phase::Draining).await;
}

/// Completes when the host cuts; never when it went away without cutting.
async fn cut(phase: &mut watch::Receiver<Phase>) {
    let gone = phase.wait_for(|phase| *phase == Phase::Cut).await.is_err();
    if gone {
        std::future::pending::<()>().await;
    }
}

enum FirstBytes {
    Arrived,
    /// Closed (or failed) before sending anything: a port probe, nothing to log.
    Closed,
    TimedOut,
}

/// hyper's header timeout starts only once it knows the protocol, which takes the first
/// bytes; a client that connects and sends nothing would hold the socket forever.
async fn first_bytes(stream: &TcpStream, timeout: Duration) -> FirstBytes {
    let mut byte = [0u8; 1];
    match tokio::time::timeout(timeout, stream.peek(&mut byte)).await {
        Ok(Ok(n)) if n > 0 => FirstBytes::Arrived,
        Ok(_) => FirstBytes::Closed,
        Err(_) => FirstBytes::TimedOut,
    }
}

/// Logs what hyper refused on its own, before any handler ran; other connection errors
/// (clients going away, HTTP/2 resets, a keep-alive connection left idle past the header
/// timeout after `served` a request) are the clients' business and stay at `debug`.
fn connection_error(
    peer: SocketAddr,
    error: &(dyn std::error::Error + Send + Sync + 'static),
    served: bool,
) {
    let Some(hyper_error) = error.downcast_ref::<hyper::Error>() else {
        tracing::debug!(%peer, %error, "connection ended with an error");
        return;
    };
    // hyper's texts are fixed strings: nothing the client sent is repeated.
    let detail = hyper_error.to_string();
    if hyper_error.is_parse_too_large() {
        // 431 for the head (414 for a request line alone over the limit).
        refused_before_handler(peer, "head_too_large", Some(431), &detail);
    } else if hyper_error.is_parse() {
        refused_before_handler(peer, "malformed_head", Some(400), &detail);
    } else if hyper_error.is_timeout() && !served {
        refused_before_handler(peer, "header_read_timeout", None, &detail);
    } else {
        tracing::debug!(%peer, error = %hyper_error, "connection ended with an error");
    }
}

/// The one line for a request refused before a handler could see it. `status`: what hyper
/// answered, `None` when it closed without an answer.
fn refused_before_handler(
    peer: SocketAddr,
    reason: &'static str,
    status: Option<u16>,
    detail: &str,
) {
    tracing::info!(
        target: request_log::TARGET,
        request_id = %RequestId::generate(),
        %peer,
        reason,
        status,
        detail,
        "refused before the handler"
    );
}

async fn accept_error(error: std::io::Error) {
    use std::io::ErrorKind;
    // A connection that died before accept is that client's problem; anything else (such as
    // running out of file descriptors) would spin the loop, so back off briefly.
    if !matches!(
        error.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::Interrupted
    ) {
        tracing::warn!(%error, "accept failed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
