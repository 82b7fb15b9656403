//! Runtime behaviour rules set through the control API: storage, matching
//! (first match in creation order wins) and `times` expiry.
//!
//! Rules are read on every API request and written rarely, so they sit
//! behind a `RwLock` whose guard is only ever held in synchronous code;
//! `times` is an atomic countdown so matching needs only the read lock.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use serde::{Deserialize, Serialize};

use crate::behaviour::Behaviour;

/// The body of `POST /_mock/rules`: which requests to match (every present
/// condition must hold) and what they should suffer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// The credential the request must carry (any of the four styles).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The routed path (after `/_b/` stripping) must start with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    /// The requested model must equal this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Apply to the next N matching requests only (also read from
    /// `behaviour.times` when absent here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u64>,
    /// What matching requests get.
    #[serde(default)]
    pub behaviour: Behaviour,
}

/// One stored rule, as listed by `GET /_mock/rules`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleInfo {
    /// The id returned when the rule was added.
    pub id: u64,
    /// The credential condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The path prefix condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    /// The model condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// `times` as given when the rule was added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u64>,
    /// What matching requests get.
    pub behaviour: Behaviour,
    /// Applications left, when the rule has `times`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining: Option<u64>,
}

#[derive(Debug)]
struct Rule {
    id: u64,
    spec: RuleSpec,
    behaviour: Arc<Behaviour>,
    remaining: Option<AtomicU64>,
}

impl Rule {
    fn matches(&self, key: Option<&str>, path: &str, model: Option<&str>) -> bool {
        let s = &self.spec;
        s.key.as_deref().is_none_or(|k| key == Some(k))
            && s.path_prefix.as_deref().is_none_or(|p| path.starts_with(p))
            && s.model.as_deref().is_none_or(|m| model == Some(m))
    }
}

/// The rule list.
#[derive(Debug, Default)]
pub(crate) struct Rules {
    next_id: AtomicU64,
    /// Mirrors `list.len()` so that the common no-rules case skips the lock.
    len: AtomicUsize,
    list: RwLock<Vec<Arc<Rule>>>,
}

impl Rules {
    pub(crate) fn add(&self, spec: RuleSpec) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let times = spec.times.or(spec.behaviour.times);
        let rule = Rule {
            id,
            behaviour: Arc::new(spec.behaviour.clone()),
            spec,
            remaining: times.map(AtomicU64::new),
        };
        let mut list = self.list.write().unwrap_or_else(PoisonError::into_inner);
        list.push(Arc::new(rule));
        self.len.store(list.len(), Ordering::Release);
        id
    }

    pub(crate) fn remove(&self, id: u64) -> bool {
        let mut list = self.list.write().unwrap_or_else(PoisonError::into_inner);
        let before = list.len();
        list.retain(|r| r.id != id);
        self.len.store(list.len(), Ordering::Release);
        list.len() != before
    }

    pub(crate) fn clear(&self) {
        let mut list = self.list.write().unwrap_or_else(PoisonError::into_inner);
        list.clear();
        self.len.store(0, Ordering::Release);
    }

    pub(crate) fn list(&self) -> Vec<RuleInfo> {
        let list = self.list.read().unwrap_or_else(PoisonError::into_inner);
        list.iter()
            .map(|r| RuleInfo {
                id: r.id,
                key: r.spec.key.clone(),
                path_prefix: r.spec.path_prefix.clone(),
                model: r.spec.model.clone(),
                times: r.spec.times.or(r.spec.behaviour.times),
                behaviour: r.spec.behaviour.clone(),
                remaining: r.remaining.as_ref().map(|n| n.load(Ordering::Acquire)),
            })
            .collect()
    }

    /// The behaviour of the first live matching rule, consuming one of its
    /// `times`.
    pub(crate) fn select(
        &self,
        key: Option<&str>,
        path: &str,
        model: Option<&str>,
    ) -> Option<Arc<Behaviour>> {
        if self.len.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut spent = false;
        let found = {
            let list = self.list.read().unwrap_or_else(PoisonError::into_inner);
            let mut found = None;
            for rule in list.iter().filter(|r| r.matches(key, path, model)) {
                let Some(remaining) = &rule.remaining else {
                    found = Some(Arc::clone(&rule.behaviour));
                    break;
                };
                // Atomically take one application, if any is left; two
                // concurrent requests can never both take the last one.
                match remaining
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                {
                    Ok(before) => {
                        spent |= before == 1;
                        found = Some(Arc::clone(&rule.behaviour));
                        break;
                    }
                    Err(_) => spent = true,
                }
            }
            found
        };
        if spent {
            let mut list = self.list.write().unwrap_or_else(PoisonError::into_inner);
            list.retain(|r| {
                r.remaining
                    .as_ref()
                    .is_none_or(|n| n.load(Ordering::Acquire) > 0)
            });
            self.len.store(list.len(), Ordering::Release);
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_match_wins_and_times_expire() {
        let rules = Rules::default();
        let a = rules.add(RuleSpec {
            key: Some("k1".into()),
            times: Some(2),
            behaviour: Behaviour {
                status: Some(500),
                ..Behaviour::default()
            },
            ..RuleSpec::default()
        });
        rules.add(RuleSpec {
            path_prefix: Some("/v1/".into()),
            behaviour: Behaviour {
                status: Some(429),
                ..Behaviour::default()
            },
            ..RuleSpec::default()
        });
        let pick = |k| rules.select(k, "/v1/x", None).and_then(|b| b.status);
        assert_eq!(pick(Some("k1")), Some(500));
        assert_eq!(pick(Some("k1")), Some(500));
        assert_eq!(pick(Some("k1")), Some(429));
        assert_eq!(pick(None), Some(429));
        assert_eq!(rules.list().len(), 1);
        assert!(!rules.remove(a));
        assert_eq!(rules.select(None, "/other", None), None);
    }
}
