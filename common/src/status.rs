//! `lab3 status` as Server A assembles it from both sides (Server B's own
//! per-side reports merged into A's) and as clients show it (its JSON form),
//! said once here so that the command line and the web page agree.

use serde_json::json;

use crate::meta::rfc3339_utc;
use crate::protocol::{FailingPath, LinkStatus, Message};

impl LinkStatus {
    /// Adds Server B's per-side reports to this one, Server A's: the names
    /// either side holds that the other cannot store, B's start-up scan
    /// (`peer_scanning`), and either side's
    /// watch limit, each said with whose it is (`server A: ...; server B:
    /// ...`). The link's own state (up, transfers, bytes) is A's view and
    /// stays as it is.
    pub fn merge_peer(&mut self, peer: LinkStatus) {
        self.names.extend(peer.names);
        self.peer_scanning = peer.scanning;
        let limits: Vec<String> = [("A", self.watch_limit.take()), ("B", peer.watch_limit)]
            .into_iter()
            .filter_map(|(side, m)| m.map(|m| format!("server {side}: {m}")))
            .collect();
        self.watch_limit = (!limits.is_empty()).then(|| limits.join("; "));
    }
}

/// A `Status` answer as a client shows it, whichever server answered:
/// which address is Server A's and which Server B's, and whose
/// certificate is whose. `lab3 status` and the web page's `/api/status`
/// both print [`StatusView::json`], so the two never differ.
pub struct StatusView<'a> {
    /// The `Status` answer (anything else shows as nothing).
    pub status: &'a Message,
    pub addr_a: &'a str,
    pub addr_b: &'a str,
    pub fingerprint_a: Option<String>,
    pub fingerprint_b: Option<String>,
    /// Server B answered (Server A was down): the status's peer is Server
    /// A, its skew A's clock against B's, and the locks are not known.
    pub from_b: bool,
}

impl<'a> StatusView<'a> {
    /// `server`: the address that answered; `seen`: its certificate as the
    /// connection saw it (else the one the status says it has).
    pub fn new(server: &'a str, seen: Option<String>, status: &'a Message, from_b: bool) -> Self {
        let (peer, fingerprint, peer_fingerprint) = match status {
            Message::Status {
                peer,
                fingerprint,
                peer_fingerprint,
                ..
            } => (peer.as_str(), fingerprint, peer_fingerprint),
            _ => ("", &None, &None),
        };
        let answered = seen.or_else(|| fingerprint.clone());
        let (addr_a, addr_b, fingerprint_a, fingerprint_b) = if from_b {
            (peer, server, None, answered)
        } else {
            (server, peer, answered, peer_fingerprint.clone())
        };
        StatusView {
            status,
            addr_a,
            addr_b,
            fingerprint_a,
            fingerprint_b,
            from_b,
        }
    }

    /// Each side's start-up scan while it runs, entries so far (A's, B's);
    /// B's own answer knows only its own.
    pub fn scanning(&self) -> (Option<u32>, Option<u32>) {
        let Message::Status { link, .. } = self.status else {
            return (None, None);
        };
        if self.from_b {
            (None, link.scanning)
        } else {
            (link.scanning, link.peer_scanning)
        }
    }

