//! The cache in front of a refreshing credential source.
//!
//! The cache is our own rather than `aws-smithy-runtime`'s `LazyCache`: `LazyCache` can only
//! be driven from inside an SDK orchestrator (it needs `RuntimeComponents` and a
//! `ConfigBag`), it makes callers wait once credentials enter the refresh buffer, and it
//! cannot drop one identity when Bedrock says it expired. Ours serves the cached credentials
//! until shortly before expiry while one background task renews them, lets exactly one fetch
//! run at a time per account, shares a fetch's outcome with everyone who waited for it, and
//! never keeps a failure: the next request after a failed fetch tries again.

use std::error::Error as StdError;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::error::CredentialsError as AwsCredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_smithy_types::error::ErrorMetadata;
use gateway_core::clock::SharedClock;
use gateway_core::{CredentialState, CredentialStatus, ProviderError};

/// Renew at most this long before expiry (with 1 h STS sessions, renewal starts at 55 min).
const MAX_REFRESH_BUFFER: Duration = Duration::from_secs(5 * 60);
/// Credentials without an expiry (keys from the environment or a profile) are re-read this
/// often, so a rotated credentials file is picked up without a restart; `aws-config`'s own
/// cache uses the same period.
const NO_EXPIRY_REFRESH: Duration = Duration::from_secs(15 * 60);
/// Stop handing out credentials this long before they expire, so a request signed with them
/// still reaches Bedrock in time.
const MAX_EXPIRY_MARGIN: Duration = Duration::from_secs(10);
/// After a failed background renewal, wait at most this long before the next attempt, so an
/// STS outage is not hit by every request in the refresh window.
const MAX_BACKGROUND_RETRY: Duration = Duration::from_secs(5);

/// A provider behind a single-flight cache.
pub(super) struct RefreshingCache {
    account: Arc<str>,
    /// What the provider does, for messages: "assume role `arn:...`".
    pub(super) what: String,
    // Never printed: `AssumeRoleProvider`'s Debug shows its request, external id included.
    provider: SharedCredentialsProvider,
    /// A value that must not appear in error messages (the external id).
    redact: Option<String>,
    clock: SharedClock,
    /// Held only for reads and swaps, never across an await.
    state: Mutex<CacheState>,
    /// Held for the whole of a fetch: at most one provider call per account at a time.
    flight: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct CacheState {
    current: Option<Cached>,
    /// Bumped by every finished fetch, so callers that waited for one can take its outcome
    /// instead of calling STS again.
    generation: u64,
    /// The error of the latest fetch if it failed; only callers that waited for that very
    /// fetch see it, later ones try again.
    last_error: Option<ProviderError>,
    background_running: bool,
    background_not_before: Option<SystemTime>,
    /// When the last fetch that succeeded ended, for operators (the console).
    last_refresh: Option<SystemTime>,
}

#[derive(Clone)]
struct Cached {
    credentials: Credentials,
    /// From here on a background task renews them.
    refresh_at: SystemTime,
    /// After this, callers wait for new ones. `None`: no expiry.
    usable_until: Option<SystemTime>,
    /// Pause after a failed background renewal.
    retry_after_failure: Duration,
}

impl Cached {
    fn new(credentials: Credentials, now: SystemTime) -> Self {
        match credentials.expiry() {
            Some(expiry) => {
                let lifetime = expiry.duration_since(now).unwrap_or(Duration::ZERO);
                let buffer = MAX_REFRESH_BUFFER.min(lifetime / 10);
                let margin = MAX_EXPIRY_MARGIN.min(buffer / 2);
                Self {
                    refresh_at: expiry.checked_sub(buffer).unwrap_or(expiry),
                    usable_until: Some(expiry.checked_sub(margin).unwrap_or(expiry)),
                    retry_after_failure: MAX_BACKGROUND_RETRY.min(buffer / 4),
                    credentials,
                }
            }
            None => Self {
                refresh_at: now + NO_EXPIRY_REFRESH,
                usable_until: None,
                retry_after_failure: MAX_BACKGROUND_RETRY,
                credentials,
            },
        }
    }

