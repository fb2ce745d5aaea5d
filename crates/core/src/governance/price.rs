//! Model prices and the cost of an answer.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::chat::Usage;
use crate::options::ServiceTier;

/// USD per million tokens, per kind of token, and optional multipliers per service tier.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub input: f64,
    pub output: f64,
    #[serde(default)]
    pub cache_read: Option<f64>,
    #[serde(default)]
    pub cache_write: Option<f64>,
    /// Multiplier for `service_tier = "flex"` (e.g. 0.5).
    #[serde(default)]
    pub flex: Option<f64>,
    /// Multiplier for `service_tier = "priority"` (e.g. 1.75).
    #[serde(default)]
    pub priority: Option<f64>,
}

/// Routes compare as equal or not (configurations are compared in tests); a price holds no
/// NaN once [`Price::validate`] accepted it, so its equality is reflexive.
impl Eq for Price {}

/// A price field that is not a finite amount of at least 0 (or a multiplier not above 0).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{field}: {problem}")]
pub struct PriceError {
    /// The field's name, as configured (`input`, `flex`, ...).
    pub field: &'static str,
    pub problem: &'static str,
}

/// The cost of one answer, in micro-USD, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cost {
    pub input_micros: u64,
    pub output_micros: u64,
    pub cache_read_micros: u64,
    pub cache_write_micros: u64,
}

impl Cost {
    pub fn total_micros(&self) -> u64 {
        self.input_micros
            .saturating_add(self.output_micros)
            .saturating_add(self.cache_read_micros)
            .saturating_add(self.cache_write_micros)
    }

    /// In USD, for headers and metrics.
    pub fn total_usd(&self) -> f64 {
        self.total_micros() as f64 / 1_000_000.0
    }
}

impl Price {
    /// Every amount finite and not negative, every multiplier finite and above 0.
    pub fn validate(&self) -> Result<(), PriceError> {
        let amounts = [
            ("input", Some(self.input)),
            ("output", Some(self.output)),
            ("cache_read", self.cache_read),
            ("cache_write", self.cache_write),
        ];
        for (field, value) in amounts {
            if value.is_some_and(|v| !v.is_finite() || v < 0.0) {
                return Err(PriceError {
                    field,
                    problem: "must be a number of USD per million tokens, at least 0",
                });
            }
        }
        for (field, value) in [("flex", self.flex), ("priority", self.priority)] {
            if value.is_some_and(|v| !v.is_finite() || v <= 0.0) {
                return Err(PriceError {
                    field,
                    problem: "must be a multiplier above 0",
                });
            }
        }
        Ok(())
    }

    /// What `usage` costs at this price under `tier`. A price per million tokens is exactly
    /// micro-USD per token, so the arithmetic stays in integers of micro-USD after one
    /// rounding per kind. Cache reads and writes without their own price cost the input price.
    pub fn cost(&self, usage: &Usage, tier: Option<ServiceTier>) -> Cost {
        let multiplier = match tier {
            Some(ServiceTier::Flex) => self.flex.unwrap_or(1.0),
            Some(ServiceTier::Priority) => self.priority.unwrap_or(1.0),
            _ => 1.0,
        };
        let micros = |tokens: u64, per_million: f64| -> u64 {
            let value = tokens as f64 * per_million * multiplier;
            if value.is_finite() && value > 0.0 {
                value.round() as u64
            } else {
                0
            }
        };
        Cost {
            input_micros: micros(usage.input_tokens, self.input),
            output_micros: micros(usage.output_tokens, self.output),
            cache_read_micros: micros(
                usage.cache_read_input_tokens.unwrap_or(0),
                self.cache_read.unwrap_or(self.input),
            ),
            cache_write_micros: micros(
                usage.cache_write_input_tokens.unwrap_or(0),
                self.cache_write.unwrap_or(self.input),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_or_non_finite_amounts_and_zero_multipliers_are_refused() {
        let good = Price {
            input: 3.0,
            output: 15.0,
            cache_read: Some(0.0),
            flex: Some(0.5),
            ..Price::default()
        };
        assert_eq!(good.validate(), Ok(()));
        let refused = |price: Price| price.validate().map_err(|e| e.field);
        assert_eq!(
            refused(Price {
                input: -1.0,
                ..good
            }),
            Err("input")
        );
        assert_eq!(
            refused(Price {
                output: f64::NAN,
                ..good
            }),
            Err("output")
        );
        assert_eq!(
            refused(Price {
                cache_write: Some(f64::INFINITY),
                ..good
            }),
            Err("cache_write")
        );
        assert_eq!(
            refused(Price {
                priority: Some(0.0),
                ..good
            }),
            Err("priority")
        );
    }

    #[test]
    fn cost_is_tokens_times_price_per_million() {
        let price = Price {
            input: 3.0,
            output: 15.0,
            cache_read: Some(0.3),
            cache_write: Some(3.75),
            ..Price::default()
        };
        let usage = Usage {
            input_tokens: 1_000,
            output_tokens: 200,
            total_tokens: 1_200,
            cache_read_input_tokens: Some(10_000),
            cache_write_input_tokens: Some(2_000),
        };
        let cost = price.cost(&usage, None);
        assert_eq!(cost.input_micros, 3_000);
        assert_eq!(cost.output_micros, 3_000);
        assert_eq!(cost.cache_read_micros, 3_000);
        assert_eq!(cost.cache_write_micros, 7_500);
        assert_eq!(cost.total_micros(), 16_500);
        assert!((cost.total_usd() - 0.0165).abs() < 1e-12);
    }

    #[test]
    fn tier_multipliers_apply_and_missing_cache_prices_fall_back_to_input() {
        let price = Price {
            input: 1.0,
            output: 2.0,
            flex: Some(0.5),
            ..Price::default()
        };
        let usage = Usage {
            input_tokens: 100,
            output_tokens: 100,
            cache_read_input_tokens: Some(100),
            ..Usage::default()
        };
        assert_eq!(price.cost(&usage, None).total_micros(), 400);
        assert_eq!(
            price.cost(&usage, Some(ServiceTier::Flex)).total_micros(),
            200
        );
        assert_eq!(
            price
                .cost(&usage, Some(ServiceTier::Priority))
                .total_micros(),
            400
        );
    }
}
