//! The traffic page's history: per-model counts recorded as each request ends (beside the
//! GenAI metrics, with `gen_ai_server_request_duration`'s buckets), sampled every
//! [`INTERVAL`] into a ring of the last [`HISTORY`] by a background task the host starts
//! ([`TrafficSampler::run`]), so history exists before anyone opens the page.
//!
//! Each sample holds what changed since the previous one: requests, errors (a status of 500
//! or more, or a stream that failed after its head), guardrail interventions and the
//! duration histogram's bucket deltas, from which [`percentile`] reads p50/p95/p99 as
//! Prometheus' `histogram_quantile` does.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use gateway_core::clock::SharedClock;

use crate::metrics::{gen_ai_duration_bounds, ModelLabel};

/// How often the sampler takes a sample.
pub const INTERVAL: Duration = Duration::from_secs(5);
/// How much history the ring keeps.
pub const HISTORY: Duration = Duration::from_secs(15 * 60);
/// Samples in [`HISTORY`].
const CAPACITY: usize = (HISTORY.as_secs() / INTERVAL.as_secs()) as usize;
/// The duration buckets: `gen_ai_server_request_duration`'s bounds, then `+Inf`.
const BUCKETS: usize = 15;

/// One model's counts since start.
#[derive(Debug, Default)]
struct ModelCounters {
    requests: AtomicU64,
    errors: AtomicU64,
    interventions: AtomicU64,
    buckets: [AtomicU64; BUCKETS],
}

/// What one model did, in total or in one interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) requests: u64,
    pub(crate) errors: u64,
    pub(crate) interventions: u64,
    /// Requests by duration bucket (not cumulative).
    pub(crate) buckets: [u64; BUCKETS],
}

impl Counts {
    fn minus(&self, earlier: &Self) -> Self {
        let mut buckets = [0; BUCKETS];
        for (i, bucket) in buckets.iter_mut().enumerate() {
            *bucket = self.buckets[i].saturating_sub(earlier.buckets[i]);
        }
        Self {
            requests: self.requests.saturating_sub(earlier.requests),
            errors: self.errors.saturating_sub(earlier.errors),
            interventions: self.interventions.saturating_sub(earlier.interventions),
            buckets,
        }
    }

    fn is_zero(&self) -> bool {
        self.requests == 0 && self.errors == 0 && self.interventions == 0
    }
}

/// One sample: when, and each model that did anything in the interval before it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sample {
    pub(crate) unix_seconds: u64,
    pub(crate) models: BTreeMap<String, Counts>,
}

/// The process's traffic counts and their history; shared by every app of the process.
#[derive(Debug)]
pub(crate) struct Traffic {
    bounds: [f64; BUCKETS - 1],
    counters: RwLock<HashMap<ModelLabel, ModelCounters>>,
    history: Mutex<History>,
}

#[derive(Debug, Default)]
struct History {
    /// The totals at the last sample.
    previous: HashMap<String, Counts>,
    samples: VecDeque<Sample>,
}

impl Traffic {
    pub(crate) fn new() -> Self {
        let mut bounds = [0.0; BUCKETS - 1];
        for (bound, value) in bounds.iter_mut().zip(gen_ai_duration_bounds()) {
            *bound = value;
        }
        Self {
            bounds,
            counters: RwLock::default(),
            history: Mutex::default(),
        }
    }

    /// Counts one request to `model` that ended after `elapsed`. Every thread records here:
    /// a read lock and relaxed atomic additions, the write lock only for a model's first
    /// request.
    pub(crate) fn record(
        &self,
        model: &ModelLabel,
        elapsed: Duration,
        error: bool,
        intervened: bool,
    ) {
        let seconds = elapsed.as_secs_f64();
        let bucket = self
            .bounds
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(BUCKETS - 1);
        let count = |counters: &ModelCounters| {
            counters.requests.fetch_add(1, Ordering::Relaxed);
            if error {
                counters.errors.fetch_add(1, Ordering::Relaxed);
            }
            if intervened {
                counters.interventions.fetch_add(1, Ordering::Relaxed);
            }
            if let Some(requests) = counters.buckets.get(bucket) {
                requests.fetch_add(1, Ordering::Relaxed);
            }
        };
        {
            let known = self.counters.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(counters) = known.get(model) {
                count(counters);
                return;
            }
        }
        let mut all = self
            .counters
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        count(all.entry(Arc::clone(model)).or_default());
    }