    fn usable_at(&self, now: SystemTime) -> bool {
        self.usable_until.is_none_or(|until| now < until)
    }
}

impl RefreshingCache {
    pub(super) fn new(
        account: Arc<str>,
        what: String,
        provider: SharedCredentialsProvider,
        redact: Option<String>,
        clock: SharedClock,
    ) -> Self {
        Self {
            account,
            what,
            provider,
            redact: redact.filter(|value| !value.is_empty()),
            clock,
            state: Mutex::default(),
            flight: tokio::sync::Mutex::new(()),
        }
    }

    fn state(&self) -> MutexGuard<'_, CacheState> {
        // The state is consistent after every statement, so a panic elsewhere cannot leave it
        // half-written.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) async fn get(self: &Arc<Self>) -> Result<Credentials, ProviderError> {
        let now = self.clock.now();
        let seen = {
            let mut state = self.state();
            if let Some(cached) = &state.current {
                if now < cached.refresh_at {
                    return Ok(cached.credentials.clone());
                }
                if cached.usable_at(now) {
                    let credentials = cached.credentials.clone();
                    let start = !state.background_running
                        && state.background_not_before.is_none_or(|at| now >= at);
                    if start {
                        state.background_running = true;
                        drop(state);
                        self.spawn_background_refresh();
                    }
                    return Ok(credentials);
                }
            }
            state.generation
        };
        self.fetch_or_join(seen).await
    }

    /// Waits for the fetch in flight if there is one and takes its outcome; otherwise fetches.
    async fn fetch_or_join(&self, seen: u64) -> Result<Credentials, ProviderError> {
        let _flight = self.flight.lock().await;
        {
            let state = self.state();
            if state.generation != seen {
                let now = self.clock.now();
                if let Some(cached) = state.current.as_ref().filter(|c| c.usable_at(now)) {
                    return Ok(cached.credentials.clone());
                }
                if let Some(error) = &state.last_error {
                    return Err(error.clone());
                }
            }
        }
        self.fetch().await
    }

    /// Calls the provider and stores the outcome. Callers hold `flight`. If the caller is
    /// cancelled mid-fetch nothing is stored and the next caller fetches.
    async fn fetch(&self) -> Result<Credentials, ProviderError> {
        let result = self.provider.provide_credentials().await;
        let now = self.clock.now();
        let mut state = self.state();
        state.generation = state.generation.wrapping_add(1);
        match result {
            Ok(credentials) => {
                let cached = Cached::new(credentials.clone(), now);
                if !cached.usable_at(now) {
                    tracing::warn!(
                        account = %self.account,
                        "{} returned credentials that are already expired; is the clock right?",
                        self.what
                    );
                }
                tracing::debug!(
                    account = %self.account,
                    expires = ?credentials.expiry(),
                    "obtained AWS credentials"
                );
                state.current = Some(cached);
                state.last_refresh = Some(now);
                state.last_error = None;
                state.background_not_before = None;
                Ok(credentials)
            }
            Err(error) => {
                let error = ProviderError::Credentials {
                    account: self.account.to_string(),
                    message: format!(
                        "{}: {}",
                        self.what,
                        describe_failure(&error, self.redact.as_deref())
                    ),
                };
                tracing::warn!(account = %self.account, %error, "could not obtain AWS credentials");
                state.last_error = Some(error.clone());
                Err(error)
            }
        }
    }

