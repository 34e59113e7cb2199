//! Printing answers: a table for people, one JSON document for scripts.

use comfy_table::{
    presets, Cell, CellAlignment, ColumnConstraint, ContentArrangement, Table, Width,
};
use common::console::{human_size, printable, thousands};
use common::meta::rfc3339_utc;
use common::protocol::{
    Action, AppliedUpdate, FailingPath, ListingRow, LockInfo, Message, PeerState, SetAsideInfo,
    VersionInfo, VersionUsage,
};
use common::status::StatusView;
use serde_json::json;

/// `println!` that ignores a closed stdout (`lab3 | head -1`): the reader
/// has what it wanted, so that is no error (exit 0, as ripgrep does).
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($t)*);
    }};
}

/// The contract's JSON form of one listing row.
fn row_json(r: &ListingRow) -> serde_json::Value {
    json!({
        "index": r.index,
        "name": r.name,
        "size": r.size,
        "modified": rfc3339_utc(r.mtime_ns),
        "where": r.location,
        "locked": r.locked,
        "queued": r.queued,
    })
}

fn peer_word(p: PeerState) -> &'static str {
    match p {
        PeerState::Connected => "connected",
        PeerState::Unreachable => "unreachable",
    }
}

fn local_time(ns: i64) -> String {
    let utc = chrono::DateTime::from_timestamp(
        ns.div_euclid(1_000_000_000),
        ns.rem_euclid(1_000_000_000) as u32,
    )
    .unwrap_or_default();
    utc.with_timezone(&chrono::Local)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// Below this many columns, an empty Lock column is left out.
const NARROW: u16 = 72;

/// The listing: one JSON document, or a table, one line per file (no rules
/// between rows, as `ls -l` reads), columns aligned, wrapped only where
/// the terminal is too narrow. `other` is the server that `peer` is about
/// (`"B"`, or `"A"` when Server B answered, `answered_by` `"b"`).
pub fn print_listing(
    peer: PeerState,
    rows: &[ListingRow],
    other: &str,
    answered_by: &str,
    as_json: bool,
) {
    if as_json {
        let doc = json!({
            "peer": peer_word(peer),
            "answered_by": answered_by,
            "files": rows.iter().map(row_json).collect::<Vec<_>>(),
        });
        say!("{doc}");
        return;
    }
    let mut table = fitted_table();
    // An empty Lock column gives way on a narrow terminal.
    let lock_column =
        rows.iter().any(|r| r.locked || r.queued > 0) || table.width().is_none_or(|w| w >= NARROW);
    // Numbers and their headings are right-aligned, the rest left.
    let right = |s: &str| Cell::new(s).set_alignment(CellAlignment::Right);
    let mut header = vec![
        right("Index"),
        Cell::new("Name"),
        right("Size"),
        Cell::new("Modified"),
        Cell::new("Where"),
    ];
    // On a narrow terminal the name wraps (it gets what the others leave),
    // the time breaks into date and time, the lock words wrap; index, size
    // and where never break. (Widths include the cell's padding.)
    let mut constraints = vec![
        ColumnConstraint::ContentWidth,
        ColumnConstraint::LowerBoundary(Width::Fixed(14)),
        ColumnConstraint::ContentWidth,
        ColumnConstraint::LowerBoundary(Width::Fixed(12)),
        ColumnConstraint::ContentWidth,
    ];
    if lock_column {
        header.push(Cell::new("Lock"));
        constraints.push(ColumnConstraint::LowerBoundary(Width::Fixed(8)));
    }
    table.set_header(header).set_constraints(constraints);
    for r in rows {
        let lock = match (r.locked, r.queued) {
            (false, 0) => String::new(),
            (true, 0) => "locked".into(),
            (_, q) => format!("locked, {q} queued"),
        };
        let mut row = vec![
            Cell::new(r.index).set_alignment(CellAlignment::Right),
            Cell::new(printable(&r.name)),
            Cell::new(human_size(r.size)).set_alignment(CellAlignment::Right),
            Cell::new(local_time(r.mtime_ns)),
            Cell::new(&r.location),
        ];
        if lock_column {
            row.push(Cell::new(lock));
        }
        table.add_row(row);
    }
    if !rows.is_empty() {
        for line in table.lines() {
            say!("{}", line.trim_end());
        }
    }
    let total: u64 = rows.iter().map(|r| r.size).sum();
    let files = if rows.len() == 1 { "file" } else { "files" };
    say!(
        "{} {files}, {} in all; server {other} {}",
        rows.len(),
        human_size(total),
        peer_word(peer)
    );
}

pub fn print_locked(name: &str, as_json: bool) {
    if as_json {
        say!("{}", json!({ "locked": name }));
    } else {
        say!("locked {}", printable(name));
    }
}

pub fn print_unlocked(name: &str, updates: &[AppliedUpdate], as_json: bool) {
    if as_json {
        say!("{}", json!({ "unlocked": name, "updates": updates }));
        return;
    }
    say!("unlocked {}", printable(name));
    for u in updates {
        say!(
            "  {:>3}. {:<6} {:>10}  {}  {}",
            u.seq,
            u.action,
            human_size(u.size),
            local_time(u.mtime_ns),
            u.outcome
        );
    }
    if updates.is_empty() {
        say!("  no queued updates");
    }
}

pub fn print_locks(locks: &[LockInfo], as_json: bool) {
    if as_json {
        say!("{}", json!({ "locks": locks }));
        return;
    }
    if locks.is_empty() {
        say!("no locks");
    }
    for l in locks {
        say!("{}  ({} queued)", printable(&l.name), l.queued);
    }
}

/// The JSON form of one kept version.
fn version_json(v: &VersionInfo) -> serde_json::Value {
    json!({
        "side": v.side,
        "id": v.id,
        "path": v.path,
        "kept": rfc3339_utc(v.kept_ns),
        "why": v.why,
        "size": v.size,
        "modified": rfc3339_utc(v.mtime_ns),
        "mode": v.mode.map(|m| format!("{m:04o}")),
    })
}

/// `lab3 versions PATH`: newest first, one line each.
pub fn print_versions(
    path: &str,
    peer: PeerState,
    versions: &[VersionInfo],
    answered_by: &str,
    as_json: bool,
) {
    if as_json {
        let all: Vec<_> = versions.iter().map(version_json).collect();
        say!(
            "{}",
            json!({ "path": path, "peer": peer_word(peer), "answered_by": answered_by, "versions": all })
        );
        return;
    }
    if versions.is_empty() {
        say!("no kept versions of {}", printable(path));
        return;
    }
    say!(
        " {:<4}  {:<10}  {:<19}  {:<8}  {:>10}  {:<19}",
        "Side",
        "ID",
        "Kept",
        "Why",
        "Size",
        "Modified"
    );
    for v in versions {
        say!(
            " {:<4}  {:<10}  {:<19}  {:<8}  {:>10}  {:<19}",
            v.side.to_uppercase(),
            v.id,
            local_time(v.kept_ns),
            v.why,
            human_size(v.size),
            local_time(v.mtime_ns)
        );
    }
}

/// The paths a side cannot read or replace right now, one a line, for
/// `lab3 status`: "at A: notes.txt: cannot read: Permission denied (os
/// error 13); 3 attempts since …, next try at …".
fn failing_words(failing: &[FailingPath], now_ns: i64) -> String {
    if failing.is_empty() {
        return "nothing".into();
    }
    failing
        .iter()
        .map(|FailingPath { side, failing: f }| {
            let next = match f.retry_ns {
                Some(t) => format!(", next try at {}", local_time(t)),
                None => ", the other side tries again".into(),
            };
            format!(
                "at {}: {}: {}; {} attempts since {}{next}",
                side.to_uppercase(),
                printable(&f.path),
                f.error,
                f.attempts,
                when(f.since_ns, now_ns)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// What a side set aside at start, one a line, for `lab3 status`.
fn set_aside_words(set_aside: &[SetAsideInfo]) -> String {
    if set_aside.is_empty() {
        return "nothing".into();
    }
    set_aside
        .iter()
        .map(|s| {
            format!(
                "at {}: {}: {}; set aside as {}",
                s.side.to_uppercase(),
                printable(&s.path),
                s.what,
                s.at
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// "A: 3 (12.0 KiB); B: 1 (5 B)" for `lab3 status`.
fn version_words(usage: &[VersionUsage]) -> String {
    if usage.is_empty() {
        return "unknown".into();
    }
    let mut words: Vec<String> = usage
        .iter()
        .map(|u| {
            format!(
                "{}: {} ({})",
                u.side.to_uppercase(),
                u.count,
                human_size(u.bytes)
            )
        })
        .collect();
    if usage.len() == 1 {
        words.push("the other side did not answer".into());
    }
    words.join("; ")
}

/// `lab3 restore PATH`: which version went back, and where.
pub fn print_restored(path: &str, v: &VersionInfo, as_json: bool) {
    if as_json {
        say!(
            "{}",
            json!({ "restored": path, "version": version_json(v) })
        );
        return;
    }
    say!(
        "restored {} at server {} from version {} ({}, kept {}); it syncs as a new change",
        printable(path),
        v.side.to_uppercase(),
        v.id,
        v.why,
        local_time(v.kept_ns)
    );
}

/// One action of `lab3 watch`: a line for people, or the action as one JSON
/// line; flushed at once.
pub fn write_action(
    out: &mut impl std::io::Write,
    a: &Action,
    as_json: bool,
    colour: bool,
) -> std::io::Result<()> {
    if as_json {
        let line = serde_json::to_string(a).map_err(std::io::Error::other)?;
        writeln!(out, "{line}")?;
    } else {
        writeln!(out, "{}", common::console::format_action(a, colour, true))?;
    }
    out.flush()
}

/// "3 min 12 s", "2 h 5 min", "4 days 1 h": how long, for people.
fn duration_words(ns: i64) -> String {
    let s = ns.max(0) / 1_000_000_000;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        3600..86400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} days {} h", s / 86400, s % 86400 / 3600),
    }
}

/// A time as local time and how long before `now_ns` it was.
fn when(ns: i64, now_ns: i64) -> String {
    format!("{} ({} ago)", local_time(ns), duration_words(now_ns - ns))
}

/// `lab3 status`: a two-column table for people, one JSON document for
/// scripts. `server` is the address that answered; `seen`: its certificate
/// fingerprint as this connection saw it; `from_b`: Server B answered
/// (Server A was down), so `status`'s peer is Server A, its skew A's clock
/// against B's, and the locks are not known.
pub fn print_status(
    server: &str,
    seen: Option<String>,
    status: &Message,
    from_b: bool,
    as_json: bool,
) {
    let view = StatusView::new(server, seen, status, from_b);
    let Message::Status {
        time_ns,
        sync,
        link,
        locks,
        versions,
        failing,
        set_aside,
        ..
    } = status
    else {
        return;
    };
    if as_json {
        say!("{}", view.json());
        return;
    }
    let queued: usize = locks.iter().map(|l| l.queued).sum();
    let me = if from_b { "B" } else { "A" };
    let link_words = match (sync, link.up, link.since_ns) {
        (false, _, _) => format!("none: server {me} runs with --no-sync"),
        (true, true, Some(t)) => format!("up since {}", when(t, *time_ns)),
        (true, false, Some(t)) => format!("down since {}", when(t, *time_ns)),
        (true, up, None) => {
            let word = if up { "up" } else { "down (never up yet)" };
            word.to_string()
        }
    };
    let skew = match link.clock_skew_ns {
        None => "unknown".to_string(),
        Some(ns) if ns.abs() < 1_000_000 => "under 1 ms".to_string(),
        Some(ns) => {
            let side = if ns > 0 { "ahead of" } else { "behind" };
            let amount = if ns.abs() < 1_000_000_000 {
                format!("{} ms", ns.abs() / 1_000_000)
            } else {
                format!("{:.1} s", ns.abs() as f64 / 1e9)
            };
            let warn = if ns.abs() > 1_000_000_000 {
                " (newest-wins compares their times: set both clocks by NTP)"
            } else {
                ""
            };
            let (them, us) = if from_b { ("A", "B") } else { ("B", "A") };
            format!("server {them}'s clock is {amount} {side} server {us}'s{warn}")
        }
    };
    let reconcile = match link.last_reconcile_ns {
        Some(t) => when(t, *time_ns),
        None => "not yet".to_string(),
    };
    let lock_words = if from_b {
        "kept at server A (not known here)".to_string()
    } else if locks.is_empty() {
        "none".to_string()
    } else {
        locks
            .iter()
            .map(|l| format!("{} ({} queued)", printable(&l.name), l.queued))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let mut table = fitted_table();
    for (k, v) in [
        ("Server A", view.addr_a.to_string()),
        (
            "A's certificate",
            view.fingerprint_a
                .clone()
                .unwrap_or_else(|| "unknown".into()),
        ),
        ("Server B", view.addr_b.to_string()),
        (
            "B's certificate",
            match view.fingerprint_b.clone() {
                Some(f) => f,
                None => "not seen yet (no link to server B so far)".into(),
            },
        ),
        ("Link", link_words),
        ("Clock skew", skew),
        ("Last reconcile", reconcile),
        (
            "Transfers",
            format!(
                "{} sending, {} receiving; {} sent, {} received, {} reused",
                link.sending,
                link.receiving,
                human_size(link.sent_bytes),
                human_size(link.received_bytes),
                human_size(link.reused_bytes)
            ),
        ),
        ("Start-up scan", scan_words(view.scanning())),
        (
            "Watching",
            link.watch_limit
                .clone()
                .unwrap_or_else(|| "every folder".into()),
        ),
        ("Locks", lock_words),
        ("Versions kept", version_words(versions)),
        ("Names not synced", name_words(&link.names)),
        ("Cannot sync now", failing_words(failing, *time_ns)),
        ("Set aside at start", set_aside_words(set_aside)),
        (
            "Queued updates",
            if from_b {
                "-".into()
            } else {
                queued.to_string()
            },
        ),
    ] {
        table.add_row([Cell::new(k), Cell::new(v)]);
    }
    for line in table.lines() {
        say!("{}", line.trim_end());
    }
}

/// Each side's start-up scan while it runs (A's, B's entries so far),
/// e.g. `server A: 412,000 entries so far`.
fn scan_words((a, b): (Option<u32>, Option<u32>)) -> String {
    let running: Vec<String> = [("A", a), ("B", b)]
        .into_iter()
        .filter_map(|(side, n)| {
            Some(format!(
                "server {side}: {} entries so far",
                thousands(n?.into())
            ))
        })
        .collect();
    if running.is_empty() {
        "done".into()
    } else {
        running.join("; ")
    }
}

/// The names one side holds that the other cannot store, one a line.
fn name_words(names: &[common::protocol::UnsyncedName]) -> String {
    if names.is_empty() {
        return "none".into();
    }
    names
        .iter()
        .map(|n| format!("{} (at {}): {}", printable(&n.path), n.side, n.why))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A table without rules, fitted to the width of [`columns`].
fn fitted_table() -> Table {
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Dynamic);
    if let Some(w) = columns() {
        table.set_width(w);
    }
    table
}

/// The width to fit tables to: `COLUMNS` when set (also when stdout is not a
/// terminal); otherwise comfy-table asks the terminal, and does not wrap
/// when there is none.
fn columns() -> Option<u16> {
    std::env::var("COLUMNS")
        .ok()?
        .trim()
        .parse()
        .ok()
        .filter(|&w| w > 0)
}

#[cfg(test)]
mod tests {
    use super::scan_words;

    #[test]
    fn the_start_up_scan_says_each_side_still_scanning() {
        assert_eq!(scan_words((None, None)), "done");
        assert_eq!(
            scan_words((Some(412000), None)),
            "server A: 412,000 entries so far"
        );
        assert_eq!(
            scan_words((Some(7), Some(1234567))),
            "server A: 7 entries so far; server B: 1,234,567 entries so far"
        );
    }
}
