//! HTTPS mode (`SimBuilder::tls`): the simulator answers signed Converse calls over TLS with
//! the given certificate, and a client that does not trust it cannot connect.

#![allow(
    clippy::unwrap_used,
    reason = "integration tests and their helper functions fail by panicking"
)]

mod common;

use std::sync::Arc;

use bedrock_sim::{BedrockSim, Script, TlsPem};
use common::*;
use http_body_util::BodyExt;
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

/// A CA and a certificate for 127.0.0.1/localhost it signed (valid until 2125), made with
/// the `openssl` CLI as `cargo xtask bench` makes its own.
const CA: &[u8] = include_bytes!("fixtures/tls/ca.pem");
const CERT: &[u8] = include_bytes!("fixtures/tls/cert.pem");
const KEY: &[u8] = include_bytes!("fixtures/tls/key.pem");

async fn tls_sim() -> bedrock_sim::SimHandle {
    init();
    BedrockSim::builder()
        .access_key(AKID, SECRET)
        .script(CLAUDE, Script::Fixed)
        .tls(TlsPem {
            cert_chain: CERT.to_vec(),
            private_key: KEY.to_vec(),
        })
        .start()
        .await
        .unwrap()
}

fn connector(trusted: &[u8]) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(trusted) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    // Offered as the gateway's client offers them: the simulator must pick HTTP/1.1.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    TlsConnector::from(Arc::new(config))
}

#[tokio::test]
async fn answers_converse_over_tls_with_the_given_certificate() {
    let sim = tls_sim().await;
    assert!(sim.url().starts_with("https://127.0.0.1:"), "{}", sim.url());

    let tcp = TcpStream::connect(sim.addr()).await.unwrap();
    let server_name = ServerName::try_from("127.0.0.1").unwrap();
    let tls = connector(CA).connect(server_name, tcp).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let response = sender
        .send_request(hi_request(&sim.url(), CLAUDE, "converse"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(
        answer["output"]["message"]["content"].is_array(),
        "{answer}"
    );
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_certificate_cannot_connect() {
    let sim = tls_sim().await;
    let tcp = TcpStream::connect(sim.addr()).await.unwrap();
    let server_name = ServerName::try_from("localhost").unwrap();
    // Trusting the server certificate itself as a root is not trusting its CA.
    let refused = connector(CERT).connect(server_name, tcp).await;
    assert!(refused.is_err());
}
