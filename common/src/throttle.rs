//! Slowing down whoever guesses the token, and only them.
//!
//! Each remote address that failed a token proof must wait before its next
//! proof is even checked: one more second per failure in a row (up to
//! [`MAX_WAIT`]); a proof that arrives earlier is refused unchecked, at
//! once, so waiting costs the server no connection slot. While an address
//! has failures, only one of its proofs is checked at a time (the check
//! books the next turn), so parallel connections do not multiply its
//! guesses. A good proof clears the address's record; other addresses
//! never wait.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The longest an address waits between two checked proofs.
pub const MAX_WAIT: Duration = Duration::from_secs(30);
/// How long after its last failure an address is forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(600);
/// Most addresses remembered; past that the oldest records go.
const MAX_ADDRESSES: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    /// No proof from this address is checked before this.
    next_check: Instant,
    last_failure: Instant,
}

/// Failed proofs by remote address.
#[derive(Debug, Default)]
pub struct Throttle {
    records: Mutex<HashMap<IpAddr, Record>>,
}

impl Throttle {
    /// May a proof from `ip` be checked now? `Err(wait)`: not for `wait`.
    /// An `Ok` for an address with failures books its turn: the next check
    /// waits for this one's outcome (or for the penalty to pass).
    pub fn may_check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut records = self.records.lock().unwrap();
        let Some(r) = records.get_mut(&ip) else {
            return Ok(());
        };
        if now < r.next_check {
            return Err(r.next_check - now);
        }
        r.next_check = now + wait_after(r.failures);
        Ok(())
    }

    /// A proof from `ip` failed.
    pub fn failed(&self, ip: IpAddr, now: Instant) {
        let mut records = self.records.lock().unwrap();
        if records.len() >= MAX_ADDRESSES {
            records.retain(|_, r| now.duration_since(r.last_failure) < FORGET_AFTER);
            if records.len() >= MAX_ADDRESSES {
                let oldest = records
                    .iter()
                    .min_by_key(|(_, r)| r.last_failure)
                    .map(|(ip, _)| *ip);
                oldest.map(|ip| records.remove(&ip));
            }
        }
        let r = records.entry(ip).or_insert(Record {
            failures: 0,
            next_check: now,
            last_failure: now,
        });
        if now.duration_since(r.last_failure) >= FORGET_AFTER {
            r.failures = 0;
        }
        r.failures = r.failures.saturating_add(1);
        r.last_failure = now;
        r.next_check = now + wait_after(r.failures);
    }

    /// A proof from `ip` was good: its record goes.
    pub fn succeeded(&self, ip: IpAddr) {
        self.records.lock().unwrap().remove(&ip);
    }
}

/// After `failures` failures in a row, the wait before the next check.
fn wait_after(failures: u32) -> Duration {
    (Duration::from_secs(1) * failures).min(MAX_WAIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_make_that_address_wait_longer_and_others_not_at_all() {
        let t = Throttle::default();
        let (bad, good): (IpAddr, IpAddr) =
            ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let t0 = Instant::now();
        assert!(t.may_check(bad, t0).is_ok());
        t.failed(bad, t0);
        assert_eq!(t.may_check(bad, t0), Err(Duration::from_secs(1)));
        assert!(t.may_check(good, t0).is_ok());
        let t1 = t0 + Duration::from_secs(1);
        assert!(t.may_check(bad, t1).is_ok());
        // Booked: a parallel proof from the same address waits its turn.
        assert!(t.may_check(bad, t1).is_err());
        t.failed(bad, t1);
        assert_eq!(t.may_check(bad, t1), Err(Duration::from_secs(2)));
        for i in 0..100 {
            t.failed(bad, t1 + Duration::from_millis(i));
        }
        let wait = t
            .may_check(bad, t1 + Duration::from_millis(99))
            .unwrap_err();
        assert_eq!(wait, MAX_WAIT);
        // A good proof clears the record.
        t.succeeded(bad);
        assert!(t.may_check(bad, t1).is_ok());
    }

    #[test]
    fn the_table_stays_bounded() {
        let t = Throttle::default();
        let now = Instant::now();
        for i in 0..(MAX_ADDRESSES as u32 + 10) {
            t.failed(IpAddr::from(i.to_be_bytes()), now);
        }
        assert!(t.records.lock().unwrap().len() <= MAX_ADDRESSES);
    }
}
