//! Token usage in one normalised shape, whatever the provider reported.
//!
//! NORMALISED means the four token counts are additive parts that never overlap (the Anthropic
//! convention), so pricing multiplies each by its own price and sums:
//! - `input_tokens` EXCLUDES cache reads and cache writes; total input is
//!   `input_tokens + cache_read_tokens + cache_creation_tokens`. OpenAI and Gemini report a prompt
//!   count that INCLUDES cached tokens; their extractors subtract, or the cached part would be
//!   billed twice (at the full and the cached price) — the most common billing bug.
//! - `output_tokens` INCLUDES reasoning tokens (they are billed as output);
//! - `reasoning_tokens` is informational only and must not be added again.
//!
//! The per-format extractors live with their format (e.g. `openai::chat::usage_from_response`).

/// Token counts of one request, normalised (see the module documentation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Input tokens billed at the full input price: cache reads and writes excluded.
    pub input_tokens: u64,
    /// Output tokens, reasoning included.
    pub output_tokens: u64,
    /// Input tokens served from the provider's prompt cache.
    pub cache_read_tokens: u64,
    /// Input tokens written to the provider's prompt cache.
    pub cache_creation_tokens: u64,
    /// The part of `output_tokens` spent on reasoning; informational, already in the output.
    pub reasoning_tokens: u64,
}

impl Usage {
    /// Folds a later report of the same stream into this one. Providers repeat or refine usage
    /// as a stream goes on (Anthropic's `message_start` then `message_delta`, some OpenAI
    /// servers on every chunk); a later non-zero value replaces an earlier one, but a later zero
    /// never erases a value already seen (spec §7.3), because a zero there means "not reported
    /// in this event", not "none".
    pub fn merge_stream(&mut self, later: &Usage) {
        fn keep(current: &mut u64, later: u64) {
            if later != 0 {
                *current = later;
            }
        }
        keep(&mut self.input_tokens, later.input_tokens);
        keep(&mut self.output_tokens, later.output_tokens);
        keep(&mut self.cache_read_tokens, later.cache_read_tokens);
        keep(&mut self.cache_creation_tokens, later.cache_creation_tokens);
        keep(&mut self.reasoning_tokens, later.reasoning_tokens);
    }

    /// All input tokens, however billed: `input + cache_read + cache_creation`. This is the
    /// context size that tiered pricing selects on.
    #[must_use]
    pub fn total_input_tokens(&self) -> u64 {
        self.input_tokens
            .saturating_add(self.cache_read_tokens)
            .saturating_add(self.cache_creation_tokens)
    }

    /// True when nothing was reported (a stream that ended without any usage).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_zero_never_erases_earlier_value() {
        let mut usage = Usage {
            input_tokens: 120,
            cache_read_tokens: 1024,
            output_tokens: 1,
            ..Usage::default()
        };
        usage.merge_stream(&Usage {
            output_tokens: 87,
            reasoning_tokens: 64,
            ..Usage::default()
        });
        assert_eq!(
            usage,
            Usage {
                input_tokens: 120,
                output_tokens: 87,
                cache_read_tokens: 1024,
                cache_creation_tokens: 0,
                reasoning_tokens: 64,
            }
        );
        assert_eq!(usage.total_input_tokens(), 1144);
        assert!(!usage.is_empty());
        assert!(Usage::default().is_empty());
    }

    #[test]
    fn later_non_zero_replaces() {
        let mut usage = Usage {
            input_tokens: 10,
            ..Usage::default()
        };
        usage.merge_stream(&Usage {
            input_tokens: 12,
            ..Usage::default()
        });
        assert_eq!(usage.input_tokens, 12);
    }

    #[test]
    fn total_input_saturates() {
        let usage = Usage {
            input_tokens: u64::MAX,
            cache_read_tokens: 5,
            ..Usage::default()
        };
        assert_eq!(usage.total_input_tokens(), u64::MAX);
    }
}
