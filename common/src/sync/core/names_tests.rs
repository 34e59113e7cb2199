//! The core with a receiving folder that cannot hold some names (see
//! `names`): refused once on both sides, never written over another
//! file, offered again only once they change or the clash is gone.

use super::sim_fs::World;
use super::*;

fn linux() -> FsTraits {
    FsTraits::default()
}

/// A Windows-like folder: no modes, case-insensitive, Windows' names.
fn windows() -> FsTraits {
    FsTraits {
        precision_ns: 100,
        has_modes: false,
        case_insensitive: true,
        normalization_insensitive: false,
        windows_names: true,
    }
}

fn live(fa: FsTraits, fb: FsTraits) -> World {
    let mut w = World::with_traits(fa, fb);
    w.connect();
    w.settle();
    w
}

fn said(log: &[String], action: &str, path: &str) -> usize {
    log.iter()
        .filter(|l| {
            l.starts_with(&format!("{action} {path} ")) || **l == format!("{action} {path}")
        })
        .count()
}

fn offers_of(msgs: &[PeerMsg], path: &str) -> usize {
    msgs.iter()
        .filter(|m| matches!(m, PeerMsg::Offer { path: p, .. } if p == path))
        .count()
}

#[test]
fn a_case_clash_is_refused_once_on_both_sides_and_never_overwrites() {
    let mut w = live(linux(), windows());
    w.write(true, "X.txt", "upper");
    w.settle();
    w.write(true, "x.txt", "lower");
    w.settle();
    assert_eq!(w.b.disk.read("X.txt").as_deref(), Some("upper"));
    assert_eq!(w.b.disk.read("x.txt"), None, "B wrote the clash");
    assert_eq!(said(&w.a.log, "refused", "x.txt"), 1, "{:?}", w.a.log);
    assert_eq!(said(&w.b.log, "refused", "x.txt"), 1, "{:?}", w.b.log);
    let unsent: Vec<_> =
        w.a.core
            .unsent()
            .map(|(p, u)| (p.clone(), u.why.clone()))
            .collect();
    assert_eq!(unsent.len(), 1);
    assert_eq!(unsent[0].0, "x.txt");
    assert!(
        unsent[0].1.contains("X.txt") && unsent[0].1.contains("letter case"),
        "{unsent:?}"
    );
    // Not offered again while it stands: a rescan, a reconnect.
    let sent_before = offers_of(&w.a.sent, "x.txt");
    w.observe(true, "x.txt", false);
    w.disconnect();
    w.settle();
    w.connect();
    w.settle();
    assert_eq!(
        offers_of(&w.a.sent, "x.txt"),
        sent_before,
        "offered again unchanged"
    );
    assert_eq!(said(&w.a.log, "refused", "x.txt"), 1, "{:?}", w.a.log);
    assert_eq!(said(&w.b.log, "refused", "x.txt"), 1, "{:?}", w.b.log);
    // Changed: offered (and refused) again, said again at A.
    w.write(true, "x.txt", "lower, edited");
    w.settle();
    assert_eq!(offers_of(&w.a.sent, "x.txt"), sent_before + 1);
    assert_eq!(w.b.disk.read("X.txt").as_deref(), Some("upper"));
}

#[test]
fn a_refused_name_goes_once_the_name_it_clashed_with_is_gone() {
    let mut w = live(linux(), windows());
    w.write(true, "X.txt", "upper");
    w.settle();
    w.write(true, "x.txt", "lower");
    w.settle();
    assert_eq!(w.a.core.unsent().count(), 1);
    w.rm(true, "X.txt");
    w.settle();
    assert_eq!(w.b.disk.read("x.txt").as_deref(), Some("lower"));
    assert_eq!(w.b.disk.read("X.txt"), None);
    assert_eq!(w.a.core.unsent().count(), 0);
    w.assert_same();
}

#[test]
fn a_case_only_rename_renames_at_a_case_insensitive_side() {
    let mut w = live(linux(), windows());
    w.write(true, "a.txt", "one file");
    w.settle();
    w.mv(true, "a.txt", "A.txt");
    w.settle();
    assert_eq!(w.b.disk.read("A.txt").as_deref(), Some("one file"));
    assert_eq!(w.b.disk.read("a.txt"), None);
    assert!(
        w.b.log.iter().any(|l| l == "renamed A.txt from a.txt"),
        "{:?}",
        w.b.log
    );
    assert_eq!(w.a.core.unsent().count(), 0);
    w.assert_same();
}

