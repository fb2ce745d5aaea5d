//! Builds the adapters from a validated configuration and runs the server.
//!
//! `gateway serve` runs sharded ([`start_sharded`]): one OS thread per core, each with a
//! single-threaded runtime, its own listener on the shared address (SO_REUSEPORT, so the
//! kernel spreads connections) and its own upstream connection pools. A connection then lives
//! on one thread from accept to upstream response; the multi-thread runtime's cross-thread
//! wake-ups cost about a quarter of the CPU per request. Credential caches, keys and metrics
//! stay shared. [`start_on`] serves on the caller's runtime instead (tests).

use std::io;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::thread;

use gateway_adapter_bedrock::{BedrockProvider, RetryStats};
use gateway_adapter_http::{serve, HttpApp, HttpSettings, LimitBackendErrors, RetryCounters};
use gateway_adapter_redis::{BackendErrors, RedisLimits};
use gateway_core::clock::SharedClock;
use gateway_core::{
    ChatService, CircuitBreakers, InMemoryLimits, LimitStore, ModelCatalog, ModelRouter,
    VirtualModelError,
};
use secrecy::ExposeSecret;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::config::{GatewayConfig, LimitsBackend};

#[derive(Debug, Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: io::Error },
    #[error("{0}")]
    Catalog(#[from] gateway_core::router::DuplicateModel),
    #[error("{0}")]
    VirtualModel(#[from] VirtualModelError),
    #[error("{0}")]
    Provider(String),
    #[error("{0}")]
    Limits(String),
    #[error("cannot start server thread {index}: {source}")]
    Thread { index: usize, source: io::Error },
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

/// Starts serving on an already bound listener (tests bind 127.0.0.1:0), on the caller's
/// runtime.
pub async fn start_on(
    config: &GatewayConfig,
    listener: TcpListener,
    clock: SharedClock,
) -> Result<RunningGateway, StartError> {
    start_on_seeded(config, listener, clock, None).await
}

/// [`start_on`], with weighted virtual models picking their targets from `weighted_seed`
/// when given, so a test sees the same picks on every run.
pub async fn start_on_seeded(
    config: &GatewayConfig,
    listener: TcpListener,
    clock: SharedClock,
    weighted_seed: Option<u64>,
) -> Result<RunningGateway, StartError> {
    let addr = listener.local_addr().map_err(|source| StartError::Listen {
        addr: config.listen,
        source,
    })?;
    // Boxed: building the app is a large future, awaited once per start.
    let (app, _, _) = Box::pin(build_app(config, clock, weighted_seed)).await?;
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, Arc::new(app), async move {
        let _ = rx.await;
    }));
    Ok(RunningGateway {
        addr,
        shutdown: Some(tx),
        task,
    })
}

/// Builds everything `serve` builds before it listens (the catalog, the provider with each
/// account's client and credential source, the HTTP app), then drops it: `gateway check`
/// runs this, so it refuses exactly what `serve` would.
pub async fn prepare(config: &GatewayConfig, clock: SharedClock) -> Result<(), StartError> {
    build_app(config, clock, None).await.map(drop)
}

