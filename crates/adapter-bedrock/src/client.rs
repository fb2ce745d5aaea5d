//! The upstream HTTP client: one pooled keep-alive client per account.
//!
//! TLS is rustls with ring, trusting the system's roots and falling back to the bundled
//! Mozilla roots where the system has none (slim containers). ALPN offers HTTP/2 and
//! HTTP/1.1. Plain `http://` is allowed because endpoint overrides point at loopback
//! simulators and plain-HTTP VPC proxies. Upstream sockets set TCP_NODELAY: requests are
//! small writes that Nagle's algorithm would hold back.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// The client type every account uses.
pub type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// How long an idle pooled connection is kept; below the idle timeouts of AWS's load
/// balancers, so the pool rarely hands out a connection the far side already closed.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(50);

/// Builds a client with the given connect timeout.
///
/// rustls picks its crypto provider from crate features: a process that enables both ring
/// and aws-lc-rs must install a default provider before this runs (this workspace enables
/// ring only).
pub fn build_client(connect_timeout: Duration) -> HttpClient {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    let tls = match HttpsConnectorBuilder::new().with_native_roots() {
        Ok(builder) => builder,
        Err(error) => {
            tracing::debug!(%error, "no usable system root certificates; using webpki roots");
            HttpsConnectorBuilder::new().with_webpki_roots()
        }
    };
    let connector = tls
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(connector)
}
