//! Builds the adapters from a validated configuration and runs the server.
//!
//! `gateway serve` runs sharded ([`start_sharded`]): one OS thread per core, each with a
//! single-threaded runtime, its own listener on the shared address (SO_REUSEPORT, so the
//! kernel spreads connections) and its own upstream connection pools. A connection then lives
//! on one thread from accept to upstream response; the multi-thread runtime's cross-thread
//! wake-ups cost about a quarter of the CPU per request. Credential caches, keys and metrics
//! stay shared. [`start_on`] serves on the caller's runtime instead (tests).
//!
//! A sharded gateway also reloads ([`ShardedGateway::reload`]: the new configuration is
//! built exactly as at start, then swapped in for new requests on every shard), drains
//! ([`ShardedGateway::shutdown`]: within `shutdown_grace_ms`, then cuts) and keeps `/ready`
//! current ([`crate::readiness`]).

use std::io;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::{Arc, PoisonError, RwLock};
use std::thread;
use std::time::Duration;

use gateway_adapter_bedrock::{
    names_inference_profile, AccountCredentials, BedrockProvider, Endpoint, RetryStats,
};
use gateway_adapter_http::{
    serve, serve_live, AccountDescription, ConsoleSettings, CredentialStatusSource,
    GuardrailDescription, HttpApp, HttpSettings, LimitBackendErrors, LimitsBackendKind, LiveApp,
    Phase, Readiness, RetryCounters, TrafficSampler,
};
use gateway_adapter_redis::{BackendErrors, RedisLimits};
use gateway_core::clock::SharedClock;
use gateway_core::{
    ChatProvider, ChatService, CircuitBreakers, CredentialState, CredentialStatus,
    GuardrailCatalog, InMemoryLimits, LimitStore, ModelCatalog, ModelRouter, VirtualModelError,
};
use secrecy::ExposeSecret;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::config::{GatewayConfig, LimitsBackend};
use crate::readiness;

#[derive(Debug, Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: io::Error },
    #[error("{0}")]
    Catalog(#[from] gateway_core::router::DuplicateModel),
    #[error("{0}")]
    VirtualModel(#[from] VirtualModelError),
    #[error("{0}")]
    Guardrails(#[from] gateway_core::DuplicateGuardrailName),
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
    traffic: SampledTraffic,
}

/// The console's traffic sampler and its task, which ends with the gateway.
#[derive(Debug)]
struct SampledTraffic {
    sampler: TrafficSampler,
    task: JoinHandle<()>,
}

impl SampledTraffic {
    /// Starts sampling `app`'s traffic on the current runtime.
    fn start(app: &HttpApp) -> Self {
        let sampler = app.traffic_sampler();
        let task = tokio::spawn(sampler.clone().run());
        Self { sampler, task }
    }
}

impl Drop for SampledTraffic {
    fn drop(&mut self) {
        // The sampler never ends by itself; it must not outlive the gateway it samples.
        self.task.abort();
    }
}

impl RunningGateway {
    /// The console's traffic sampler; [`TrafficSampler::sample_now`] takes a sample at
    /// once (tests), beside the one every 5 s.
    pub fn traffic_sampler(&self) -> &TrafficSampler {
        &self.traffic.sampler
    }

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
    let (app, ..) = Box::pin(build_app(config, clock, weighted_seed)).await?;
    let traffic = SampledTraffic::start(&app);
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, Arc::new(app), async move {
        let _ = rx.await;
    }));
    Ok(RunningGateway {
        addr,
        shutdown: Some(tx),
        task,
        traffic,
    })
}

/// Builds everything `serve` builds before it listens (the catalog, the provider with each
/// account's client and credential source, the HTTP app), then drops it: `gateway check`
/// runs this, so it refuses exactly what `serve` would.
pub async fn prepare(config: &GatewayConfig, clock: SharedClock) -> Result<(), StartError> {
    build_app(config, clock, None).await.map(drop)
}

/// Everything a configuration makes before anything serves it; what start, reload and
/// `check` all run, so they accept and refuse alike.
struct Built {
    /// Shards share its catalog, circuit breakers and weighted draws.
    service: ChatService,
    /// Shards take their own clients from it; its credential caches are shared.
    provider: BedrockProvider,
    /// The HTTP side, without retry counters (the caller's).
    settings: HttpSettings,
}

