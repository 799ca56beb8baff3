//! A bounded in-memory cache of computed values, in front of the database's: the
//! least recently used values go first once their digits exceed the byte budget.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

/// Computed values by cache key, at most `capacity` bytes of digits.
#[derive(Debug, Clone)]
pub struct Memo {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    capacity: usize,
    used: usize,
    /// Use counter: a value's last use, for the eviction order.
    clock: u64,
    values: HashMap<String, (u64, Arc<str>)>,
    by_use: BTreeMap<u64, String>,
}

impl Memo {
    /// An empty cache of at most `capacity` bytes of digits (0: caches nothing).
    pub fn new(capacity: usize) -> Self {
        Memo {
            inner: Arc::new(Mutex::new(Inner {
                capacity,
                ..Inner::default()
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The value of `key`, if cached; it becomes the most recently used.
    pub fn get(&self, key: &str) -> Option<Arc<str>> {
        let mut inner = self.lock();
        inner.clock += 1;
        let now = inner.clock;
        let (used, value) = inner.values.get_mut(key)?;
        let before = std::mem::replace(used, now);
        let value = value.clone();
        inner.by_use.remove(&before);
        inner.by_use.insert(now, key.to_owned());
        Some(value)
    }

    /// Caches `digits` under `key`, evicting the least recently used values to make
    /// room; a value larger than the whole budget is not cached.
    pub fn put(&self, key: &str, digits: Arc<str>) {
        let mut inner = self.lock();
        if digits.len() > inner.capacity {
            return;
        }
        if let Some((used, old)) = inner.values.remove(key) {
            inner.by_use.remove(&used);
            inner.used -= old.len();
        }
        while inner.used + digits.len() > inner.capacity {
            let Some((_, oldest)) = inner.by_use.pop_first() else {
                break;
            };
            if let Some((_, evicted)) = inner.values.remove(&oldest) {
                inner.used -= evicted.len();
            }
        }
        inner.clock += 1;
        let now = inner.clock;
        inner.used += digits.len();
        inner.values.insert(key.to_owned(), (now, digits));
        inner.by_use.insert(now, key.to_owned());
    }

    /// Bytes of digits held.
    pub fn used(&self) -> usize {
        self.lock().used
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digits(n: usize) -> Arc<str> {
        "7".repeat(n).into()
    }

    #[test]
    fn the_least_recently_used_value_goes_first_and_the_budget_holds() {
        let memo = Memo::new(10);
        memo.put("a", digits(4));
        memo.put("b", digits(4));
        assert!(memo.get("a").is_some(), "a is now the most recent");
        memo.put("c", digits(4));
        assert!(memo.get("b").is_none(), "b was the least recently used");
        assert!(memo.get("a").is_some() && memo.get("c").is_some());
        assert_eq!(memo.used(), 8);
    }

    #[test]
    fn a_value_over_the_budget_or_a_zero_budget_caches_nothing() {
        let memo = Memo::new(3);
        memo.put("big", digits(4));
        assert!(memo.get("big").is_none());
        let off = Memo::new(0);
        off.put("x", digits(1));
        assert_eq!((off.get("x"), off.used()), (None, 0));
    }

    #[test]
    fn putting_a_key_again_replaces_its_value() {
        let memo = Memo::new(10);
        memo.put("a", digits(4));
        memo.put("a", digits(6));
        assert_eq!(memo.get("a").map(|d| d.len()), Some(6));
        assert_eq!(memo.used(), 6);
    }
}