    /// Every model's totals since start.
    fn totals(&self) -> HashMap<String, Counts> {
        let counters = self.counters.read().unwrap_or_else(PoisonError::into_inner);
        let mut totals: HashMap<String, Counts> = HashMap::with_capacity(counters.len());
        for (model, counts) in counters.iter() {
            let mut buckets = [0; BUCKETS];
            for (total, count) in buckets.iter_mut().zip(&counts.buckets) {
                *total = count.load(Ordering::Relaxed);
            }
            // A reload may make a new label of the same name: their counts add up.
            let entry = totals.entry(model.as_str().to_owned()).or_default();
            entry.requests += counts.requests.load(Ordering::Relaxed);
            entry.errors += counts.errors.load(Ordering::Relaxed);
            entry.interventions += counts.interventions.load(Ordering::Relaxed);
            for (sum, count) in entry.buckets.iter_mut().zip(buckets) {
                *sum += count;
            }
        }
        totals
    }

    /// Takes one sample at `unix_seconds`: what changed since the previous one.
    pub(crate) fn sample(&self, unix_seconds: u64) {
        let totals = self.totals();
        let mut history = self.history.lock().unwrap_or_else(PoisonError::into_inner);
        let models = totals
            .iter()
            .filter_map(|(model, now)| {
                let before = history.previous.get(model).copied().unwrap_or_default();
                let delta = now.minus(&before);
                (!delta.is_zero()).then(|| (model.clone(), delta))
            })
            .collect();
        history.previous = totals;
        if history.samples.len() == CAPACITY {
            history.samples.pop_front();
        }
        history.samples.push_back(Sample {
            unix_seconds,
            models,
        });
    }

    /// The last `count` samples, oldest first.
    pub(crate) fn recent(&self, count: usize) -> Vec<Sample> {
        let history = self.history.lock().unwrap_or_else(PoisonError::into_inner);
        let skip = history.samples.len().saturating_sub(count);
        history.samples.iter().skip(skip).cloned().collect()
    }

    /// The duration buckets' upper bounds in seconds (`+Inf` not included).
    pub(crate) fn bounds(&self) -> &[f64] {
        &self.bounds
    }
}

/// The `q`-quantile (0..=1) in seconds of the durations counted in `buckets` (one count per
/// bucket, the last one `+Inf`), interpolated linearly within its bucket as Prometheus'
/// `histogram_quantile` does; `None` when nothing was counted. A quantile in the `+Inf`
/// bucket is the largest finite bound.
pub(crate) fn percentile(bounds: &[f64], buckets: &[u64], q: f64) -> Option<f64> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut below = 0u64;
    for (index, &count) in buckets.iter().enumerate() {
        let through = below + count;
        if count > 0 && through as f64 >= rank {
            let Some(&upper) = bounds.get(index) else {
                return bounds.last().copied();
            };
            let lower = if index == 0 { 0.0 } else { bounds[index - 1] };
            let within = (rank - below as f64) / count as f64;
            return Some(lower + (upper - lower) * within);
        }
        below = through;
    }
    bounds.last().copied()
}

/// Takes the console's traffic samples. The host runs [`TrafficSampler::run`] on a runtime
/// that lives as long as the server; clones share one history.
#[derive(Debug, Clone)]
pub struct TrafficSampler {
    pub(crate) traffic: Arc<Traffic>,
    pub(crate) clock: SharedClock,
}