/// `weighted_seed`: weighted picks from a fixed seed instead of a per-process one.
///
/// `limits`: the store the keys' limits are counted in. It belongs to the process, not to a
/// configuration: a reload keeps counting in the one made at start, so no key's windows or
/// budget start over (a change of `[limits]` backend applies at the next restart).
async fn build(
    config: &GatewayConfig,
    clock: SharedClock,
    weighted_seed: Option<u64>,
    limits: &LimitBackend,
) -> Result<Built, StartError> {
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
    let provider = BedrockProvider::new(config.accounts.clone(), clock.clone())
        .await
        .map_err(|e| StartError::Provider(e.to_string()))?
        .with_timeouts(config.timeouts);
    // One store for every shard: each service made from this one shares it.
    // Validated with the configuration: names unique.
    let guardrails = GuardrailCatalog::new(config.guardrails.iter().cloned())?;
    let mut service = ChatService::new(catalog, Arc::new(provider.clone()))
        .with_guardrails(Arc::new(guardrails))
        .with_guardrail_checker(Arc::new(provider.clone()))
        .with_embeddings(Arc::new(provider.clone()))
        .with_circuit_breakers(Arc::new(breakers))
        .with_limits(Arc::clone(&limits.store), config.limits.on_backend_error)
        .with_clock(clock.clone());
    if let Some(seed) = weighted_seed {
        service = service.with_seed(seed);
    }
    let settings = HttpSettings {
        keys: config.keys.clone(),
        max_body_bytes: config.max_body_bytes,
        max_concurrent_requests: config.max_concurrent_requests,
        max_header_bytes: config.max_header_bytes,
        max_headers: config.max_headers,
        header_read_timeout: config.header_read_timeout,
        body_read_timeout: config.body_read_timeout,
        max_connections: config.max_connections,
        max_streams_per_connection: config.max_streams_per_connection,
        limit_backend_errors: limits.errors.clone(),
        request_id_to_bedrock: config.request_id_to_bedrock,
        capture_content: config.telemetry.capture_content,
        trace_export_failures: crate::telemetry::export_failures(),
        console: console_settings(config, &provider),
        ..HttpSettings::default()
    };
    Ok(Built {
        service,
        provider,
        settings,
    })
}

/// What the console shows of `config`: its admin keys, each account as configured (auth
/// method, region, endpoint without user information) with its credential cache's status,
/// the guardrails offered for checks and the limits backend.
fn console_settings(config: &GatewayConfig, provider: &BedrockProvider) -> ConsoleSettings {
    let credentials = provider.account_credentials();
    let accounts = config
        .accounts
        .iter()
        .map(|account| AccountDescription {
            name: account.name.clone(),
            auth: account.auth.kind(),
            region: account.region.to_string(),
            endpoint: account.endpoint.as_ref().map(Endpoint::without_user_info),
            credentials: Arc::new(CredentialCacheStatus(
                credentials
                    .iter()
                    .find(|source| source.account() == account.name)
                    .cloned(),
            )),
        })
        .collect();
    ConsoleSettings {
        admin_keys: config.console.admin_keys.clone(),
        accounts,
        guardrails: config
            .guardrails
            .iter()
            .map(|guardrail| GuardrailDescription {
                name: guardrail.name.clone(),
                account: guardrail.account.clone(),
            })
            .collect(),
        limits_backend: match config.limits.backend {
            LimitsBackend::Memory => LimitsBackendKind::Memory,
            LimitsBackend::Redis { .. } => LimitsBackendKind::Redis,
        },
        inference_profiles: config
            .models
            .iter()
            .filter(|model| names_inference_profile(&model.model_id))
            .map(|model| model.model_id.clone())
            .collect(),
    }
}

/// An account's credential cache, as the console asks it.
#[derive(Debug)]
struct CredentialCacheStatus(Option<AccountCredentials>);

impl CredentialStatusSource for CredentialCacheStatus {
    fn status(&self) -> CredentialStatus {
        match &self.0 {
            Some(credentials) => credentials.status(),
            // Every configured account has credentials; this is only a fallback.
            None => CredentialStatus {
                state: CredentialState::Unknown,
                ..CredentialStatus::fixed()
            },
        }
    }
}

