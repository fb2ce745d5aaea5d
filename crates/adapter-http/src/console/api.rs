//! The console's admin JSON API (docs/console.md): `status`, `routes` and `traffic`, each
//! built from what the app already holds. Names only, never a key or credential.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gateway_core::clock::civil_from_days;
use gateway_core::CircuitState;
use serde::Serialize;

use super::traffic::{percentile, Counts, Sample, HISTORY, INTERVAL};
use super::{Context, LimitsBackendKind};
use crate::error::ApiError;

#[derive(Serialize)]
struct Status<'a> {
    version: &'static str,
    started_at: String,
    uptime_seconds: u64,
    accounts: Vec<Account<'a>>,
    circuit_breakers: Vec<Breaker<'a>>,
    limits: Limits,
    telemetry: Telemetry,
    ready: bool,
}

#[derive(Serialize)]
struct Account<'a> {
    name: &'a str,
    auth: &'static str,
    region: &'a str,
    endpoint: Option<&'a str>,
    credentials: Credentials,
}

#[derive(Serialize)]
struct Credentials {
    state: &'static str,
    valid_until: Option<String>,
    last_refresh: Option<String>,
    last_error: Option<String>,
}

#[derive(Serialize)]
struct Breaker<'a> {
    target: &'a str,
    state: &'static str,
}

#[derive(Serialize)]
struct Limits {
    backend: &'static str,
    state: &'static str,
    last_error: Option<String>,
}

#[derive(Serialize)]
struct Telemetry {
    otlp: &'static str,
    export_failures: u64,
}

/// `GET /console/api/status`.
pub(super) fn status(context: &Context<'_>) -> Vec<u8> {
    let now = context.clock.now();
    let console = context.console;
    let accounts = console
        .settings
        .accounts
        .iter()
        .map(|account| {
            let report = account.credentials.status();
            Account {
                name: &account.name,
                auth: account.auth,
                region: &account.region,
                endpoint: account.endpoint.as_deref(),
                credentials: Credentials {
                    state: report.state.as_str(),
                    valid_until: report.valid_until.map(rfc3339),
                    last_refresh: report.last_refresh.map(rfc3339),
                    last_error: report.last_error,
                },
            }
        })
        .collect();
    let circuit_breakers = context
        .service
        .circuit_breakers()
        .states()
        .map(|(target, state)| Breaker {
            target,
            state: match state {
                CircuitState::Closed => "closed",
                CircuitState::Open => "open",
                CircuitState::HalfOpen => "half_open",
            },
        })
        .collect();
    let backend_failing = console
        .limit_backend_errors
        .as_ref()
        .is_some_and(|errors| errors.failing());
    let limits = Limits {
        backend: match console.settings.limits_backend {
            LimitsBackendKind::Memory => "memory",
            LimitsBackendKind::Redis => "redis",
        },
        state: if backend_failing { "error" } else { "ok" },
        // The backend logs its errors; their text may name the server, so it stays there.
        last_error: backend_failing.then(|| "the last call to the limits backend failed".into()),
    };
    let telemetry = match &console.trace_export_failures {
        Some(failures) => Telemetry {
            otlp: "on",
            export_failures: failures.failed_exports(),
        },
        None => Telemetry {
            otlp: "off",
            export_failures: 0,
        },
    };
    let status = Status {
        version: env!("CARGO_PKG_VERSION"),
        started_at: rfc3339(context.started_at),
        uptime_seconds: now
            .duration_since(context.started_at)
            .map_or(0, |uptime| uptime.as_secs()),
        accounts,
        circuit_breakers,
        limits,
        telemetry,
        ready: context.readiness.is_ready(),
    };
    to_json(&status)
}

#[derive(Serialize)]
struct Routes<'a> {
    models: Vec<Model<'a>>,
    virtual_models: Vec<VirtualModel>,
    keys: Vec<Key<'a>>,
    guardrails: Vec<Guardrail<'a>>,
}

#[derive(Serialize)]
struct Model<'a> {
    name: String,
    kind: gateway_core::ModelKind,
    account: String,
    region: String,
    model_id: String,
    /// `model_id` again when it names an inference profile.
    inference_profile: Option<&'a str>,
    guardrail: Option<ModelGuardrail>,
    price: Option<Price>,
}

#[derive(Serialize)]
struct ModelGuardrail {
    id: String,
    version: String,
    mode: gateway_core::GuardrailMode,
}

