//! The few paths that hold one file identity, in path order: what the
//! core's identity indexes keep per identity. Almost always one path (more
//! for hard links, and for a moment during a move), so one path is held
//! as it is: a `BTreeSet<String>` of one allocates a whole B-tree node
//! (about 280 bytes), twice per file with the two indexes, which was the
//! largest share of a server's memory per file on a big tree.

/// One path, or several in order (iterated as a `BTreeSet` would be, so
/// the core's choices do not change).
#[derive(Debug, Clone)]
pub enum PathSet {
    One(String),
    Many(Vec<String>),
}

impl PathSet {
    pub fn new(path: String) -> PathSet {
        PathSet::One(path)
    }

    /// Adds `path`; false if it was there.
    pub fn insert(&mut self, path: String) -> bool {
        match self {
            PathSet::One(p) if *p == path => false,
            PathSet::One(p) => {
                let p = std::mem::take(p);
                let mut v = vec![p, path];
                v.sort_unstable();
                *self = PathSet::Many(v);
                true
            }
            PathSet::Many(v) => match v.binary_search(&path) {
                Ok(_) => false,
                Err(i) => {
                    v.insert(i, path);
                    true
                }
            },
        }
    }

    /// Takes `path` out; false if it was not there. The last path of a
    /// `One` stays until the caller drops an [`PathSet::is_empty`] set.
    pub fn remove(&mut self, path: &str) -> bool {
        match self {
            PathSet::One(p) if p == path => {
                *self = PathSet::Many(Vec::new());
                true
            }
            PathSet::One(_) => false,
            PathSet::Many(v) => match v.binary_search_by(|p| p.as_str().cmp(path)) {
                Ok(i) => {
                    v.remove(i);
                    true
                }
                Err(_) => false,
            },
        }
    }

    pub fn is_empty(&self) -> bool {
        matches!(self, PathSet::Many(v) if v.is_empty())
    }

    /// The paths, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, String> {
        match self {
            PathSet::One(p) => std::slice::from_ref(p).iter(),
            PathSet::Many(v) => v.iter(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::PathSet;
    use std::collections::BTreeSet;

    #[test]
    fn holds_and_orders_paths_as_a_btreeset_does() {
        let ops = [
            ("b", true),
            ("a", true),
            ("b", true),
            ("c", true),
            ("a", false),
            ("b", false),
            ("c", false),
            ("d", true),
            ("d", false),
        ];
        let mut set = PathSet::new("m".into());
        let mut want = BTreeSet::from(["m".to_string()]);
        for (p, add) in ops {
            let (got, expected) = if add {
                (set.insert(p.into()), want.insert(p.into()))
            } else {
                (set.remove(p), want.remove(p))
            };
            assert_eq!(got, expected, "{p} {add}");
            assert!(set.iter().eq(want.iter()), "{set:?} {want:?}");
            assert_eq!(set.is_empty(), want.is_empty());
        }
        assert!(set.remove("m"));
        assert!(set.is_empty());
        assert!(!set.remove("m"));
    }
}
