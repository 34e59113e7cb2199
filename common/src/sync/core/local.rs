//! This side's changes: observations and scans, waiting for quiet, and
//! sending what changed (moves paired by identity).

use super::{Core, Entry, Timer};

impl Core {
    pub(super) fn observed(&mut self, _path: String, _entry: Option<Entry>, _closed: bool) {}

    pub(super) fn scanned(&mut self, _entries: Vec<(String, Entry)>) {}

    pub(super) fn timer(&mut self, _t: Timer) {}
}