    /// Renews in the background while callers keep using the still-valid credentials.
    fn spawn_background_refresh(self: &Arc<Self>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime to run it on: callers fetch themselves once the credentials expire.
            self.state().background_running = false;
            return;
        };
        let guard = BackgroundGuard(Arc::clone(self));
        runtime.spawn(async move {
            let cache = &guard.0;
            let _flight = cache.flight.lock().await;
            let now = cache.clock.now();
            let due = cache
                .state()
                .current
                .as_ref()
                .is_none_or(|cached| now >= cached.refresh_at);
            // Someone else may have fetched while we waited for the flight.
            if due && cache.fetch().await.is_err() {
                let mut state = cache.state();
                let pause = state
                    .current
                    .as_ref()
                    .map_or(MAX_BACKGROUND_RETRY, |cached| cached.retry_after_failure);
                state.background_not_before = Some(cache.clock.now() + pause);
            }
        });
    }

    /// What the cache holds now, for operators; never a secret. Reads only: it fetches
    /// nothing and starts no renewal.
    pub(super) fn status(&self) -> CredentialStatus {
        let now = self.clock.now();
        let state = self.state();
        let last_error = state.last_error.as_ref().map(ToString::to_string);
        let (kind, valid_until) = match &state.current {
            Some(cached) if cached.usable_at(now) => {
                let renewing = state.background_running || now >= cached.refresh_at;
                let kind = if renewing {
                    CredentialState::Refreshing
                } else {
                    CredentialState::Valid
                };
                (kind, cached.credentials.expiry())
            }
            _ if last_error.is_some() => (CredentialState::Error, None),
            Some(cached) => (CredentialState::Expired, cached.credentials.expiry()),
            None => (CredentialState::Unknown, None),
        };
        CredentialStatus {
            state: kind,
            valid_until,
            last_refresh: state.last_refresh,
            last_error,
        }
    }

    /// Drops `stale` if they are still the cached credentials. True if a retry may help:
    /// newer credentials are (or will be) fetched. Long-term keys from the chain are not
    /// dropped, since fetching them again yields the same keys.
    pub(super) fn invalidate(&self, stale: &Credentials) -> bool {
        let mut state = self.state();
        let is_current = state
            .current
            .as_ref()
            .is_some_and(|cached| cached.credentials.access_key_id() == stale.access_key_id());
        if !is_current {
            return true;
        }
        let temporary = stale.expiry().is_some() || stale.session_token().is_some();
        if temporary {
            tracing::debug!(account = %self.account, "dropping credentials Bedrock called expired");
            state.current = None;
        }
        temporary
    }
}

/// Clears `background_running` however the task ends, cancelled with its runtime included.
struct BackgroundGuard(Arc<RefreshingCache>);

impl Drop for BackgroundGuard {
    fn drop(&mut self) {
        self.0.state().background_running = false;
    }
}

/// A one-line cause: the service's own code and message when a service (STS) answered, else
/// the chain of error messages (connection refused, no credentials in the chain, ...).
/// Secrets never reach these errors; the external id could (a service may echo its input), so
/// it is masked.
fn describe_failure(error: &AwsCredentialsError, redact: Option<&str>) -> String {
    let chain = || error_chain(error);
    let answered = chain().find_map(|e| e.downcast_ref::<ErrorMetadata>());
    let message = match answered {
        Some(meta) => {
            let code = meta.code().unwrap_or("UnknownError");
            match meta.message() {
                Some(message) => format!("{code}: {message}"),
                None => code.to_owned(),
            }
        }
        None => {
            let mut parts: Vec<String> = Vec::new();
            for text in chain().map(ToString::to_string) {
                if !text.is_empty() && parts.last() != Some(&text) {
                    parts.push(text);
                }
            }
            parts.join(": ")
        }
    };
    match redact {
        Some(secret) => message.replace(secret, "<redacted>"),
        None => message,
    }
}