    /// The contract's JSON form of the status (`lab3 status --json`).
    pub fn json(&self) -> serde_json::Value {
        let Message::Status {
            sync,
            link,
            locks,
            versions,
            failing,
            set_aside,
            ..
        } = self.status
        else {
            return serde_json::Value::Null;
        };
        let (locks, queued) = if self.from_b {
            (json!(null), json!(null))
        } else {
            let queued: usize = locks.iter().map(|l| l.queued).sum();
            (json!(locks), json!(queued))
        };
        let (scan_a, scan_b) = self.scanning();
        json!({
            "server_a": self.addr_a,
            "server_b": self.addr_b,
            "answered_by": if self.from_b { "b" } else { "a" },
            "fingerprint_a": self.fingerprint_a,
            "fingerprint_b": self.fingerprint_b,
            "sync": sync,
            "link": {
                "up": link.up,
                "since": link.since_ns.map(rfc3339_utc),
                "clock_skew_ns": link.clock_skew_ns,
                "last_reconcile": link.last_reconcile_ns.map(rfc3339_utc),
                "sending": link.sending,
                "receiving": link.receiving,
                "sent_bytes": link.sent_bytes,
                "received_bytes": link.received_bytes,
                "reused_bytes": link.reused_bytes,
                "watch_limit": link.watch_limit,
            },
            "scanning": {"a": scan_a, "b": scan_b},
            "locks": locks,
            "queued": queued,
            "versions": versions,
            "names": link.names,
            "failing": failing.iter().map(|FailingPath { side, failing: f }| json!({
                "side": side,
                "path": f.path,
                "error": f.error,
                "attempts": f.attempts,
                "since": rfc3339_utc(f.since_ns),
                "retry": f.retry_ns.map(rfc3339_utc),
            })).collect::<Vec<_>>(),
            "set_aside": set_aside.iter().map(|s| json!({
                "side": s.side,
                "path": s.path,
                "what": s.what,
                "at": s.at,
                "time": rfc3339_utc(s.time_ns),
            })).collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::StatusView;
    use crate::protocol::{LinkStatus, LockInfo, Message, UnsyncedName};

    fn name(path: &str, side: &str) -> UnsyncedName {
        UnsyncedName {
            path: path.into(),
            side: side.into(),
            why: "a name Windows cannot store".into(),
        }
    }

    #[test]
    fn merge_peer_keeps_both_sides_names_and_says_whose_watch_limit() {
        let mut a = LinkStatus {
            up: true,
            sending: 2,
            names: vec![name("a:b", "A")],
            watch_limit: Some("raise fs.inotify.max_user_watches".into()),
            ..LinkStatus::default()
        };
        let b = LinkStatus {
            up: false,
            sending: 7,
            names: vec![name("CON", "B")],
            watch_limit: Some("raise it at B too".into()),
            ..LinkStatus::default()
        };
        a.merge_peer(b);
        assert_eq!(a.names, vec![name("a:b", "A"), name("CON", "B")]);
        assert_eq!(
            a.watch_limit.as_deref(),
            Some("server A: raise fs.inotify.max_user_watches; server B: raise it at B too")
        );
        // The link itself is A's view.
        assert!(a.up);
        assert_eq!(a.sending, 2);
    }

    #[test]
    fn merge_peer_names_the_one_side_with_a_watch_limit() {
        let mut a = LinkStatus::default();
        a.merge_peer(LinkStatus {
            watch_limit: Some("rescanned every 3 s".into()),
            ..LinkStatus::default()
        });
        assert_eq!(
            a.watch_limit.as_deref(),
            Some("server B: rescanned every 3 s")
        );

        let mut a = LinkStatus {
            watch_limit: Some("rescanned every 3 s".into()),
            ..LinkStatus::default()
        };
        a.merge_peer(LinkStatus::default());
        assert_eq!(
            a.watch_limit.as_deref(),
            Some("server A: rescanned every 3 s")
        );
    }

    #[test]
    fn each_sides_start_up_scan_shows_under_its_letter() {
        let mut a = LinkStatus {
            scanning: Some(412_000),
            ..LinkStatus::default()
        };
        a.merge_peer(LinkStatus {
            scanning: Some(7),
            ..LinkStatus::default()
        });
        let status = Message::Status {
            versions: Vec::new(),
            failing: Vec::new(),
            set_aside: Vec::new(),
            time_ns: 0,
            peer: "b:1".into(),
            sync: true,
            link: a,
            locks: Vec::new(),
            fingerprint: None,
            peer_fingerprint: None,
        };
        let doc = StatusView::new("a:1", None, &status, false).json();
        assert_eq!(doc["scanning"], serde_json::json!({"a": 412_000, "b": 7}));
        // Server B answering knows its own scan only.
        let doc = StatusView::new("b:1", None, &status, true).json();
        assert_eq!(
            doc["scanning"],
            serde_json::json!({"a": null, "b": 412_000})
        );
    }

    #[test]
    fn merge_peer_of_nothing_leaves_nothing() {
        let mut a = LinkStatus::default();
        a.merge_peer(LinkStatus::default());
        assert_eq!(a, LinkStatus::default());
    }

    /// A status answer whose peer is at `peer`.
    fn status_message(peer: &str) -> Message {
        Message::Status {
            versions: Vec::new(),
            failing: Vec::new(),
            set_aside: Vec::new(),
            time_ns: 0,
            peer: peer.into(),
            sync: true,
            link: LinkStatus {
                up: true,
                sending: 1,
                ..LinkStatus::default()
            },
            locks: vec![LockInfo {
                name: "f.txt".into(),
                queued: 2,
            }],
            fingerprint: Some("sha256:aa".into()),
            peer_fingerprint: Some("sha256:bb".into()),
        }
    }

    #[test]
    fn status_from_a_names_a_as_the_server_that_answered() {
        let status = status_message("b.example:6001");
        let doc = StatusView::new("a.example:6000", None, &status, false).json();
        assert_eq!(doc["server_a"], "a.example:6000");
        assert_eq!(doc["server_b"], "b.example:6001");
        assert_eq!(doc["answered_by"], "a");
        assert_eq!(doc["fingerprint_a"], "sha256:aa");
        assert_eq!(doc["fingerprint_b"], "sha256:bb");
        assert_eq!(doc["locks"][0]["name"], "f.txt");
        assert_eq!(doc["queued"], 2);
        assert_eq!(doc["link"]["up"], true);
        assert_eq!(doc["link"]["sending"], 1);
        assert_eq!(doc["link"]["since"], serde_json::Value::Null);
    }

    #[test]
    fn status_from_b_swaps_the_sides_and_knows_no_locks() {
        let status = status_message("a.example:6000");
        let seen = Some("sha256:seen".to_string());
        let doc = StatusView::new("b.example:6001", seen, &status, true).json();
        assert_eq!(doc["server_a"], "a.example:6000");
        assert_eq!(doc["server_b"], "b.example:6001");
        assert_eq!(doc["answered_by"], "b");
        assert_eq!(doc["fingerprint_a"], serde_json::Value::Null);
        assert_eq!(doc["fingerprint_b"], "sha256:seen");
        assert_eq!(doc["locks"], serde_json::Value::Null);
        assert_eq!(doc["queued"], serde_json::Value::Null);
    }
}