/// The app of a new process, plus what a shard needs to make its own service, and the
/// source of the retry counts `/metrics` shows (a reload points it at the new provider).
async fn build_app(
    config: &GatewayConfig,
    clock: SharedClock,
    weighted_seed: Option<u64>,
) -> Result<(HttpApp, Built, Arc<BedrockRetryCounters>, LimitBackend), StartError> {
    let limits = limit_backend(&config.limits.backend)?;
    let mut built = build(config, clock.clone(), weighted_seed, &limits).await?;
    let retry_counters = Arc::new(BedrockRetryCounters::new(&built.provider));
    let settings = HttpSettings {
        retry_counters: Some(Arc::clone(&retry_counters) as Arc<dyn RetryCounters>),
        ..std::mem::take(&mut built.settings)
    };
    let app = HttpApp::new(built.service.clone(), settings, clock);
    Ok((app, built, retry_counters, limits))
}

/// One app per shard from `base`: each but the last with a service of its own clients (a
/// pooled connection is driven by the runtime that opened it); the last is `base`.
fn shard_apps(base: HttpApp, built: &Built, shards: usize) -> Vec<HttpApp> {
    let mut apps = Vec::with_capacity(shards);
    for _ in 1..shards {
        let own = Arc::new(built.provider.with_own_clients());
        let service = built
            .service
            .with_provider(Arc::clone(&own) as Arc<dyn ChatProvider>)
            .with_embeddings(Arc::clone(&own) as Arc<dyn gateway_core::EmbeddingProvider>)
            .with_guardrail_checker(own);
        apps.push(base.with_service(service));
    }
    apps.push(base);
    apps
}

/// Where the keys' limits are counted, and the count of the store's failures for `/metrics`
/// (`None`: a store that cannot fail).
struct LimitBackend {
    store: Arc<dyn LimitStore>,
    errors: Option<Arc<dyn LimitBackendErrors>>,
}

impl std::fmt::Debug for LimitBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LimitBackend")
            .field("counts_errors", &self.errors.is_some())
            .finish_non_exhaustive()
    }
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

    fn failing(&self) -> bool {
        self.0.is_failing()
    }
}

/// The Bedrock provider's retry counts, handed to the HTTP adapter's `/metrics`. The counters
/// are shared by every shard's provider, so one source serves them all; a reload replaces
/// it with the new provider's (read at each scrape, so a lock costs nothing per request).
#[derive(Debug)]
struct BedrockRetryCounters(RwLock<RetryStats>);

impl BedrockRetryCounters {
    fn new(provider: &BedrockProvider) -> Self {
        Self(RwLock::new(provider.retry_stats()))
    }