fn error_chain<'a>(
    error: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(error), |&current| current.source())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::UNIX_EPOCH;

    use aws_credential_types::provider::future;
    use gateway_core::clock::Clock;
    use tokio::sync::watch;

    use std::fmt;

    use super::*;
    use crate::credentials::{AccountCredentials, RequestAuth, Source};

    /// A clock tests move by hand.
    #[derive(Clone)]
    struct ManualClock(Arc<Mutex<SystemTime>>);

    impl ManualClock {
        fn at(seconds: u64) -> Self {
            Self(Arc::new(Mutex::new(
                UNIX_EPOCH + Duration::from_secs(seconds),
            )))
        }
        fn advance(&self, by: Duration) {
            *self.0.lock().unwrap() += by;
        }
    }

    impl Clock for ManualClock {
        fn now(&self) -> SystemTime {
            *self.0.lock().unwrap()
        }
    }

    /// Hands out `AKID<n>` valid for `ttl` from the clock's now, or fails while `fail` is set.
    /// Each call waits for `gate` to open so tests can hold a fetch in flight.
    struct FakeProvider {
        clock: ManualClock,
        ttl: Option<Duration>,
        calls: AtomicUsize,
        fail: std::sync::atomic::AtomicBool,
        done: watch::Sender<usize>,
        gate: watch::Receiver<bool>,
    }

    impl fmt::Debug for FakeProvider {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("FakeProvider")
        }
    }

    impl FakeProvider {
        async fn provide(&self) -> aws_credential_types::provider::Result {
            let mut gate = self.gate.clone();
            gate.wait_for(|open| *open).await.unwrap();
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            let result = if self.fail.load(Ordering::SeqCst) {
                Err(AwsCredentialsError::provider_error(ErrorMetadata::builder()
                    .code("AccessDenied")
                    .message("not authorized to perform sts:AssumeRole with external id ext-secret-1")
                    .build()))
            } else {
                let expiry = self.ttl.map(|ttl| self.clock.now() + ttl);
                Ok(Credentials::new(
                    format!("AKID{n}"),
                    "secret",
                    Some("token".into()),
                    expiry,
                    "fake",
                ))
            };
            self.done.send_replace(n);
            result
        }
    }

    #[derive(Debug)]
    struct FakeHandle(Arc<FakeProvider>);

    impl ProvideCredentials for FakeHandle {
        fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            future::ProvideCredentials::new(self.0.provide())
        }
    }

    struct Harness {
        clock: ManualClock,
        fake: Arc<FakeProvider>,
        creds: AccountCredentials,
        done: watch::Receiver<usize>,
        gate: watch::Sender<bool>,
    }

    fn harness(ttl: Option<Duration>) -> Harness {
        let clock = ManualClock::at(1_700_000_000);
        let (done_tx, done) = watch::channel(0);
        let (gate, gate_rx) = watch::channel(true);
        let fake = Arc::new(FakeProvider {
            clock: clock.clone(),
            ttl,
            calls: AtomicUsize::new(0),
            fail: false.into(),
            done: done_tx,
            gate: gate_rx,
        });
        let mut creds = AccountCredentials::from_provider(
            "acct",
            FakeHandle(Arc::clone(&fake)),
            SharedClock::new(clock.clone()),
        );
        if let Source::Refreshing(cache) = &mut creds.source {
            Arc::get_mut(cache).unwrap().what =
                "assume role `arn:aws:iam::111122223333:role/r`".into();
            Arc::get_mut(cache).unwrap().redact = Some("ext-secret-1".into());
        }
        Harness {
            clock,
            fake,
            creds,
            done,
            gate,
        }
    }

    fn key(auth: &RequestAuth) -> String {
        match auth {
            RequestAuth::SigV4(c) => c.access_key_id().to_owned(),
            RequestAuth::Bearer(_) => "bearer".into(),
        }
    }

    async fn concurrent_keys(creds: &AccountCredentials, n: usize) -> Vec<String> {
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let creds = creds.clone();
                tokio::spawn(async move { creds.get().await.map(|a| key(&a)) })
            })
            .collect();
        let mut keys = Vec::new();
        for task in tasks {
            keys.push(task.await.unwrap().unwrap());
        }
        keys
    }

    /// Spawns `n` concurrent `get()`s while the provider is held, so all of them are waiting
    /// (on a current-thread runtime one yield runs every spawned task up to its first wait)
    /// when the one fetch finishes.
    async fn gets_racing_one_fetch(h: &Harness, n: usize) -> Vec<Result<String, ProviderError>> {
        h.gate.send_replace(false);
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let creds = h.creds.clone();
                tokio::spawn(async move { creds.get().await.map(|a| key(&a)) })
            })
            .collect();
        tokio::task::yield_now().await;
        h.gate.send_replace(true);
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.unwrap());
        }
        results
    }

    /// Waits until no background renewal is running (the task has stored its outcome).
    async fn background_idle(creds: &AccountCredentials) {
        let Source::Refreshing(cache) = &creds.source else {
            return;
        };
        while cache.state().background_running {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn concurrent_first_gets_share_one_fetch() {
        let h = harness(Some(Duration::from_secs(3600)));
        let results = gets_racing_one_fetch(&h, 50).await;
        assert!(results.iter().all(|r| r.as_deref() == Ok("AKID1")));
        assert_eq!(h.fake.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn renews_in_the_background_once_inside_the_refresh_window() {
        let mut h = harness(Some(Duration::from_secs(3600)));
        assert_eq!(concurrent_keys(&h.creds, 50).await, vec!["AKID1"; 50]);
        // 1 h lifetime: the buffer is min(5 min, 6 min) = 5 min.
        h.clock.advance(Duration::from_secs(3600 - 5 * 60 - 1));
        assert_eq!(concurrent_keys(&h.creds, 10).await, vec!["AKID1"; 10]);
        assert_eq!(h.fake.calls.load(Ordering::SeqCst), 1);

        h.clock.advance(Duration::from_secs(2));
        h.gate.send_replace(false);
        // Inside the window: the old credentials keep coming while one renewal runs.
        assert_eq!(concurrent_keys(&h.creds, 50).await, vec!["AKID1"; 50]);
        h.gate.send_replace(true);
        h.done.wait_for(|n| *n == 2).await.unwrap();
        background_idle(&h.creds).await;
        assert_eq!(concurrent_keys(&h.creds, 50).await, vec!["AKID2"; 50]);
        assert_eq!(h.fake.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn expired_credentials_are_fetched_before_answering() {
        let h = harness(Some(Duration::from_secs(900)));
        assert_eq!(key(&h.creds.get().await.unwrap()), "AKID1");
        // 15 min lifetime: buffer 90 s, margin 10 s.
        h.clock.advance(Duration::from_secs(900 - 10));
        assert_eq!(concurrent_keys(&h.creds, 50).await, vec!["AKID2"; 50]);
        assert_eq!(h.fake.calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn refresh_timing_scales_with_lifetime() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let with_ttl = |secs| {
            let c = Credentials::new("a", "s", None, Some(now + Duration::from_secs(secs)), "t");
            let cached = Cached::new(c, now);
            (
                cached.refresh_at.duration_since(now).unwrap().as_millis(),
                cached
                    .usable_until
                    .unwrap()
                    .duration_since(now)
                    .unwrap()
                    .as_millis(),
            )
        };
        assert_eq!(with_ttl(3600), (3_300_000, 3_590_000));
        assert_eq!(with_ttl(900), (810_000, 890_000));
        assert_eq!(with_ttl(3), (2_700, 2_850));
        let forever = Cached::new(Credentials::new("a", "s", None, None, "t"), now);
        assert_eq!(forever.refresh_at, now + NO_EXPIRY_REFRESH);
        assert!(forever.usable_at(now + Duration::from_secs(1 << 30)));
    }

    #[tokio::test]
    async fn failure_names_the_role_hides_the_external_id_and_is_not_kept() {
        let h = harness(Some(Duration::from_secs(3600)));
        h.fake.fail.store(true, Ordering::SeqCst);
        let error = h.creds.get().await.unwrap_err();
        insta::assert_snapshot!(error.to_string(), @"could not obtain credentials for account `acct`: assume role `arn:aws:iam::111122223333:role/r`: AccessDenied: not authorized to perform sts:AssumeRole with external id <redacted>");
        assert_eq!(error.kind(), "credentials_unavailable");
        h.fake.fail.store(false, Ordering::SeqCst);
        assert_eq!(key(&h.creds.get().await.unwrap()), "AKID2");
    }

    #[tokio::test]
    async fn callers_waiting_on_a_failed_fetch_share_its_error() {
        let h = harness(Some(Duration::from_secs(3600)));
        h.fake.fail.store(true, Ordering::SeqCst);
        let results = gets_racing_one_fetch(&h, 20).await;
        assert!(results.iter().all(Result::is_err));
        assert_eq!(h.fake.calls.load(Ordering::SeqCst), 1);
        // The failure is not kept: the next caller tries again.
        h.fake.fail.store(false, Ordering::SeqCst);
        assert_eq!(key(&h.creds.get().await.unwrap()), "AKID2");
    }

    #[tokio::test]
    async fn failed_background_renewal_keeps_serving_and_pauses() {
        let mut h = harness(Some(Duration::from_secs(3600)));
        assert_eq!(key(&h.creds.get().await.unwrap()), "AKID1");
        h.clock.advance(Duration::from_secs(3600 - 60));
        h.fake.fail.store(true, Ordering::SeqCst);
        assert_eq!(key(&h.creds.get().await.unwrap()), "AKID1");
        h.done.wait_for(|n| *n == 2).await.unwrap();
        background_idle(&h.creds).await;
        // Within the pause no new attempt is made.
        assert_eq!(key(&h.creds.get().await.unwrap()), "AKID1");
        background_idle(&h.creds).await;
        assert_eq!(h.fake.calls.load(Ordering::SeqCst), 2);
        // After it, the next request starts one more.
        h.clock.advance(MAX_BACKGROUND_RETRY);
        h.fake.fail.store(false, Ordering::SeqCst);
        assert_eq!(key(&h.creds.get().await.unwrap()), "AKID1");
        h.done.wait_for(|n| *n == 3).await.unwrap();
        background_idle(&h.creds).await;
        assert_eq!(key(&h.creds.get().await.unwrap()), "AKID3");
    }

    #[tokio::test]
    async fn invalidate_drops_only_the_current_credentials() {
        let h = harness(Some(Duration::from_secs(3600)));
        let first = h.creds.get().await.unwrap();
        assert!(h.creds.invalidate(&first));
        let second = h.creds.get().await.unwrap();
        assert_eq!(key(&second), "AKID2");
        // A late report about the first ones must not throw away the second.
        assert!(h.creds.invalidate(&first));
        assert_eq!(key(&h.creds.get().await.unwrap()), "AKID2");
        assert_eq!(h.fake.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn status_tells_operators_where_the_credentials_stand_without_fetching() {
        let h = harness(Some(Duration::from_secs(3600)));
        let start = h.clock.now();
        let status = h.creds.status();
        assert_eq!(status.state, CredentialState::Unknown);
        assert_eq!(
            h.fake.calls.load(Ordering::SeqCst),
            0,
            "status fetches nothing"
        );

        h.creds.get().await.unwrap();
        let status = h.creds.status();
        assert_eq!(status.state, CredentialState::Valid);
        assert_eq!(status.valid_until, Some(start + Duration::from_secs(3600)));
        assert_eq!(status.last_refresh, Some(start));
        assert_eq!(status.last_error, None);

        // Inside the refresh buffer: still usable, due for renewal.
        h.clock.advance(Duration::from_secs(3600 - 60));
        assert_eq!(h.creds.status().state, CredentialState::Refreshing);

        // Expired, and the fetch fails: an error naming the role, never the external id.
        h.clock.advance(Duration::from_secs(120));
        h.fake.fail.store(true, Ordering::SeqCst);
        background_idle(&h.creds).await;
        h.creds.get().await.unwrap_err();
        let status = h.creds.status();
        assert_eq!(status.state, CredentialState::Error);
        let error = status.last_error.unwrap();
        assert!(
            error.contains("arn:aws:iam::111122223333:role/r"),
            "{error}"
        );
        assert!(!error.contains("ext-secret-1"), "{error}");
        assert_eq!(status.last_refresh, Some(start), "the last success stays");
    }
}
