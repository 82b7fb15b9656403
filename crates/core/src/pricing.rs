//! Price shapes (spec §7.5): tiered prices per million tokens, chosen by context size.

use serde::{Deserialize, Serialize};

/// A model's prices: one or more tiers by context size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TieredPricing {
    /// Ascending by `up_to`; the last tier has `up_to = None`.
    pub tiers: Vec<PriceTier>,
}

/// Prices for contexts up to `up_to` tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceTier {
    /// Upper bound of the context size (inclusive); `None` = no bound.
    #[serde(default)]
    pub up_to: Option<u64>,
    /// USD per million input tokens.
    pub input_price_per_1m: f64,
    /// USD per million output tokens.
    pub output_price_per_1m: f64,
    /// USD per million cache-write tokens; defaults to 1.25 × input when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_price_per_1m: Option<f64>,
    /// USD per million cache-read tokens; defaults to 0.1 × input when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_price_per_1m: Option<f64>,
}

impl TieredPricing {
    /// A single tier with no bound.
    pub fn flat(input_price_per_1m: f64, output_price_per_1m: f64) -> Self {
        Self {
            tiers: vec![PriceTier {
                up_to: None,
                input_price_per_1m,
                output_price_per_1m,
                cache_creation_price_per_1m: None,
                cache_read_price_per_1m: None,
            }],
        }
    }

    /// Checks the tiers: at least one, prices finite and non-negative, bounds strictly
    /// ascending, only the last unbounded. Returns a path-like location and reason.
    pub fn validate(&self) -> Result<(), (String, &'static str)> {
        if self.tiers.is_empty() {
            return Err(("tiers".into(), "at least one tier is required"));
        }
        let last = self.tiers.len() - 1;
        let mut previous: Option<u64> = None;
        for (i, tier) in self.tiers.iter().enumerate() {
            let prices = [
                ("input_price_per_1m", Some(tier.input_price_per_1m)),
                ("output_price_per_1m", Some(tier.output_price_per_1m)),
                ("cache_creation_price_per_1m", tier.cache_creation_price_per_1m),
                ("cache_read_price_per_1m", tier.cache_read_price_per_1m),
            ];
            for (name, price) in prices {
                if price.is_some_and(|p| !p.is_finite() || p < 0.0) {
                    return Err((
                        format!("tiers[{i}].{name}"),
                        "must be a non-negative number",
                    ));
                }
            }
            match (tier.up_to, i == last) {
                (None, false) => {
                    return Err((
                        format!("tiers[{i}].up_to"),
                        "only the last tier may be unbounded",
                    ));
                }
                (Some(bound), _) => {
                    if previous.is_some_and(|p| bound <= p) {
                        return Err((format!("tiers[{i}].up_to"), "bounds must ascend"));
                    }
                    previous = Some(bound);
                }
                (None, true) => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_bad_tier() {
        assert!(TieredPricing::flat(1.0, 2.0).validate().is_ok());
        let mut pricing = TieredPricing::flat(1.0, 2.0);
        pricing.tiers[0].output_price_per_1m = -1.0;
        assert_eq!(
            pricing.validate().map_err(|e| e.0),
            Err("tiers[0].output_price_per_1m".to_owned())
        );
        let unbounded_first = TieredPricing {
            tiers: vec![
                TieredPricing::flat(1.0, 1.0).tiers[0].clone(),
                TieredPricing::flat(2.0, 2.0).tiers[0].clone(),
            ],
        };
        assert_eq!(
            unbounded_first.validate().map_err(|e| e.0),
            Err("tiers[0].up_to".to_owned())
        );
    }
}
