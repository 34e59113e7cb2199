//! Paths waiting for a moment to be looked at, ordered by when they are due,
//! so that finding the next deadline and taking the due paths cost a
//! logarithm, not a walk over every waiting path (a bulk receive leaves
//! thousands of them waiting at once).

use std::collections::{BTreeSet, HashMap};

use tokio::time::Instant;

/// A set of paths, each with one due time.
#[derive(Debug, Default)]
pub struct DueSet {
    at: HashMap<String, Instant>,
    order: BTreeSet<(Instant, String)>,
}

impl DueSet {
    /// When `path` is due, if it waits.
    pub fn get(&self, path: &str) -> Option<Instant> {
        self.at.get(path).copied()
    }

    /// Makes `path` due at `when` (replacing any earlier time).
    pub fn set(&mut self, path: String, when: Instant) {
        if let Some(old) = self.at.insert(path.clone(), when) {
            self.order.remove(&(old, path.clone()));
        }
        self.order.insert((when, path));
    }

    /// The earliest due time.
    pub fn next(&self) -> Option<Instant> {
        self.order.first().map(|(t, _)| *t)
    }

    /// Removes and returns every path due by `now`, earliest first.
    pub fn take_due(&mut self, now: Instant) -> Vec<String> {
        let mut out = Vec::new();
        while let Some((t, _)) = self.order.first() {
            if *t > now {
                break;
            }
            let (_, p) = self.order.pop_first().expect("non-empty");
            self.at.remove(&p);
            out.push(p);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn orders_by_time_and_replaces() {
        let t0 = Instant::now();
        let mut d = DueSet::default();
        d.set("b".into(), t0 + Duration::from_millis(20));
        d.set("a".into(), t0 + Duration::from_millis(10));
        d.set("b".into(), t0 + Duration::from_millis(5));
        assert_eq!(d.next(), Some(t0 + Duration::from_millis(5)));
        assert_eq!(d.take_due(t0 + Duration::from_millis(10)), ["b", "a"]);
        assert_eq!(d.next(), None);
        assert_eq!(d.get("a"), None);
    }
}
