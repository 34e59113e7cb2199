//! Paths that cannot be read or replaced right now (permissions, a file
//! held open on Windows, a read error): each is announced once when it
//! starts failing (and again only if the error changes), retried with a
//! doubling delay, and announced once more when it goes through. The
//! executor shows the list in `lab3 status`.

use serde::{Deserialize, Serialize};

use super::{Core, Direction, Effect, Timer};

/// One path that failed, as `lab3 status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failing {
    pub path: String,
    /// The last error, as the OS said it.
    pub error: String,
    /// Failures in a row.
    pub attempts: u32,
    /// When it first failed (ns since the epoch).
    pub since_ns: i64,
    /// When this side tries again; `None` where the peer does (a file this
    /// side could not replace is offered again by the peer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_ns: Option<i64>,
}

/// The delay before attempt `attempts + 1`: `first`, doubling, at most `max`.
pub fn backoff_ns(first: i64, max: i64, attempts: u32) -> i64 {
    let doublings = attempts.saturating_sub(1).min(32);
    first.saturating_mul(1i64 << doublings).min(max).max(first)
}

impl Core {
    /// `path` failed with `error`. `retry`: this side tries again (the
    /// timer is armed here); otherwise the peer will offer it again.
    pub(super) fn failed(&mut self, path: &str, direction: Direction, error: String, retry: bool) {
        let now = self.now_ns;
        let (first, max) = (self.cfg.retry_ns, self.cfg.retry_max_ns);
        let f = self
            .failing
            .entry(path.to_string())
            .or_insert_with(|| Failing {
                path: path.to_string(),
                error: String::new(),
                attempts: 0,
                since_ns: now,
                retry_ns: None,
            });
        f.attempts += 1;
        let news = f.error != error;
        f.error = error.clone();
        let at_ns = now + backoff_ns(first, max, f.attempts);
        f.retry_ns = retry.then_some(at_ns);
        if retry {
            self.emit(Effect::Arm {
                timer: Timer::Retry(path.to_string()),
                at_ns,
            });
        }
        if news {
            let detail = if retry {
                format!(
                    "{error}; retrying in {} s, then less often",
                    (at_ns - now) / 1_000_000_000
                )
            } else {
                error
            };
            self.announce("error", direction, path, None, detail);
        }
    }

    /// `path` went through (or is gone): no longer failing.
    pub(super) fn succeeded(&mut self, path: &str, direction: Direction) {
        if let Some(f) = self.failing.remove(path) {
            let detail = format!("after {} failed attempts", f.attempts);
            self.announce("recovered", direction, path, None, detail);
        }
    }

    /// The paths failing now, in path order.
    pub fn failing(&self) -> impl Iterator<Item = &Failing> {
        self.failing.values()
    }
}