/// The app, plus what a shard needs to make its own service: the service to share the
/// catalog, circuit breakers and weighted draws of, and a provider to take clients from.
/// `weighted_seed`: weighted picks from a fixed seed instead of a per-process one.
async fn build_app(
    config: &GatewayConfig,
    clock: SharedClock,
    weighted_seed: Option<u64>,
) -> Result<(HttpApp, ChatService, BedrockProvider), StartError> {
    let catalog = Arc::new(
        ModelCatalog::new(config.models.iter().cloned())?
            .with_virtual_models(config.virtual_models.iter().cloned())?,
    );
    // The breaker settings are the account's; each of its models gets a breaker of its own.
    let breakers = CircuitBreakers::new(
        clock.clone(),
        catalog.models().iter().filter_map(|route| {
            let settings = config.circuit_breakers.get(&route.account)?;
            Some((route.public_name.clone(), *settings))
        }),
    );
    let limits = limit_backend(&config.limits.backend)?;
    let provider = BedrockProvider::new(config.accounts.clone(), clock.clone())
        .await
        .map_err(|e| StartError::Provider(e.to_string()))?
        .with_timeouts(config.timeouts);
    // One store for every shard: each service made from this one shares it.
    let mut service = ChatService::new(catalog, Arc::new(provider.clone()))
        .with_circuit_breakers(Arc::new(breakers))
        .with_limits(limits.store, config.limits.on_backend_error)
        .with_clock(clock.clone());
    if let Some(seed) = weighted_seed {
        service = service.with_seed(seed);
    }
    let settings = HttpSettings {
        keys: config.keys.clone(),
        max_body_bytes: config.max_body_bytes,
        max_concurrent_requests: config.max_concurrent_requests,
        retry_counters: Some(Arc::new(BedrockRetryCounters(provider.retry_stats()))),
        limit_backend_errors: limits.errors,
        ..HttpSettings::default()
    };
    Ok((
        HttpApp::new(service.clone(), settings, clock),
        service,
        provider,
    ))
}

/// Where the keys' limits are counted, and the count of the store's failures for `/metrics`
/// (`None`: a store that cannot fail).
struct LimitBackend {
    store: Arc<dyn LimitStore>,
    errors: Option<Arc<dyn LimitBackendErrors>>,
}

/// The configured limit store.
///
/// The Redis store's connection is driven by the runtime it is built on, the one `serve`
/// builds the app on and keeps running until it stops serving; `check` builds it too, which
/// parses its URL and connects to nothing.
fn limit_backend(backend: &LimitsBackend) -> Result<LimitBackend, StartError> {
    match backend {
        LimitsBackend::Memory => Ok(LimitBackend {
            store: Arc::new(InMemoryLimits::new()),
            errors: None,
        }),
        LimitsBackend::Redis { url, timeout } => {
            let store = RedisLimits::new(url.expose_secret(), *timeout)
                .map_err(|error| StartError::Limits(format!("limits.redis_url: {error}")))?;
            Ok(LimitBackend {
                errors: Some(Arc::new(RedisBackendErrors(store.backend_errors()))),
                store: Arc::new(store),
            })
        }
    }
}

/// The Redis store's failed calls, admissions and records alike, handed to the HTTP adapter's
/// `/metrics` as `gateway_limits_backend_errors_total`. The only count of them: the service
/// leaves a failed admission to `on_backend_error` and counts nothing.
#[derive(Debug)]
struct RedisBackendErrors(BackendErrors);

impl LimitBackendErrors for RedisBackendErrors {
    fn errors(&self) -> u64 {
        self.0.count()
    }
}

/// The Bedrock provider's retry counts, handed to the HTTP adapter's `/metrics`. The counters
/// are shared by every shard's provider, so one source serves them all.
#[derive(Debug)]
struct BedrockRetryCounters(RetryStats);

impl RetryCounters for BedrockRetryCounters {
    fn for_each_retry_count(&self, count: &mut dyn FnMut(&str, &str, u64)) {
        self.0.for_each_retry_count(count);
    }

    fn for_each_quota_exhausted(&self, count: &mut dyn FnMut(&str, u64)) {
        self.0.for_each_quota_exhausted(count);
    }
}