#[derive(Serialize)]
struct Price {
    input_per_million_usd: f64,
    output_per_million_usd: f64,
}

#[derive(Serialize)]
struct VirtualModel {
    name: String,
    strategy: gateway_core::Strategy,
    targets: Vec<Target>,
}

#[derive(Serialize)]
struct Target {
    target: String,
    weight: u32,
}

#[derive(Serialize)]
struct Key<'a> {
    name: &'a str,
    limits: KeyLimits,
    spend_usd: f64,
    spend_source: &'static str,
}

#[derive(Serialize)]
struct KeyLimits {
    rpm: Option<u32>,
    tpm: Option<u64>,
    budget_usd: Option<f64>,
}

#[derive(Serialize)]
struct Guardrail<'a> {
    name: &'a str,
    account: &'a str,
}

/// `GET /console/api/routes`.
pub(super) fn routes(context: &Context<'_>) -> Vec<u8> {
    let routes = context.service.models();
    let models = routes
        .iter()
        .map(|route| Model {
            name: route.public_name.clone(),
            kind: route.kind,
            account: route.account.clone(),
            region: route.region.clone(),
            model_id: route.model_id.clone(),
            inference_profile: context
                .console
                .settings
                .inference_profiles
                .contains(&route.model_id)
                .then_some(route.model_id.as_str()),
            guardrail: route
                .guardrail
                .configured
                .as_ref()
                .map(|configured| ModelGuardrail {
                    id: configured.guardrail.identifier.clone(),
                    version: configured.guardrail.version.clone(),
                    mode: configured.mode,
                }),
            price: route.price.map(|price| Price {
                input_per_million_usd: price.input,
                output_per_million_usd: price.output,
            }),
        })
        .collect();
    let virtual_models = context
        .service
        .virtual_models()
        .iter()
        .map(|model| VirtualModel {
            name: model.name.clone(),
            strategy: model.strategy,
            targets: model
                .targets
                .iter()
                .enumerate()
                .map(|(index, target)| Target {
                    target: target.public_name.clone(),
                    // Failover targets weigh the same.
                    weight: model.weights.get(index).copied().unwrap_or(1),
                })
                .collect(),
        })
        .collect();
    let keys = context
        .keys
        .keys()
        .iter()
        .map(|key| {
            let label = context.key_labels.get(Some(&key.name));
            Key {
                name: &key.name,
                limits: KeyLimits {
                    rpm: key.rpm,
                    tpm: key.tpm,
                    budget_usd: key.budget_usd,
                },
                spend_usd: context.metrics.spend_usd(label),
                spend_source: "this replica",
            }
        })
        .collect();
    let guardrails = context
        .console
        .settings
        .guardrails
        .iter()
        .map(|guardrail| Guardrail {
            name: &guardrail.name,
            account: &guardrail.account,
        })
        .collect();
    to_json(&Routes {
        models,
        virtual_models,
        keys,
        guardrails,
    })
}

/// `minutes` of `?minutes=N`: 1 to 15, 15 when absent.
pub(super) fn minutes(query: Option<&str>) -> Result<u64, ApiError> {
    let most = HISTORY.as_secs() / 60;
    let given = query
        .into_iter()
        .flat_map(|query| query.split('&'))
        .filter_map(|pair| pair.strip_prefix("minutes="))
        .next_back();
    match given {
        None => Ok(most),
        Some(text) => text
            .parse::<u64>()
            .ok()
            .filter(|minutes| (1..=most).contains(minutes))
            .ok_or_else(|| {
                ApiError::invalid_query(
                    "minutes",
                    format!("minutes must be a whole number from 1 to {most}"),
                )
            }),
    }
}

#[derive(Serialize)]
struct Traffic {
    interval_seconds: u64,
    timestamps: Vec<u64>,
    models: Vec<ModelTraffic>,
    totals: Totals,
}

#[derive(Serialize)]
struct ModelTraffic {
    model: String,
    requests_per_second: Vec<f64>,
    errors_per_second: Vec<f64>,
    guardrail_interventions_per_second: Vec<f64>,
    latency_ms: Latency,
}

#[derive(Serialize)]
struct Latency {
    p50: Vec<Option<f64>>,
    p95: Vec<Option<f64>>,
    p99: Vec<Option<f64>>,
}

#[derive(Serialize)]
struct Totals {
    requests_per_second: Vec<f64>,
    errors_per_second: Vec<f64>,
}