#[test]
fn a_folder_that_clashes_keeps_what_it_holds_apart() {
    let mut w = live(linux(), windows());
    w.write(true, "Dir/one.txt", "1");
    w.settle();
    w.write(true, "dir/two.txt", "2");
    w.settle();
    assert_eq!(w.b.disk.read("Dir/one.txt").as_deref(), Some("1"));
    assert_eq!(
        w.b.disk.read("Dir/two.txt"),
        None,
        "landed in the other folder"
    );
    assert_eq!(w.b.disk.read("dir/two.txt"), None);
    let unsent: Vec<String> = w.a.core.unsent().map(|(p, _)| p.clone()).collect();
    assert!(unsent.contains(&"dir".to_string()), "{unsent:?}");
}

#[test]
fn names_windows_cannot_store_are_refused_once_and_the_rest_goes() {
    let mut w = live(linux(), windows());
    for name in [
        "q?.txt",
        "a:b.txt",
        "back\\slash.txt",
        "CON",
        "aux.txt",
        "dot.",
        "ok.txt",
    ] {
        w.write(true, name, name);
    }
    w.settle();
    assert_eq!(w.b.disk.read("ok.txt").as_deref(), Some("ok.txt"));
    for name in [
        "q?.txt",
        "a:b.txt",
        "back\\slash.txt",
        "CON",
        "aux.txt",
        "dot.",
    ] {
        assert_eq!(w.b.disk.read(name), None, "{name}");
        assert_eq!(said(&w.a.log, "refused", name), 1, "{name}: {:?}", w.a.log);
        assert_eq!(said(&w.b.log, "refused", name), 1, "{name}: {:?}", w.b.log);
    }
    assert_eq!(w.a.core.unsent().count(), 6);
    // Between two Linux folders the same names are ordinary.
    let mut w = live(linux(), linux());
    for name in ["q?.txt", "a:b.txt", "back\\slash.txt", "CON", "dot."] {
        w.write(true, name, name);
    }
    w.settle();
    w.assert_same();
    assert!(
        w.a.log.iter().all(|l| !l.starts_with("refused")),
        "{:?}",
        w.a.log
    );
}

#[test]
fn names_differing_in_unicode_form_are_one_file_where_the_folder_says_so() {
    let mac = FsTraits {
        normalization_insensitive: true,
        ..FsTraits::default()
    };
    let (nfc, nfd) = ("caf\u{e9}.txt", "cafe\u{301}.txt");
    let mut w = live(linux(), mac);
    w.write(true, nfc, "composed");
    w.settle();
    w.write(true, nfd, "decomposed");
    w.settle();
    assert_eq!(w.b.disk.read(nfc).as_deref(), Some("composed"));
    assert_eq!(w.b.disk.read(nfd), None);
    assert_eq!(said(&w.b.log, "refused", nfd), 1, "{:?}", w.b.log);
    let why =
        w.a.core
            .unsent()
            .map(|(_, u)| u.why.clone())
            .next()
            .unwrap();
    assert!(why.contains("Unicode"), "{why}");
    // A case-insensitive folder that keeps forms apart takes both.
    let mut w = live(linux(), windows());
    w.write(true, nfc, "composed");
    w.write(true, nfd, "decomposed");
    w.settle();
    w.assert_same();
}

/// A rename that changes only the Unicode form (NFD to NFC, as a Linux
/// tool that normalizes names does) travels as a rename, both ways: the
/// folder that folds forms renames its one file in place, nothing is
/// refused or sent again as new bytes.
#[test]
fn a_normalization_only_rename_travels_as_a_rename() {
    let mac = FsTraits {
        normalization_insensitive: true,
        ..FsTraits::default()
    };
    let (nfc, nfd) = ("caf\u{e9}.txt", "cafe\u{301}.txt");
    for linux_is_a in [true, false] {
        let mut w = if linux_is_a {
            live(linux(), mac)
        } else {
            live(mac, linux())
        };
        w.write(linux_is_a, nfd, "one file");
        w.settle();
        w.mv(linux_is_a, nfd, nfc);
        w.settle();
        let there = if linux_is_a { &w.b } else { &w.a };
        assert_eq!(there.disk.read(nfc).as_deref(), Some("one file"));
        assert!(
            there
                .log
                .iter()
                .any(|l| l == &format!("renamed {nfc} from {nfd}")),
            "{:?}",
            there.log
        );
        assert!(there.log.iter().all(|l| !l.starts_with("refused")));
        assert_eq!(w.a.core.unsent().count() + w.b.core.unsent().count(), 0);
        w.assert_same();
        // And back, from the side that folds forms.
        w.mv(!linux_is_a, nfc, nfd);
        w.settle();
        let here = if linux_is_a { &w.a } else { &w.b };
        assert_eq!(here.disk.read(nfd).as_deref(), Some("one file"));
        assert_eq!(here.disk.read(nfc), None);
        assert!(
            here.log
                .iter()
                .any(|l| l == &format!("renamed {nfd} from {nfc}")),
            "{:?}",
            here.log
        );
        w.assert_same();
    }
}
