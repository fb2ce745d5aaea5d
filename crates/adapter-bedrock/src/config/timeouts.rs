//! How long the adapter waits for Bedrock, with the one set of defaults.

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
        }
    }
}

impl Timeouts {
    /// The defaults with each configured limit in place of its default.
    pub fn with_limits(
        connect: Option<TimeLimit>,
        first_byte: Option<TimeLimit>,
        idle_stream: Option<TimeLimit>,
    ) -> Self {
        let defaults = Self::default();
        let pick = |limit: Option<TimeLimit>, default| limit.map_or(default, |TimeLimit(d)| d);
        Self {
            connect: pick(connect, defaults.connect),
            first_byte: pick(first_byte, defaults.first_byte),
            idle_stream: pick(idle_stream, defaults.idle_stream),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_limits_replace_the_defaults() {
        let limit = |ms| Some(TimeLimit::try_from(ms).unwrap());
        let timeouts = Timeouts::with_limits(limit(2_000), None, limit(45_000));
        assert_eq!(timeouts.connect, Duration::from_secs(2));
        assert_eq!(timeouts.first_byte, Timeouts::default().first_byte);
        assert_eq!(timeouts.idle_stream, Duration::from_secs(45));
        assert_eq!(
            TimeLimit::try_from(0).unwrap_err().to_string(),
            "must be greater than 0"
        );
    }
}