/// `GET /console/api/traffic?minutes=N`: the last `minutes` of samples, each model that had
/// any request in them.
pub(super) fn traffic(context: &Context<'_>, minutes: u64) -> Vec<u8> {
    let traffic = context.metrics.traffic();
    let count = usize::try_from(minutes * 60 / INTERVAL.as_secs()).unwrap_or(usize::MAX);
    let samples = traffic.recent(count);
    to_json(&traffic_of(&samples, traffic.bounds(), INTERVAL))
}

fn traffic_of(samples: &[Sample], bounds: &[f64], interval: Duration) -> Traffic {
    let seconds = interval.as_secs_f64();
    let rate = |count: u64| count as f64 / seconds;
    let names: BTreeSet<&str> = samples
        .iter()
        .flat_map(|sample| sample.models.keys().map(String::as_str))
        .collect();
    let models = names
        .into_iter()
        .map(|name| {
            let counts: Vec<Counts> = samples
                .iter()
                .map(|sample| sample.models.get(name).copied().unwrap_or_default())
                .collect();
            let series = |of: fn(&Counts) -> u64| counts.iter().map(|c| rate(of(c))).collect();
            let quantile = |q: f64| {
                counts
                    .iter()
                    .map(|c| percentile(bounds, &c.buckets, q).map(|s| round_ms(s * 1000.0)))
                    .collect()
            };
            ModelTraffic {
                model: name.to_owned(),
                requests_per_second: series(|c| c.requests),
                errors_per_second: series(|c| c.errors),
                guardrail_interventions_per_second: series(|c| c.interventions),
                latency_ms: Latency {
                    p50: quantile(0.5),
                    p95: quantile(0.95),
                    p99: quantile(0.99),
                },
            }
        })
        .collect();
    let total = |of: fn(&Counts) -> u64| {
        samples
            .iter()
            .map(|sample| rate(sample.models.values().map(of).sum()))
            .collect()
    };
    Traffic {
        interval_seconds: interval.as_secs(),
        timestamps: samples.iter().map(|sample| sample.unix_seconds).collect(),
        models,
        totals: Totals {
            requests_per_second: total(|c| c.requests),
            errors_per_second: total(|c| c.errors),
        },
    }
}

/// Milliseconds to a tenth, which is all a bucket's interpolation is worth.
fn round_ms(ms: f64) -> f64 {
    (ms * 10.0).round() / 10.0
}

fn to_json(value: &impl Serialize) -> Vec<u8> {
    // Plain structs of strings and numbers always serialize.
    serde_json::to_vec(value).unwrap_or_default()
}

/// `time` as RFC 3339 in UTC to the second (`2026-12-03T06:48:07Z`); times before 1970 are
/// the epoch.
pub(super) fn rfc3339(time: SystemTime) -> String {
    let seconds = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = i64::try_from(seconds / 86_400).unwrap_or(i64::MAX);
    let of_day = seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        let at = |seconds: u64| rfc3339(UNIX_EPOCH + Duration::from_secs(seconds));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_796_280_487), "2026-12-03T06:48:07Z");
        assert_eq!(at(4_107_542_399), "2100-02-28T23:59:59Z");
    }

    #[test]
    fn minutes_are_one_to_fifteen() {
        assert_eq!(minutes(None).unwrap(), 15);
        assert_eq!(minutes(Some("minutes=5")).unwrap(), 5);
        assert_eq!(minutes(Some("x=1&minutes=1")).unwrap(), 1);
        for bad in [
            "minutes=0",
            "minutes=16",
            "minutes=",
            "minutes=a",
            "minutes=-1",
        ] {
            assert_eq!(
                minutes(Some(bad)).unwrap_err().param.as_deref(),
                Some("minutes")
            );
        }
    }

    #[test]
    fn traffic_is_rates_per_second_and_percentiles_per_sample() {
        let bounds = [0.01, 0.02];
        let counts = Counts {
            requests: 10,
            errors: 5,
            interventions: 1,
            buckets: {
                let mut buckets = [0; 15];
                buckets[1] = 10;
                buckets
            },
        };
        let samples = [
            Sample {
                unix_seconds: 100,
                models: BTreeMap::from([("demo/claude".to_owned(), counts)]),
            },
            Sample {
                unix_seconds: 105,
                models: BTreeMap::new(),
            },
        ];
        let json = serde_json::to_value(traffic_of(&samples, &bounds, INTERVAL)).unwrap();
        insta::assert_json_snapshot!(json);
    }
}
