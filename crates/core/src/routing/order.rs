//! Deterministic ordering: the sort key of each priority mode, the per-client hash that spreads
//! equal priorities, and the choice among a provider model's upstream names (spec §1.5, §3.6,
//! §3.7).
//!
//! No randomness: ties are broken by SHA-256 of `"{affinity_key}:{id}"`, so a given client always
//! lands on the same key or name (its upstream prompt cache stays warm) while different clients
//! spread across them.

use crate::ApiFormat;
use crate::catalog::{Provider, ProviderKey, ProviderModel};
use crate::settings::PriorityMode;
use sha2::{Digest, Sha256};

/// The per-client tie-break hash: the first 8 bytes of `sha256("{affinity_key}:{id}")` as a
/// big-endian `u64` (the same number as the reference's "first 16 hex digits").
pub fn affinity_hash(affinity_key: &str, id: &str) -> u64 {
    let digest = tie_digest(affinity_key, id);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

fn tie_digest(affinity_key: &str, id: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(affinity_key.as_bytes());
    hasher.update(b":");
    hasher.update(id.as_bytes());
    hasher.finalize().into()
}

/// The upstream model name for a request (spec §1.5): among the mappings with a non-blank name
/// usable for `format` (no format list, or one containing it), the lowest priority (clamped to
/// at least 1) wins; ties go to the smallest `sha256("{affinity_key}:{name}")`, stable per client
/// and so friendly to upstream caches. No usable mapping → the provider model name.
pub fn upstream_model_name<'m>(
    model: &'m ProviderModel,
    format: ApiFormat,
    affinity_key: &str,
) -> &'m str {
    let usable = || {
        model.mappings.iter().filter(move |m| {
            !m.name.trim().is_empty()
                && m.api_formats
                    .as_ref()
                    .is_none_or(|formats| formats.contains(&format))
        })
    };
    let Some(best) = usable().map(|m| m.priority.max(1)).min() else {
        return &model.provider_model_name;
    };
    let mut tied = usable()
        .filter(|m| m.priority.max(1) == best)
        .map(|m| m.name.trim());
    let Some(mut chosen) = tied.next() else {
        return &model.provider_model_name;
    };
    // Hash only when there is a tie: the common single-mapping case costs nothing.
    let mut chosen_digest: Option<[u8; 32]> = None;
    for name in tied {
        let current = *chosen_digest.get_or_insert_with(|| tie_digest(affinity_key, chosen));
        let digest = tie_digest(affinity_key, name);
        if (digest, name) < (current, chosen) {
            chosen = name;
            chosen_digest = Some(digest);
        }
    }
    chosen
}

/// A candidate's place in the order. All candidates of one resolution share a variant, so the
/// derived (lexicographic) order is the mode's order; the key id last makes it total. `converted`
/// comes first: candidates speaking the client's own format go before those that need conversion.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum SortKey<'c> {
    /// Provider priority, then provider name (a stable tie-break between providers), then the
    /// key's priority inside its endpoint, then the per-client hash.
    Provider {
        converted: bool,
        provider_priority: i32,
        provider_name: &'c str,
        internal_priority: i32,
        hash: u64,
        key_id: &'c str,
    },
    /// The key's global priority, then the per-client hash (so equal priorities spread across
    /// providers too), then provider and key priority.
    GlobalKey {
        converted: bool,
        global_priority: i32,
        hash: u64,
        provider_priority: i32,
        internal_priority: i32,
        key_id: &'c str,
    },
}

/// Builds the sort key of one candidate. Missing priorities sort last.
pub(super) fn sort_key<'c>(
    mode: PriorityMode,
    provider: &'c Provider,
    key: &'c ProviderKey,
    affinity_key: &str,
    converted: bool,
) -> SortKey<'c> {
    let internal_priority = key.internal_priority.unwrap_or(i32::MAX);
    let hash = affinity_hash(affinity_key, &key.id);
    match mode {
        PriorityMode::Provider => SortKey::Provider {
            converted,
            provider_priority: provider.priority,
            provider_name: &provider.name,
            internal_priority,
            hash,
            key_id: &key.id,
        },
        PriorityMode::GlobalKey => SortKey::GlobalKey {
            converted,
            global_priority: key.global_priority.unwrap_or(i32::MAX),
            hash,
            provider_priority: provider.priority,
            internal_priority,
            key_id: &key.id,
        },
    }
}

impl SortKey<'_> {
    fn converted(&self) -> bool {
        match self {
            SortKey::Provider { converted, .. } | SortKey::GlobalKey { converted, .. } => {
                *converted
            }
        }
    }

    /// Whether `self` is strictly better than `other` by *priority*, not merely by a tie-break —
    /// the test for dropping an affinity entry. Provider mode: a lower provider priority, or a
    /// lower key priority inside the same provider (key priorities order keys within an
    /// endpoint and mean nothing across providers, and the provider name is only a tie-break).
    /// Global-key mode: a lower global priority. Whenever this holds, `self` also sorts first.
    /// A candidate served in the client's own format beats one that needs conversion.
    pub(super) fn beats(&self, other: &SortKey<'_>) -> bool {
        if self.converted() != other.converted() {
            return !self.converted();
        }
        match (self, other) {
            (
                SortKey::Provider {
                    provider_priority: a,
                    provider_name: a_name,
                    internal_priority: a_key,
                    ..
                },
                SortKey::Provider {
                    provider_priority: b,
                    provider_name: b_name,
                    internal_priority: b_key,
                    ..
                },
            ) => a < b || (a == b && a_name == b_name && a_key < b_key),
            (
                SortKey::GlobalKey {
                    global_priority: a, ..
                },
                SortKey::GlobalKey {
                    global_priority: b, ..
                },
            ) => a < b,
            // Never mixed within one resolution.
            _ => false,
        }
    }
}
