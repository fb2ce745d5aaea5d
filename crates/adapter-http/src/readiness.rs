//! `GET /ready` (and `/readyz`): whether this instance should get traffic now, as opposed to
//! `/health`, which only says the process serves.
//!
//! The HTTP adapter cannot tell whether an upstream's credentials work; its host checks and
//! reports through [`Readiness::report`], and `/ready` answers with the last report, built
//! once per report rather than per probe. Until a host reports, an app is ready: it exists,
//! so its configuration was loaded.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use serde::Serialize;

/// The last readiness report. Clones share it, so every app of a process (one per runtime,
/// and the ones a reload makes) answers alike.
#[derive(Clone)]
pub struct Readiness(Arc<ArcSwap<Report>>);

/// What `/ready` answers until the next report.
#[derive(Debug)]
pub(crate) struct Report {
    pub(crate) ready: bool,
    /// `{"status":"ready"}` or `{"status":"not_ready","accounts":{...}}`.
    pub(crate) body: Bytes,
}

#[derive(Serialize)]
struct Body<'a> {
    status: &'static str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    accounts: BTreeMap<&'a str, &'a str>,
}

impl Report {
    fn new(unusable: BTreeMap<&str, &str>) -> Self {
        let ready = unusable.is_empty();
        let body = Body {
            status: if ready { "ready" } else { "not_ready" },
            accounts: unusable,
        };
        // A map of strings always serializes.
        let body = serde_json::to_vec(&body).unwrap_or_default();
        Self {
            ready,
            body: body.into(),
        }
    }
}

impl Readiness {
    pub(crate) fn new() -> Self {
        Self(Arc::new(ArcSwap::from_pointee(
            Report::new(BTreeMap::new()),
        )))
    }

    /// Replaces what `/ready` answers: ready when `unusable` is empty, otherwise 503 naming
    /// each account with what keeps it from serving. Anyone who can reach `/ready` reads the
    /// reasons, so they must hold no secret.
    pub fn report<'a>(&self, unusable: impl IntoIterator<Item = (&'a str, &'a str)>) {
        let report = Report::new(unusable.into_iter().collect());
        self.0.store(Arc::new(report));
    }

    /// Whether the last report said ready.
    pub fn is_ready(&self) -> bool {
        self.0.load().ready
    }

    pub(crate) fn current(&self) -> Arc<Report> {
        self.0.load_full()
    }
}

impl fmt::Debug for Readiness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Readiness").field(&self.is_ready()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(readiness: &Readiness) -> String {
        String::from_utf8_lossy(&readiness.current().body).into_owned()
    }

    #[test]
    fn ready_until_a_report_names_an_account_then_ready_again_when_none_is_named() {
        let readiness = Readiness::new();
        assert!(readiness.is_ready());
        assert_eq!(body(&readiness), r#"{"status":"ready"}"#);

        let shared = readiness.clone();
        shared.report([("west", "STS refused"), ("east", "no \"credentials\"")]);
        assert!(!readiness.is_ready());
        assert_eq!(
            body(&readiness),
            r#"{"status":"not_ready","accounts":{"east":"no \"credentials\"","west":"STS refused"}}"#
        );

        shared.report([]);
        assert!(readiness.is_ready());
        assert_eq!(body(&readiness), r#"{"status":"ready"}"#);
    }
}