/// A gateway serving on several threads, each with its own single-threaded runtime.
#[derive(Debug)]
pub struct ShardedGateway {
    addr: SocketAddr,
    shards: usize,
    stop: watch::Sender<bool>,
    /// Each shard's outcome, sent once its runtime (and every task on it) is gone.
    finished: mpsc::UnboundedReceiver<io::Result<()>>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl ShardedGateway {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many threads serve.
    pub fn shards(&self) -> usize {
        self.shards
    }

    /// Stops accepting on every shard, lets in-flight requests finish, and returns when all
    /// shards are done, with the first error any of them had.
    pub async fn shutdown(mut self) -> io::Result<()> {
        self.stop.send_replace(true);
        let mut outcome = Ok(());
        for _ in 0..self.shards {
            match self.finished.recv().await {
                Some(Ok(())) => {}
                Some(Err(error)) => {
                    if outcome.is_ok() {
                        outcome = Err(error);
                    }
                }
                // A shard thread that panicked never reports; joining tells.
                None => break,
            }
        }
        for handle in self.threads.drain(..) {
            // Every thread has left its runtime by now, so this does not block for long.
            if handle.join().is_err() && outcome.is_ok() {
                outcome = Err(io::Error::other("a server thread panicked"));
            }
        }
        outcome
    }

    /// Runs until a shard stops by itself (they do not, short of a start-up failure); the
    /// others keep serving until [`ShardedGateway::shutdown`].
    pub async fn wait(&mut self) -> io::Result<()> {
        match self.finished.recv().await {
            Some(result) => {
                self.shards -= 1;
                result.and(Err(io::Error::other("a server thread stopped")))
            }
            None => Err(io::Error::other("a server thread panicked")),
        }
    }
}

/// The number of shards `config` asks for: `worker_threads`, or one per available core.
pub fn shard_count(config: &GatewayConfig) -> usize {
    config
        .worker_threads
        .or_else(|| thread::available_parallelism().ok())
        .map_or(1, NonZeroUsize::get)
}

/// Binds `config.listen` once per shard and starts [`shard_count`] server threads.
///
/// Call from within a runtime (any flavour): the providers' credentials are prepared on it.
/// The shards do not depend on it afterwards.
pub async fn start_sharded(
    config: &GatewayConfig,
    clock: SharedClock,
) -> Result<ShardedGateway, StartError> {
    let shards = shard_count(config);
    // Everything that can refuse the configuration runs before a port is taken.
    let (base, service, provider) = build_app(config, clock, None).await?;
    let listen_error = |source| StartError::Listen {
        addr: config.listen,
        source,
    };
    let first = bind_shared(config.listen).map_err(listen_error)?;
    // With port 0 the first bind picks the port; the other shards must join that one.
    let addr = first.local_addr().map_err(listen_error)?;
    let mut listeners = vec![first];
    for _ in 1..shards {
        listeners.push(bind_shared(addr).map_err(listen_error)?);
    }

    let (stop, stopped) = watch::channel(false);
    let (report, finished) = mpsc::unbounded_channel();
    let mut apps = Vec::with_capacity(shards);
    for _ in 1..shards {
        let shard_service = service.with_provider(Arc::new(provider.with_own_clients()));
        apps.push(base.with_service(shard_service));
    }
    // The base app's clients are used by no other shard.
    apps.push(base);
    let mut threads = Vec::with_capacity(shards);
    for (index, (listener, app)) in listeners.into_iter().zip(apps).enumerate() {
        let app = Arc::new(app);
        let mut stopped = stopped.clone();
        let report = report.clone();
        let spawned = thread::Builder::new()
            .name(format!("gateway-{index}"))
            .spawn(move || {
                let result = run_shard(listener, app, async move {
                    // A dropped sender (the gateway handle is gone) stops the shard too.
                    let _ = stopped.wait_for(|stop| *stop).await;
                });
                let _ = report.send(result);
            });
        match spawned {
            Ok(handle) => threads.push(handle),
            Err(source) => {
                // The threads already started see the sender dropped and stop.
                return Err(StartError::Thread { index, source });
            }
        }
    }
    Ok(ShardedGateway {
        addr,
        shards,
        stop,
        finished,
        threads,
    })
}

/// One shard: a single-threaded runtime serving `listener` until `stop`.
fn run_shard(
    listener: std::net::TcpListener,
    app: Arc<HttpApp>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(async move {
        let listener = TcpListener::from_std(listener)?;
        serve(listener, app, stop).await
    });
    // Dropping the runtime ends what is left on it (a credential refresh in progress gives
    // way to the next caller on another shard) before the shard reports.
    drop(runtime);
    result
}

/// A non-blocking listener on `addr` that other sockets of this process may bind too.
fn bind_shared(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // As tokio's own bind does: a restart must not wait out TIME_WAIT.
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}
