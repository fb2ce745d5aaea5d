//! Failures on demand: a [`Failure`] is a [`Fault`] (what goes wrong) with a [`Schedule`]
//! (when), set per model id over the model's [`crate::Script`]. While it applies, the fault
//! answers instead of (or, for a released stall or a cut stream, on top of) the script; when it
//! does not, the script answers as usual. Also the per-model call counter tests wait on.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use crate::Gate;

/// `ThrottlingException`'s message when a Bedrock account runs out of tokens per minute.
const TOO_MANY_TOKENS: &str = "Too many tokens, please wait before trying again.";

/// What goes wrong on a call (see the crate docs for the table of how each looks on the wire).
#[derive(Debug, Clone)]
pub enum Fault {
    /// A Bedrock error before any body, for both operations: `status`, `x-amzn-ErrorType:
    /// <kind>:http://internal.amazon.com/coral/com.amazon.bedrock/` and `{"message": ...}`.
    Error {
        /// HTTP status, e.g. 429.
        status: u16,
        /// Exception name, e.g. `ThrottlingException`.
        kind: String,
        /// The `message` of the body.
        message: String,
    },
    /// The request is read, then the connection is closed (FIN) without any answer. On an
    /// HTTP/2 connection the whole connection is closed, not just the stream.
    Close,
    /// The request is read, then the connection is reset (TCP RST, `SO_LINGER` 0) without any
    /// answer.
    Reset,
    /// Nothing is sent, not even the status line, until the gate opens; the script then
    /// answers as usual. `None` stalls until the simulator shuts down (then `503
    /// ServiceUnavailableException` "bedrock-sim is shutting down").
    Stall(Option<Gate>),
    /// The script answers, but a successful ConverseStream body is cut (connection closed
    /// with an error) after this many event frames; if the answer has no more frames than
    /// that, all are sent and the body is cut instead of ending. A successful Converse
    /// answer sends its status, headers and the first half of its JSON body, then is cut.
    /// Error answers of the script are sent whole.
    CutAfterEvents(usize),
    /// ConverseStream: `200`, then an `exception` frame as the first event (e.g.
    /// `throttlingException`), then the body ends. Converse: the HTTP error Bedrock answers
    /// for that exception (`throttlingException` -> `429 ThrottlingException`), with the
    /// same message.
    ExceptionEvent {
        /// The event-stream exception type, e.g. `throttlingException`.
        exception_type: String,
        /// The `message` of the payload.
        message: String,
    },
}

impl Fault {
    /// A [`Fault::Error`].
    pub fn error(status: u16, kind: &str, message: &str) -> Self {
        Self::Error {
            status,
            kind: kind.to_owned(),
            message: message.to_owned(),
        }
    }

    /// `429 ThrottlingException` "Too many tokens, please wait before trying again."
    pub fn throttling() -> Self {
        Self::error(429, "ThrottlingException", TOO_MANY_TOKENS)
    }

    /// `503 ServiceUnavailableException` "Bedrock is unable to process your request."
    pub fn service_unavailable() -> Self {
        Self::error(
            503,
            "ServiceUnavailableException",
            "Bedrock is unable to process your request.",
        )
    }

    /// `500 InternalServerException` "The server encountered an internal error while
    /// processing the request."
    pub fn internal_server_error() -> Self {
        Self::error(
            500,
            "InternalServerException",
            "The server encountered an internal error while processing the request.",
        )
    }

    /// `400 ValidationException` with `message`.
    pub fn validation(message: &str) -> Self {
        Self::error(400, "ValidationException", message)
    }

    /// `403 AccessDeniedException` "You don't have access to the model with the specified
    /// model ID."
    pub fn access_denied() -> Self {
        Self::error(
            403,
            "AccessDeniedException",
            "You don't have access to the model with the specified model ID.",
        )
    }

    /// `404 ResourceNotFoundException` "Model not found."
    pub fn not_found() -> Self {
        Self::error(404, "ResourceNotFoundException", "Model not found.")
    }

    /// `408 ModelTimeoutException` "Model has timed out in processing the request. Try your
    /// request again."
    pub fn model_timeout() -> Self {
        Self::error(
            408,
            "ModelTimeoutException",
            "Model has timed out in processing the request. Try your request again.",
        )
    }

    /// `424 ModelErrorException` "The system encountered an unexpected error during
    /// processing. Try your request again."
    pub fn model_error() -> Self {
        Self::error(
            424,
            "ModelErrorException",
            "The system encountered an unexpected error during processing. Try your request again.",
        )
    }

    /// A [`Fault::Stall`] that lasts until the simulator shuts down.
    pub fn stall() -> Self {
        Self::Stall(None)
    }

    /// A [`Fault::Stall`] released when `gate` opens (a clone of it is kept).
    pub fn stall_until(gate: &Gate) -> Self {
        Self::Stall(Some(gate.clone()))
    }

    /// A [`Fault::CutAfterEvents`].
    pub fn cut_after_events(events: usize) -> Self {
        Self::CutAfterEvents(events)
    }

    /// A [`Fault::ExceptionEvent`].
    pub fn exception_event(exception_type: &str, message: &str) -> Self {
        Self::ExceptionEvent {
            exception_type: exception_type.to_owned(),
            message: message.to_owned(),
        }
    }

    /// A `throttlingException` first event "Too many tokens, please wait before trying
    /// again." (Converse: `429 ThrottlingException`).
    pub fn throttling_event() -> Self {
        Self::exception_event("throttlingException", TOO_MANY_TOKENS)
    }
}

