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
                (
                    "cache_creation_price_per_1m",
                    tier.cache_creation_price_per_1m,
                ),
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

/// Token counts in the normalised form (input excludes cache reads and writes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenCounts {
    /// Input tokens that were neither read from nor written to a cache.
    pub input: u64,
    /// Output tokens (reasoning included).
    pub output: u64,
    /// Input tokens written to the prompt cache.
    pub cache_creation: u64,
    /// Input tokens read from the prompt cache.
    pub cache_read: u64,
}

/// What a request cost, nominal (what the user is charged) and actual (× the key's multiplier,
/// zero on free-tier providers), with the prices used.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cost {
    /// Input cost, USD.
    pub input: f64,
    /// Output cost, USD.
    pub output: f64,
    /// Cache-write cost, USD.
    pub cache_creation: f64,
    /// Cache-read cost, USD.
    pub cache_read: f64,
    /// Per-request price, USD (successful requests only).
    pub request: f64,
    /// Sum of the above, USD.
    pub total: f64,
    /// `total` × multiplier (0 for free tier).
    pub actual_total: f64,
    /// The multiplier applied.
    pub multiplier: f64,
    /// The tier's prices (per million tokens).
    pub tier: Option<PriceTier>,
}

impl TieredPricing {
    /// The tier for a context of `context_tokens`: the first whose bound covers it, else the last.
    pub fn tier_for(&self, context_tokens: u64) -> Option<&PriceTier> {
        self.tiers
            .iter()
            .find(|t| t.up_to.is_none_or(|bound| context_tokens <= bound))
            .or_else(|| self.tiers.last())
    }
}

/// Computes a request's cost (spec §7.5): the tier is chosen by the whole input context (input,
/// cache writes and cache reads); cache prices default to 1.25× (write) and 0.1× (read) the input
/// price; the per-request price applies to successful requests only.
pub fn compute_cost(
    pricing: &TieredPricing,
    price_per_request: Option<f64>,
    tokens: TokenCounts,
    success: bool,
    multiplier: f64,
    free_tier: bool,
) -> Cost {
    let context = tokens.input + tokens.cache_creation + tokens.cache_read;
    let Some(tier) = pricing.tier_for(context) else {
        return Cost::default();
    };
    let per = |count: u64, price: f64| count as f64 / 1_000_000.0 * price;
    let input = per(tokens.input, tier.input_price_per_1m);
    let output = per(tokens.output, tier.output_price_per_1m);
    let cache_creation = per(
        tokens.cache_creation,
        tier.cache_creation_price_per_1m
            .unwrap_or(tier.input_price_per_1m * 1.25),
    );
    let cache_read = per(
        tokens.cache_read,
        tier.cache_read_price_per_1m
            .unwrap_or(tier.input_price_per_1m * 0.1),
    );
    let request = if success {
        price_per_request.unwrap_or(0.0)
    } else {
        0.0
    };
    let total = input + output + cache_creation + cache_read + request;
    let multiplier = if free_tier { 0.0 } else { multiplier };
    Cost {
        input,
        output,
        cache_creation,
        cache_read,
        request,
        total,
        actual_total: total * multiplier,
        multiplier,
        tier: Some(tier.clone()),
    }
}

#[cfg(test)]
mod cost_tests {
    use super::*;

    #[test]
    fn cost_uses_the_context_tier_and_default_cache_prices() {
        let pricing = TieredPricing {
            tiers: vec![
                PriceTier {
                    up_to: Some(200_000),
                    input_price_per_1m: 3.0,
                    output_price_per_1m: 15.0,
                    cache_creation_price_per_1m: None,
                    cache_read_price_per_1m: None,
                },
                PriceTier {
                    up_to: None,
                    input_price_per_1m: 6.0,
                    output_price_per_1m: 22.5,
                    cache_creation_price_per_1m: None,
                    cache_read_price_per_1m: None,
                },
            ],
        };
        let tokens = TokenCounts {
            input: 1_000_000,
            output: 1_000_000,
            cache_creation: 0,
            cache_read: 0,
        };
        let cost = compute_cost(&pricing, Some(0.01), tokens, true, 0.5, false);
        // 1M context exceeds the first tier: the second applies.
        assert!((cost.input - 6.0).abs() < 1e-9);
        assert!((cost.output - 22.5).abs() < 1e-9);
        assert!((cost.total - 28.51).abs() < 1e-9);
        assert!((cost.actual_total - 14.255).abs() < 1e-9);
        let small = TokenCounts {
            input: 1000,
            output: 0,
            cache_creation: 1000,
            cache_read: 10_000,
        };
        let cost = compute_cost(&pricing, Some(0.01), small, false, 1.0, true);
        assert!((cost.cache_creation - 0.00375).abs() < 1e-12);
        assert!((cost.cache_read - 0.003).abs() < 1e-12);
        assert_eq!(cost.request, 0.0, "no per-request price on failure");
        assert_eq!(cost.actual_total, 0.0, "free tier");
    }
}
