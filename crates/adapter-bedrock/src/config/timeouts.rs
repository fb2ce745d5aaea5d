//! How long the adapter waits for Bedrock: the one set of defaults ([`Timeouts::default`]),
//! and the overrides a host configures per account and per model ([`TimeoutOverrides`]), each
//! level replacing only the limits it names.

use std::time::Duration;

use serde::Deserialize;

use super::values::InvalidValue;

/// A configured time limit in milliseconds; never zero (a zero limit fails every request).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u64")]
pub struct TimeLimit(Duration);

impl TryFrom<u64> for TimeLimit {
    type Error = InvalidValue;
    fn try_from(millis: u64) -> Result<Self, InvalidValue> {
        match millis {
            0 => Err(InvalidValue::zero()),
            ms => Ok(Self(Duration::from_millis(ms))),
        }
    }
}

impl TimeLimit {
    pub fn duration(self) -> Duration {
        self.0
    }
}

/// How long the adapter waits for Bedrock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP (and TLS) connection set-up.
    pub connect: Duration,
    /// From sending a request until the response headers arrive. A non-streamed Converse
    /// answer only starts once the model has finished, so this bounds generation time too.
    pub first_byte: Duration,
    /// The longest gap between two pieces of a response body (stream frames, or chunks of
    /// a Converse body).
    pub idle_stream: Duration,
    /// The whole call: a non-streamed one including its retries and the waits between them,
    /// a stream until its first event. `None`: no limit beyond the others.
    pub total: Option<Duration>,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            // Long generations take a while before a Converse answer starts; a client that
            // waits longer configures it.
            first_byte: Duration::from_secs(120),
            // Reasoning models can pause for a while between stream frames.
            idle_stream: Duration::from_secs(120),
            // Each attempt is bounded by the limits above and the attempts by the retry
            // settings; an overall deadline is the operator's choice.
            total: None,
        }
    }
}

/// Limits configured at one level (an account, a model, the server's defaults); the ones not
/// named keep the level above. Field names are the configuration keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutOverrides {
    pub connect_ms: Option<TimeLimit>,
    pub first_byte_ms: Option<TimeLimit>,
    pub stream_idle_ms: Option<TimeLimit>,
    pub total_ms: Option<TimeLimit>,
}

impl TimeoutOverrides {
    /// `base` with each limit named here in place of its own.
    pub fn apply_to(&self, base: Timeouts) -> Timeouts {
        let pick =
            |limit: Option<TimeLimit>, inherited| limit.map_or(inherited, TimeLimit::duration);
        Timeouts {
            connect: pick(self.connect_ms, base.connect),
            first_byte: pick(self.first_byte_ms, base.first_byte),
            idle_stream: pick(self.stream_idle_ms, base.idle_stream),
            total: self.total_ms.map(TimeLimit::duration).or(base.total),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(ms: u64) -> Option<TimeLimit> {
        Some(TimeLimit::try_from(ms).unwrap())
    }

    #[test]
    fn each_level_replaces_only_what_it_names() {
        let server = TimeoutOverrides {
            connect_ms: limit(2_000),
            stream_idle_ms: limit(45_000),
            ..TimeoutOverrides::default()
        }
        .apply_to(Timeouts::default());
        assert_eq!(server.connect, Duration::from_secs(2));
        assert_eq!(server.first_byte, Timeouts::default().first_byte);
        assert_eq!(server.idle_stream, Duration::from_secs(45));
        assert_eq!(server.total, None);

        let account = TimeoutOverrides {
            total_ms: limit(30_000),
            ..TimeoutOverrides::default()
        }
        .apply_to(server);
        let model = TimeoutOverrides {
            connect_ms: limit(500),
            first_byte_ms: limit(10_000),
            ..TimeoutOverrides::default()
        }
        .apply_to(account);
        assert_eq!(
            model,
            Timeouts {
                connect: Duration::from_millis(500),
                first_byte: Duration::from_secs(10),
                idle_stream: Duration::from_secs(45),
                total: Some(Duration::from_secs(30)),
            }
        );
    }

    #[test]
    fn zero_is_refused() {
        assert_eq!(
            TimeLimit::try_from(0).unwrap_err().to_string(),
            "must be greater than 0"
        );
    }
}
