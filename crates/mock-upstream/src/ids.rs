//! Provider-looking identifiers (`chatcmpl-…`, `msg_01…`) and timestamps.
//!
//! Ids only need to be unique and plausible, not unpredictable, so they come
//! from a counter mixed with the start time rather than from an RNG crate.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static COUNTER: AtomicU64 = AtomicU64::new(0);
static SEED: OnceLock<u64> = OnceLock::new();

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// SplitMix64: a cheap bijective mixer, so distinct inputs give distinct
/// outputs.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn next() -> u64 {
    let seed = *SEED.get_or_init(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    });
    mix(seed ^ mix(COUNTER.fetch_add(1, Ordering::Relaxed)))
}

/// `prefix` followed by `len` base-62 characters.
pub(crate) fn id(prefix: &str, len: usize) -> String {
    let mut out = String::with_capacity(prefix.len() + len);
    out.push_str(prefix);
    let mut bits = next();
    for i in 0..len {
        // A u64 holds about 10 base-62 digits; refill before running dry.
        if i % 10 == 9 {
            bits = next();
        }
        let digit = usize::try_from(bits % 62).unwrap_or(0);
        out.push(char::from(ALPHABET[digit]));
        bits /= 62;
    }
    out
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_distinct_and_shaped() {
        let a = super::id("msg_01", 22);
        let b = super::id("msg_01", 22);
        assert_ne!(a, b);
        assert_eq!(a.len(), 28);
        assert!(a[6..].chars().all(|c| c.is_ascii_alphanumeric()));
    }
}
