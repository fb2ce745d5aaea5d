//! `[accounts.X.retry]`: how many times one request may be tried (AWS's standard retry mode;
//! what is retried and how long to wait between attempts is in [`crate::retry`]).

use serde::Deserialize;

use super::values::InvalidValue;

/// How often a request may be tried in all, first attempt included: 1 means no retry.
/// At most [`MaxAttempts::MAX`]: more attempts only hold a client longer against an upstream
/// that keeps refusing, and the retry quota stops them anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u64")]
pub struct MaxAttempts(u32);

impl MaxAttempts {
    pub const MAX: u32 = 10;
    /// AWS's standard retry mode: three attempts.
    pub const DEFAULT: Self = Self(3);

    pub fn get(self) -> u32 {
        self.0
    }
}

impl Default for MaxAttempts {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl TryFrom<u64> for MaxAttempts {
    type Error = InvalidValue;
    fn try_from(attempts: u64) -> Result<Self, InvalidValue> {
        match u32::try_from(attempts) {
            Ok(0) => Err(InvalidValue::new(
                "must be at least 1 (1 means the request is not retried)",
            )),
            Ok(n) if n <= Self::MAX => Ok(Self(n)),
            _ => Err(InvalidValue::new(format!("must be at most {}", Self::MAX))),
        }
    }
}

/// An account's retry settings, `[accounts.X.retry]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Attempts per request on this account, the first included.
    #[serde(default)]
    pub max_attempts: MaxAttempts,
}

impl RetryConfig {
    /// One attempt, never retried.
    pub const NO_RETRIES: Self = Self {
        max_attempts: MaxAttempts(1),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_are_between_one_and_ten() {
        assert_eq!(MaxAttempts::default().get(), 3);
        assert_eq!(MaxAttempts::try_from(1).unwrap().get(), 1);
        assert_eq!(MaxAttempts::try_from(10).unwrap().get(), 10);
        assert_eq!(
            MaxAttempts::try_from(0).unwrap_err().to_string(),
            "must be at least 1 (1 means the request is not retried)"
        );
        for too_many in [11, u64::from(u32::MAX) + 1] {
            assert_eq!(
                MaxAttempts::try_from(too_many).unwrap_err().to_string(),
                "must be at most 10"
            );
        }
    }
}
