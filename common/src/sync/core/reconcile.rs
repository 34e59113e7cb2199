//! The link's phases: at link-up both sides send their inventories and
//! each applies [`super::rule::winner`] to every path; the winner offers.

use super::{Core, FsTraits};

impl Core {
    pub(super) fn link_up(&mut self, _peer: FsTraits) {}

    pub(super) fn link_down(&mut self) {}
}
