//! Spend of this process not yet in the catalog snapshot. Records reach the database in batches
//! and the snapshot is re-read only on changes and periodically, so quota and balance checks add
//! what was spent here since the snapshot was loaded: a user cannot overshoot by a refresh
//! interval's worth of requests.
//!
//! Per payer (user, or standalone gateway key), spend is kept in one-second buckets for a bounded
//! window, so memory stays small whatever the request rate.

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use std::collections::VecDeque;

/// Buckets older than this are dropped (far longer than any catalog refresh interval).
const KEEP_SECS: i64 = 15 * 60;

/// Recent spend per payer.
#[derive(Debug, Default)]
pub struct SpendLedger {
    spend: DashMap<String, VecDeque<(i64, f64)>, foldhash::fast::RandomState>,
}

impl SpendLedger {
    /// Adds `usd` spent by `payer` at `at`.
    pub fn add(&self, payer: &str, at: DateTime<Utc>, usd: f64) {
        if usd <= 0.0 || !usd.is_finite() {
            return;
        }
        let second = at.timestamp();
        let mut buckets = self.spend.entry(payer.to_owned()).or_default();
        match buckets.back_mut() {
            Some((s, sum)) if *s == second => *sum += usd,
            _ => buckets.push_back((second, usd)),
        }
        while buckets
            .front()
            .is_some_and(|(s, _)| *s < second - KEEP_SECS)
        {
            buckets.pop_front();
        }
    }

    /// What `payer` spent from the second of `since` on (a spend in that very second counts:
    /// better to refuse one request early than to let one through late).
    pub fn since(&self, payer: &str, since: Option<DateTime<Utc>>) -> f64 {
        let Some(since) = since else { return 0.0 };
        let from = since.timestamp();
        self.spend.get(payer).map_or(0.0, |buckets| {
            buckets
                .iter()
                .filter(|(s, _)| *s >= from)
                .map(|(_, usd)| usd)
                .sum()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_spend_after_the_snapshot_and_forgets_old_buckets() {
        let ledger = SpendLedger::default();
        let t0 = DateTime::from_timestamp(1_000_000, 0).expect("valid");
        ledger.add("u", t0, 0.25);
        ledger.add("u", t0, 0.25);
        ledger.add("u", t0 + chrono::Duration::seconds(5), 1.0);
        ledger.add("other", t0, 9.0);
        assert_eq!(ledger.since("u", Some(t0)), 1.5);
        assert_eq!(
            ledger.since("u", Some(t0 + chrono::Duration::seconds(1))),
            1.0
        );
        assert_eq!(ledger.since("u", None), 0.0);
        assert_eq!(ledger.since("nobody", Some(t0)), 0.0);
        ledger.add("u", t0 + chrono::Duration::seconds(KEEP_SECS + 10), 2.0);
        assert_eq!(ledger.since("u", Some(t0)), 2.0, "old buckets are dropped");
    }
}
