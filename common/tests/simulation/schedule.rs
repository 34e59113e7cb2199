//! A run's schedule, drawn from its seed: a list of steps (user actions,
//! inputs handled, effects done, messages delivered, watcher hints, timers,
//! time passing, crashes (a kill -9, or a power cut: see `durability`) and
//! restarts, link drops and reconnects, locks and unlocks). Each step
//! carries its own random number for what it picks, so a shrunk schedule
//! (steps left out) still runs.

use common::sync::core::Side;

use crate::prng::Rng;
use crate::user::{Act, ACTS};
use crate::world::World;

#[derive(Debug, Clone)]
pub enum Step {
    User(Side, Act, u64),
    Handle(Side),
    Exec(Side),
    Deliver(Side),
    Watch(Side, u64),
    Fire(Side),
    Rescan(Side),
    /// Time passes (ns).
    Advance(i64),
    Crash(Side),
    /// A crash that also loses what was not flushed to disk.
    PowerCut(Side),
    Restart(Side),
    Drop,
    Connect,
    Lock(u64),
    Unlock(u64),
}

fn side(rng: &mut Rng) -> Side {
    if rng.chance(50) {
        Side::A
    } else {
        Side::B
    }
}

/// `n` steps drawn from `rng`.
pub fn generate(rng: &mut Rng, n: usize) -> Vec<Step> {
    (0..n)
        .map(|_| {
            let s = side(rng);
            match rng.below(1000) {
                0..=139 => Step::User(s, *rng.pick(ACTS), rng.next()),
                140..=339 => Step::Handle(s),
                340..=499 => Step::Exec(s),
                500..=619 => Step::Deliver(s),
                620..=719 => Step::Watch(s, rng.next()),
                720..=759 => Step::Fire(s),
                760..=774 => Step::Rescan(s),
                775..=869 => Step::Advance(if rng.chance(85) {
                    1_000_000 * (1 + rng.below(60) as i64)
                } else {
                    1_000_000_000 * (1 + rng.below(5) as i64)
                }),
                870..=876 => Step::Crash(s),
                877..=879 => Step::PowerCut(s),
                880..=919 => Step::Restart(s),
                920..=929 => Step::Drop,
                930..=969 => Step::Connect,
                970..=984 => Step::Lock(rng.next()),
                _ => Step::Unlock(rng.next()),
            }
        })
        .collect()
}

/// Takes one step.
pub fn apply(w: &mut World, step: &Step) {
    match *step {
        Step::User(s, act, r) => crate::user::act(w, s, act, r),
        Step::Handle(s) => {
            w.handle(s);
        }
        Step::Exec(s) => {
            w.exec(s);
        }
        Step::Deliver(s) => {
            w.deliver(s);
        }
        Step::Watch(s, r) => {
            w.watch(s, r);
        }
        Step::Fire(s) => {
            w.fire(s);
        }
        Step::Rescan(s) => w.rescan(s),
        Step::Advance(ns) => w.now += ns,
        Step::Crash(s) => w.crash(s),
        Step::PowerCut(s) => w.power_cut(s),
        Step::Restart(s) => w.restart(s),
        Step::Drop => w.drop_link(),
        Step::Connect => {
            w.connect();
        }
        Step::Lock(r) => {
            let p = w.names[(r % w.names.len() as u64) as usize];
            w.lock(p, true);
        }
        Step::Unlock(r) => {
            let locked: Vec<String> = w.t.locks.keys().cloned().collect();
            if !locked.is_empty() {
                let p = locked[(r % locked.len() as u64) as usize].clone();
                w.lock(&p, false);
            }
        }
    }
}
