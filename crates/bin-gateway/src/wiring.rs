//! Builds the adapters from a validated configuration and runs the server.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use gateway_adapter_bedrock::provider::{BedrockProvider, Timeouts};
use gateway_adapter_http::{serve, GatewayKey, HttpApp, HttpSettings};
use gateway_core::clock::SharedClock;
use gateway_core::{ChatService, ModelCatalog};
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::GatewayConfig;

#[derive(Debug, Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: io::Error },
    #[error("{0}")]
    Catalog(#[from] gateway_core::router::DuplicateModel),
    #[error("{0}")]
    Provider(String),
}

/// A gateway serving on a socket.
#[derive(Debug)]
pub struct RunningGateway {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<io::Result<()>>,
}

impl RunningGateway {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, lets in-flight requests finish, and returns when the server is done.
    pub async fn shutdown(mut self) -> io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.wait().await
    }

    /// Runs until the server stops by itself (it does not, short of an accept error).
    pub async fn wait(&mut self) -> io::Result<()> {
        match (&mut self.task).await {
            Ok(result) => result,
            Err(join) => Err(io::Error::other(join)),
        }
    }
}

/// Binds `config.listen` and starts serving.
pub async fn start(
    config: &GatewayConfig,
    clock: SharedClock,
) -> Result<RunningGateway, StartError> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Listen {
            addr: config.listen,
            source,
        })?;
    start_on(config, listener, clock).await
}

/// Starts serving on an already bound listener (tests bind 127.0.0.1:0).
pub async fn start_on(
    config: &GatewayConfig,
    listener: TcpListener,
    clock: SharedClock,
) -> Result<RunningGateway, StartError> {
    let addr = listener.local_addr().map_err(|source| StartError::Listen {
        addr: config.listen,
        source,
    })?;
    let catalog = ModelCatalog::new(config.models.iter().cloned())?;
    let provider = BedrockProvider::new(config.accounts.clone(), clock.clone())
        .await
        .map_err(|e| StartError::Provider(e.to_string()))?
        .with_timeouts(Timeouts {
            connect: config.timeouts.connect,
            first_byte: config.timeouts.first_byte,
            idle_stream: config.timeouts.stream_idle,
        });
    let service = ChatService::new(Arc::new(catalog), Arc::new(provider));
    let settings = HttpSettings {
        keys: config
            .keys
            .iter()
            .map(|k| GatewayKey {
                name: k.name.clone(),
                key: k.key.clone(),
                finish_reason_style: k.finish_reason_style,
            })
            .collect(),
        max_body_bytes: config.max_body_bytes,
        ..HttpSettings::default()
    };
    let app = Arc::new(HttpApp::new(service, settings, clock));
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, app, async move {
        let _ = rx.await;
    }));
    Ok(RunningGateway {
        addr,
        shutdown: Some(tx),
        task,
    })
}