impl TrafficSampler {
    /// Samples every [`INTERVAL`], the first one interval from now; never returns (abort
    /// its task, or drop its runtime, to stop it).
    pub async fn run(self) {
        let start = tokio::time::Instant::now() + INTERVAL;
        let mut ticks = tokio::time::interval_at(start, INTERVAL);
        // A late tick (a busy runtime) is one sample, not a burst of catch-up samples.
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            self.sample_now();
        }
    }

    /// Takes one sample now (what [`TrafficSampler::run`] does at each tick; tests call it
    /// directly).
    pub fn sample_now(&self) {
        self.traffic.sample(self.clock.unix_seconds());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(name: &str) -> ModelLabel {
        Arc::new(name.to_owned())
    }

    #[test]
    fn percentiles_interpolate_within_the_bucket_holding_the_rank() {
        let bounds = [0.01, 0.02, 0.04];
        // 10 in (0, 0.01], 10 in (0.01, 0.02], none above.
        let buckets = [10, 10, 0, 0];
        assert_eq!(percentile(&bounds, &buckets, 0.5), Some(0.01));
        let p95 = percentile(&bounds, &buckets, 0.95).unwrap();
        assert!((p95 - 0.019).abs() < 1e-12, "{p95}");
        let p25 = percentile(&bounds, &buckets, 0.25).unwrap();
        assert!((p25 - 0.005).abs() < 1e-12, "{p25}");
        assert_eq!(percentile(&bounds, &[0, 0, 0, 0], 0.5), None);
        // Beyond the last bound: the last bound, as histogram_quantile says.
        assert_eq!(percentile(&bounds, &[0, 0, 0, 3], 0.99), Some(0.04));
        // Empty leading buckets are skipped, not interpolated into.
        assert_eq!(percentile(&bounds, &[0, 0, 4, 0], 1.0), Some(0.04));
        let p50 = percentile(&bounds, &[0, 0, 4, 0], 0.5).unwrap();
        assert!((p50 - 0.03).abs() < 1e-12, "{p50}");
    }

    #[test]
    fn samples_hold_the_change_since_the_previous_one() {
        let traffic = Traffic::new();
        let claude = label("demo/claude");
        traffic.record(&claude, Duration::from_millis(5), false, false);
        traffic.record(&claude, Duration::from_millis(15), true, false);
        traffic.sample(100);
        traffic.record(&claude, Duration::from_secs(200), false, true);
        traffic.sample(105);
        traffic.sample(110);

        let samples = traffic.recent(10);
        assert_eq!(
            samples.iter().map(|s| s.unix_seconds).collect::<Vec<_>>(),
            [100, 105, 110]
        );
        let first = samples[0].models["demo/claude"];
        assert_eq!(
            (first.requests, first.errors, first.interventions),
            (2, 1, 0)
        );
        assert_eq!(first.buckets[0], 1);
        assert_eq!(first.buckets[1], 1);
        let second = samples[1].models["demo/claude"];
        assert_eq!((second.requests, second.interventions), (1, 1));
        assert_eq!(second.buckets[BUCKETS - 1], 1, "200 s is past every bound");
        assert!(samples[2].models.is_empty(), "nothing happened");
        assert_eq!(traffic.recent(1), samples[2..]);
    }

    #[test]
    fn the_ring_keeps_fifteen_minutes() {
        let traffic = Traffic::new();
        for i in 0..(CAPACITY as u64 + 7) {
            traffic.sample(i * 5);
        }
        let samples = traffic.recent(usize::MAX);
        assert_eq!(samples.len(), CAPACITY);
        assert_eq!(CAPACITY, 180);
        assert_eq!(samples[0].unix_seconds, 35);
    }

    #[test]
    fn the_buckets_are_the_gen_ai_duration_histogram_s() {
        let traffic = Traffic::new();
        assert_eq!(traffic.bounds().len(), BUCKETS - 1);
        assert_eq!(traffic.bounds()[0], 0.01);
        assert_eq!(traffic.bounds()[BUCKETS - 2], 81.92);
    }
}
