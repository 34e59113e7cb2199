//! The peer's messages: offers, removes and moves to apply or refuse, and
//! the answers to this side's own.

use super::{Core, OpId, Outcome, PeerMsg};

impl Core {
    pub(super) fn peer_msg(&mut self, _msg: PeerMsg) {}

    pub(super) fn done(&mut self, _op: OpId, _outcome: Outcome) {}
}