/// When a [`Failure`] applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// Every call.
    Always,
    /// The first `n` calls it sees after it was set; every later call gets the script.
    FirstCalls(usize),
    /// Calls while the simulator's clock is inside this window, measured from the moment the
    /// failure was set ([`crate::SimBuilder::start`] for the builder's): `start` inclusive,
    /// `end` exclusive. [`crate::SimHandle::advance_clock`] moves into and past it without
    /// sleeping.
    During(Range<Duration>),
}

/// A [`Fault`] and when it happens; set with [`crate::SimBuilder::failure`] /
/// [`crate::SimHandle::set_failure`] (one model id) or the `default_failure` variants (every
/// model id without its own).
#[derive(Debug, Clone)]
pub struct Failure {
    /// What goes wrong.
    pub fault: Fault,
    /// When.
    pub schedule: Schedule,
}

impl Failure {
    /// `fault` on every call.
    pub fn always(fault: Fault) -> Self {
        Self {
            fault,
            schedule: Schedule::Always,
        }
    }

    /// `fault` on the first `calls` calls, then the script.
    pub fn first_calls(calls: usize, fault: Fault) -> Self {
        Self {
            fault,
            schedule: Schedule::FirstCalls(calls),
        }
    }

    /// `fault` while the simulator's clock is in `window` (from when the failure is set).
    pub fn during(window: Range<Duration>, fault: Fault) -> Self {
        Self {
            fault,
            schedule: Schedule::During(window),
        }
    }
}

/// A [`Failure`] as set: when it was set, and how many calls it has seen since.
#[derive(Debug)]
pub(crate) struct ArmedFailure {
    failure: Failure,
    set_at: SystemTime,
    calls_seen: AtomicUsize,
}

impl ArmedFailure {
    pub(crate) fn new(failure: Failure, set_at: SystemTime) -> Self {
        Self {
            failure,
            set_at,
            calls_seen: AtomicUsize::new(0),
        }
    }

    /// The fault for one call arriving at `now`, if the schedule says this call fails.
    /// Counts the call.
    pub(crate) fn fault_for_call(&self, now: SystemTime) -> Option<&Fault> {
        let call = self.calls_seen.fetch_add(1, Ordering::SeqCst);
        let applies = match &self.failure.schedule {
            Schedule::Always => true,
            Schedule::FirstCalls(n) => call < *n,
            Schedule::During(window) => now
                .duration_since(self.set_at)
                .is_ok_and(|elapsed| window.contains(&elapsed)),
        };
        applies.then_some(&self.failure.fault)
    }
}

/// Calls received per model id, and a signal for each new one.
#[derive(Debug)]
pub(crate) struct CallCounter {
    per_model: Mutex<HashMap<String, usize>>,
    /// The total; every call bumps it, which wakes the waiters.
    total: watch::Sender<usize>,
}

impl Default for CallCounter {
    fn default() -> Self {
        Self {
            per_model: Mutex::new(HashMap::new()),
            total: watch::Sender::new(0),
        }
    }
}

impl CallCounter {
    pub(crate) fn count(&self, model_id: &str) {
        {
            let mut per_model = self.per_model.lock().unwrap_or_else(|e| e.into_inner());
            match per_model.get_mut(model_id) {
                Some(calls) => *calls += 1,
                None => {
                    per_model.insert(model_id.to_owned(), 1);
                }
            }
        }
        self.total.send_modify(|total| *total += 1);
    }

    pub(crate) fn calls(&self, model_id: &str) -> usize {
        self.per_model
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(model_id)
            .copied()
            .unwrap_or(0)
    }

    pub(crate) fn total(&self) -> usize {
        *self.total.borrow()
    }

    /// Resolves once `reached()` holds, checking after every call.
    pub(crate) async fn wait_until(&self, reached: impl Fn(&Self) -> bool) {
        // Subscribe before checking, so a call between the check and the wait is not missed.
        let mut changes = self.total.subscribe();
        while !reached(self) {
            // The sender lives as long as `self`: this cannot fail while we borrow it.
            if changes.changed().await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn fails(armed: &ArmedFailure, now: SystemTime) -> bool {
        armed.fault_for_call(now).is_some()
    }

    #[test]
    fn first_calls_fail_then_the_script_answers() {
        let armed = ArmedFailure::new(Failure::first_calls(2, Fault::throttling()), at(0));
        let outcomes: Vec<bool> = (0..4).map(|_| fails(&armed, at(0))).collect();
        assert_eq!(outcomes, [true, true, false, false]);
    }

    #[test]
    fn windows_are_measured_from_when_the_failure_was_set() {
        let window = Duration::from_secs(30)..Duration::from_secs(60);
        let armed = ArmedFailure::new(Failure::during(window, Fault::Close), at(100));
        assert!(!fails(&armed, at(129)));
        assert!(fails(&armed, at(130)));
        assert!(fails(&armed, at(159)));
        assert!(!fails(&armed, at(160)));
        // A clock before the moment it was set (cannot happen, but must not panic).
        assert!(!fails(&armed, at(50)));
    }

    #[test]
    fn always_fails() {
        let armed = ArmedFailure::new(Failure::always(Fault::Reset), at(0));
        assert!((0..3).all(|_| fails(&armed, at(0))));
    }

    #[tokio::test]
    async fn waiting_for_calls_sees_calls_made_meanwhile() {
        let counter = std::sync::Arc::new(CallCounter::default());
        counter.count("a");
        counter.wait_until(|c| c.calls("a") >= 1).await;
        let waiter = {
            let counter = std::sync::Arc::clone(&counter);
            tokio::spawn(async move { counter.wait_until(|c| c.calls("b") >= 2).await })
        };
        counter.count("b");
        counter.count("b");
        waiter.await.unwrap();
        assert_eq!((counter.calls("a"), counter.calls("b")), (1, 2));
        assert_eq!(counter.total(), 3);
        assert_eq!(counter.calls("c"), 0);
    }
}
