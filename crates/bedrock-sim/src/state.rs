//! State shared by the server tasks and the handles: configuration, scripts, recorded
//! requests, STS-issued credentials, counters and the precomputed fixed answers.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tokio::sync::watch;

use crate::body::DropLog;
use crate::clock::SimClock;
use crate::failure::{ArmedFailure, CallCounter, Failure, Fault};
use crate::model_id;
use crate::prompt::PromptCache;
use crate::{Operation, RecordedAuth, RecordedRequest, Script, SimRole};

/// Credentials issued by the simulated STS.
#[derive(Clone)]
pub(crate) struct TempCredential {
    pub(crate) secret_access_key: String,
    pub(crate) session_token: String,
    pub(crate) expiration: SystemTime,
}

/// A Bedrock request as stored; the body is parsed only when [`crate::SimHandle::requests`] is
/// called, so recording stays cheap in benchmarks.
pub(crate) struct StoredRequest {
    pub(crate) operation: Operation,
    pub(crate) model_id: String,
    pub(crate) raw_path: String,
    pub(crate) headers: http::HeaderMap,
    pub(crate) body: Bytes,
    pub(crate) auth: RecordedAuth,
}

impl StoredRequest {
    pub(crate) fn to_recorded(&self) -> RecordedRequest {
        RecordedRequest {
            operation: self.operation,
            model_id: self.model_id.clone(),
            raw_path: self.raw_path.clone(),
            headers: self.headers.clone(),
            body: serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null),
            raw_body: self.body.clone(),
            auth: self.auth.clone(),
        }
    }
}

/// Precomputed bytes of [`Script::Fixed`].
pub(crate) struct FixedAnswers {
    pub(crate) converse: Bytes,
    pub(crate) stream: Vec<Bytes>,
}

pub(crate) struct Shared {
    pub(crate) access_keys: HashMap<String, String>,
    pub(crate) api_keys: Vec<String>,
    pub(crate) verify: bool,
    pub(crate) record: bool,
    pub(crate) roles: Vec<SimRole>,
    pub(crate) web_identity_tokens: Vec<String>,
    pub(crate) ttl: Duration,
    pub(crate) scripts: RwLock<HashMap<String, Arc<Script>>>,
    pub(crate) default_script: Arc<Script>,
    /// Calls answered so far per model id whose script is a [`Script::Sequence`].
    pub(crate) sequence_calls: Mutex<HashMap<String, usize>>,
    pub(crate) requests: Mutex<Vec<StoredRequest>>,
    pub(crate) sts_calls: AtomicUsize,
    pub(crate) temp_credentials: Mutex<HashMap<String, TempCredential>>,
    pub(crate) drops: Arc<DropLog>,
    pub(crate) clock: SimClock,
    pub(crate) fixed: FixedAnswers,
    pub(crate) shutdown: watch::Receiver<bool>,
    /// Base model ids served only through inference profiles
    /// ([`crate::SimBuilder::profile_only`]).
    pub(crate) profile_only: HashSet<String>,
    /// Prompt prefixes written to the simulated prompt cache.
    pub(crate) prompt_cache: PromptCache,
    /// Failures set per model id, over the scripts.
    pub(crate) failures: RwLock<HashMap<String, Arc<ArmedFailure>>>,
    /// The failure of model ids without their own.
    pub(crate) default_failure: RwLock<Option<Arc<ArmedFailure>>>,
    /// Bedrock calls received per model id.
    pub(crate) calls: CallCounter,
}

impl Shared {
    /// The script answering this call for `model_id` ([`Script::Sequence`] resolved): its own,
    /// else for a cross-region profile id (`us.<model>`) the base model's, else the default.
    pub(crate) fn script_for(&self, model_id: &str) -> Arc<Script> {
        let script = {
            let scripts = self.scripts.read().unwrap_or_else(|e| e.into_inner());
            scripts
                .get(model_id)
                .or_else(|| model_id::strip_geo(model_id).and_then(|base| scripts.get(base)))
                .cloned()
                .unwrap_or_else(|| Arc::clone(&self.default_script))
        };
        let Script::Sequence(scripts) = &*script else {
            return script;
        };
        let call = {
            let mut calls = self
                .sequence_calls
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let count = calls.entry(model_id.to_owned()).or_insert(0);
            *count += 1;
            *count - 1
        };
        let mut chosen = scripts.get(call).or_else(|| scripts.last());
        while let Some(Script::Sequence(inner)) = chosen {
            chosen = inner.first();
        }
        Arc::new(chosen.cloned().unwrap_or(Script::Echo))
    }

    pub(crate) fn set_script(&self, model_id: &str, script: Script) {
        self.scripts
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(model_id.to_owned(), Arc::new(script));
        self.sequence_calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(model_id);
    }

    /// The fault answering this call for `model_id`, if a failure applies to it now: the
    /// model's own failure, else for a cross-region profile id the base model's, else the
    /// default one (the same lookup as scripts).
    pub(crate) fn fault_for(&self, model_id: &str) -> Option<Fault> {
        let armed = {
            let failures = self.failures.read().unwrap_or_else(|e| e.into_inner());
            failures
                .get(model_id)
                .or_else(|| model_id::strip_geo(model_id).and_then(|base| failures.get(base)))
                .cloned()
        };
        let armed = armed.or_else(|| {
            self.default_failure
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
        })?;
        armed.fault_for_call(self.clock.now()).cloned()
    }

    pub(crate) fn arm(&self, failure: Failure) -> Arc<ArmedFailure> {
        Arc::new(ArmedFailure::new(failure, self.clock.now()))
    }

    pub(crate) fn set_failure(&self, model_id: &str, failure: Failure) {
        let armed = self.arm(failure);
        self.failures
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(model_id.to_owned(), armed);
    }

    pub(crate) fn set_default_failure(&self, failure: Option<Failure>) {
        let armed = failure.map(|f| self.arm(f));
        *self
            .default_failure
            .write()
            .unwrap_or_else(|e| e.into_inner()) = armed;
    }

    pub(crate) fn clear_failure(&self, model_id: &str) {
        self.failures
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(model_id);
    }

    pub(crate) fn temp_credential(&self, access_key_id: &str) -> Option<TempCredential> {
        self.temp_credentials
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(access_key_id)
            .cloned()
    }

    pub(crate) fn record(&self, request: StoredRequest) {
        if self.record {
            self.requests
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(request);
        }
    }
}

/// Resolves when the simulator is shut down (or every handle is gone).
pub(crate) async fn shutdown_signal(mut rx: watch::Receiver<bool>) {
    // An error means the sender (the last handle) is gone: that is a shutdown too.
    let _ = rx.wait_for(|stop| *stop).await;
}

/// A random AWS-style request id (UUID v4 layout).
pub(crate) fn request_id() -> String {
    let a = fastrand::u128(..);
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        (a >> 96) as u32,
        (a >> 80) as u16,
        (a >> 68) as u16 & 0x0fff,
        ((a >> 52) as u16 & 0x3fff) | 0x8000,
        (a as u64) & 0xffff_ffff_ffff
    )
}