    fn replace(&self, provider: &BedrockProvider) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = provider.retry_stats();
    }

    fn stats(&self) -> RetryStats {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl RetryCounters for BedrockRetryCounters {
    fn for_each_retry_count(&self, count: &mut dyn FnMut(&str, &str, u64)) {
        self.stats().for_each_retry_count(count);
    }

    fn for_each_quota_exhausted(&self, count: &mut dyn FnMut(&str, u64)) {
        self.stats().for_each_quota_exhausted(count);
    }
}

/// A gateway serving on several threads, each with its own single-threaded runtime.
#[derive(Debug)]
pub struct ShardedGateway {
    addr: SocketAddr,
    /// Shards still running.
    shards: usize,
    phase: watch::Sender<Phase>,
    /// What the shards report, in the order it happens.
    events: mpsc::UnboundedReceiver<ShardEvent>,
    threads: Vec<thread::JoinHandle<()>>,
    /// Each shard's app, in shard order; a reload replaces them all.
    live: Vec<LiveApp>,
    running: Running,
}

/// What a shard tells the gateway.
#[derive(Debug)]
enum ShardEvent {
    /// Its listener is closed: new connections are refused.
    StoppedAccepting,
    /// Its runtime, and every task on it, is gone.
    Finished(io::Result<()>),
}

/// What the gateway keeps of the configuration it started with and the last one it loaded.
#[derive(Debug)]
struct Running {
    clock: SharedClock,
    /// As started: only a restart changes them.
    listen: SocketAddr,
    worker_threads: Option<NonZeroUsize>,
    connection_limits: ConnectionLimits,
    /// From the last configuration loaded.
    shutdown_grace: Duration,
    retry_counters: Arc<BedrockRetryCounters>,
    /// The limit store made at start, which every reload keeps counting in.
    limits: LimitBackend,
    /// The accounts whose credentials `/ready` reports on.
    accounts: watch::Sender<Vec<AccountCredentials>>,
    readiness: Readiness,
    /// Once [`ShardedGateway::check_readiness`] started them.
    readiness_checks: Option<JoinHandle<()>>,
    /// On the runtime `start_sharded` was called on; aborted when the gateway is dropped.
    traffic: SampledTraffic,
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

    /// The console's traffic sampler (see [`RunningGateway::traffic_sampler`]).
    pub fn traffic_sampler(&self) -> &TrafficSampler {
        &self.running.traffic.sampler
    }

    /// Starts checking every account's credentials for `/ready`: at once, then every
    /// [`readiness::CHECK_INTERVAL`] and right after each reload, through the caches requests
    /// use (no Bedrock call). Until then `/ready` names every account as not checked yet.
    /// Call from within a runtime: the checks run on it.
    pub fn check_readiness(&mut self) {
        if self.running.readiness_checks.is_none() {
            let checks = readiness::keep_checking(
                self.running.readiness.clone(),
                self.running.accounts.subscribe(),
            );
            self.running.readiness_checks = Some(tokio::spawn(checks));
        }
    }

    /// Builds `config` exactly as [`start_sharded`] (and `gateway check`) does, then swaps it
    /// in for new requests on every shard: keys, models, virtual models, guardrails, limits,
    /// timeouts, retries, circuit breakers (closed again), credentials (fetched again, and
    /// `/ready` checks them at once). Connections stay open; requests and streams in flight
    /// finish with the configuration they started with. The listening address and the number
    /// of threads only change at a restart: a change to them is logged and left for then.
    /// When building fails, nothing changes and the error names the setting at fault.
    pub async fn reload(&mut self, config: &GatewayConfig) -> Result<(), StartError> {
        let built = build(
            config,
            self.running.clock.clone(),
            None,
            &self.running.limits,
        )
        .await?;
        let Some(last) = self.live.last() else {
            return Ok(());
        };
        let base = last
            .current()
            .reconfigured(built.service.clone(), built.settings.clone());
        let apps = shard_apps(base, &built, self.live.len());
        self.running.retry_counters.replace(&built.provider);
        for (live, app) in self.live.iter().zip(apps) {
            live.replace(app);
        }
        self.running.shutdown_grace = config.shutdown_grace;
        self.running
            .accounts
            .send_replace(built.provider.account_credentials());
        if config.listen != self.running.listen {
            tracing::warn!(
                running = %self.running.listen,
                configured = %config.listen,
                "server.listen changed: it applies at the next restart"
            );
        }
        let configured = ConnectionLimits::of(config);
        for (key, running, configured) in self.running.connection_limits.changed(&configured) {
            tracing::warn!(
                running,
                configured,
                "server.{key} changed: it applies at the next restart"
            );
        }
        if config.worker_threads != self.running.worker_threads {
            tracing::warn!(
                running = self.live.len(),
                configured = shard_count(config),
                "server.worker_threads changed: it applies at the next restart"
            );
        }
        Ok(())
    }

    /// Stops accepting on every shard at once, lets requests and streams in flight finish
    /// for up to the configuration's `shutdown_grace_ms`, then cuts what is still open (and
    /// logs how much), and returns when all shards are done, with the first error any of
    /// them had.
    pub async fn shutdown(mut self) -> io::Result<()> {
        if let Some(checks) = &self.running.readiness_checks {
            checks.abort();
        }
        let grace = self.running.shutdown_grace;
        let deadline = tokio::time::Instant::now() + grace;
        self.phase.send_replace(Phase::Draining);
        // Any app tells the process's counts.
        let counts = self.live.first().map(LiveApp::current);
        let mut accepting = self.shards;
        let mut outcome = Ok(());
        let mut cut = false;
        while self.shards > 0 {
            let event = tokio::select! {
                event = self.events.recv() => event,
                () = tokio::time::sleep_until(deadline), if !cut => {
                    cut = true;
                    if let Some(app) = &counts {
                        let streams = app.open_streams();
                        tracing::warn!(
                            grace_ms = grace.as_millis() as u64,
                            streams,
                            other_requests = app.in_flight_requests().saturating_sub(streams),
                            "shutdown grace period over: cutting the streams and requests still open"
                        );
                    }
                    self.phase.send_replace(Phase::Cut);
                    continue;
                }
            };
            match event {
                Some(ShardEvent::StoppedAccepting) => {
                    accepting = accepting.saturating_sub(1);
                    if accepting == 0 {
                        if let Some(app) = &counts {
                            tracing::info!(
                                in_flight = app.in_flight_requests(),
                                streams = app.open_streams(),
                                grace_ms = grace.as_millis() as u64,
                                "stopped accepting; letting requests in flight finish"
                            );
                        }
                    }
                }
                Some(ShardEvent::Finished(result)) => {
                    self.shards -= 1;
                    if let Err(error) = result {
                        if outcome.is_ok() {
                            outcome = Err(error);
                        }
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
        loop {
            match self.events.recv().await {
                Some(ShardEvent::Finished(result)) => {
                    self.shards -= 1;
                    return result.and(Err(io::Error::other("a server thread stopped")));
                }
                // Only after a shutdown began, which takes the gateway.
                Some(ShardEvent::StoppedAccepting) => {}
                None => return Err(io::Error::other("a server thread panicked")),
            }
        }
    }
}

/// The `[server]` keys every connection is served under: hyper's settings and the count of
/// open connections are made once at start, so only a restart changes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ConnectionLimits([(&'static str, u128); 5]);

impl ConnectionLimits {
    fn of(config: &GatewayConfig) -> Self {
        Self([
            ("max_header_bytes", config.max_header_bytes as u128),
            ("max_headers", config.max_headers as u128),
            (
                "header_read_timeout_ms",
                config.header_read_timeout.as_millis(),
            ),
            ("max_connections", config.max_connections.get() as u128),
            (
                "max_streams_per_connection",
                u128::from(config.max_streams_per_connection.get()),
            ),
        ])
    }

    /// The keys whose value differs in `other`: name, this value, the other.
    fn changed(&self, other: &Self) -> impl Iterator<Item = (&'static str, u128, u128)> + '_ {
        self.0
            .iter()
            .zip(other.0)
            .filter(|((_, running), (_, configured))| running != configured)
            .map(|((key, running), (_, configured))| (*key, *running, configured))
    }
}

/// The number of shards `config` asks for: `worker_threads`, or one per available core.
pub fn shard_count(config: &GatewayConfig) -> usize {
    config
        .worker_threads
        .or_else(|| thread::available_parallelism().ok())
        .map_or(1, NonZeroUsize::get)
}

/// Binds `config.listen` once per shard and starts [`shard_count`] server threads; `/ready`
/// says not ready until [`ShardedGateway::check_readiness`] found every account's
/// credentials usable.
///
/// Call from within a runtime (any flavour): the providers' credentials are prepared on it,
/// and the console's traffic sampler runs on it until the gateway is dropped. The shards
/// do not depend on it afterwards.
pub async fn start_sharded(
    config: &GatewayConfig,
    clock: SharedClock,
) -> Result<ShardedGateway, StartError> {
    let shards = shard_count(config);
    // Everything that can refuse the configuration runs before a port is taken.
    let (base, built, retry_counters, limits) = build_app(config, clock.clone(), None).await?;
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

    let accounts = built.provider.account_credentials();
    readiness::not_checked_yet(base.readiness(), &accounts);
    let traffic = SampledTraffic::start(&base);
    let readiness = base.readiness().clone();
    let accounts = watch::Sender::new(accounts);

    let (phase, phases) = watch::channel(Phase::Serving);
    let (report, events) = mpsc::unbounded_channel();
    let live: Vec<LiveApp> = shard_apps(base, &built, shards)
        .into_iter()
        .map(LiveApp::new)
        .collect();
    let mut threads = Vec::with_capacity(shards);
    for (index, (listener, live)) in listeners.into_iter().zip(live.iter().cloned()).enumerate() {
        let phases = phases.clone();
        let report = report.clone();
        let spawned = thread::Builder::new()
            .name(format!("gateway-{index}"))
            .spawn(move || {
                let stopped = report.clone();
                // A dropped sender (the gateway handle is gone) stops the shard too.
                let result = run_shard(listener, live, phases, move || {
                    let _ = stopped.send(ShardEvent::StoppedAccepting);
                });
                let _ = report.send(ShardEvent::Finished(result));
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
        phase,
        events,
        threads,
        live,
        running: Running {
            clock,
            listen: config.listen,
            worker_threads: config.worker_threads,
            connection_limits: ConnectionLimits::of(config),
            shutdown_grace: config.shutdown_grace,
            retry_counters,
            limits,
            accounts,
            readiness,
            readiness_checks: None,
            traffic,
        },
    })
}

/// One shard: a single-threaded runtime serving `listener` through the gateway's phases.
fn run_shard(
    listener: std::net::TcpListener,
    live: LiveApp,
    phases: watch::Receiver<Phase>,
    stopped_accepting: impl FnOnce(),
) -> io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(async move {
        let listener = TcpListener::from_std(listener)?;
        serve_live(listener, live, phases, stopped_accepting).await
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
