//! Printing answers: a table for people, one JSON document for scripts.

use comfy_table::{presets, Cell, CellAlignment, ContentArrangement, Table};
use common::console::human_size;
use common::meta::rfc3339_utc;
use common::protocol::{AppliedUpdate, ListingRow, LockInfo, PeerState};
use serde_json::json;

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

pub fn print_listing(peer: PeerState, rows: &[ListingRow], as_json: bool) {
    if as_json {
        let doc = json!({
            "peer": peer_word(peer),
            "files": rows.iter().map(row_json).collect::<Vec<_>>(),
        });
        println!("{doc}");
        return;
    }
    let mut table = Table::new();
    table
        .load_preset(presets::UTF8_HORIZONTAL_ONLY)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(["Index", "Name", "Size", "Modified", "Where", "Lock"]);
    for r in rows {
        let lock = match (r.locked, r.queued) {
            (false, 0) => String::new(),
            (true, 0) => "locked".into(),
            (_, q) => format!("locked, {q} queued"),
        };
        table.add_row([
            Cell::new(r.index).set_alignment(CellAlignment::Right),
            Cell::new(&r.name),
            Cell::new(human_size(r.size)).set_alignment(CellAlignment::Right),
            Cell::new(local_time(r.mtime_ns)),
            Cell::new(&r.location),
            Cell::new(lock),
        ]);
    }
    if !rows.is_empty() {
        println!("{table}");
    }
    let total: u64 = rows.iter().map(|r| r.size).sum();
    let files = if rows.len() == 1 { "file" } else { "files" };
    println!(
        "{} {files}, {} in all; server B {}",
        rows.len(),
        human_size(total),
        peer_word(peer)
    );
}

pub fn print_locked(name: &str, as_json: bool) {
    if as_json {
        println!("{}", json!({ "locked": name }));
    } else {
        println!("locked {name}");
    }
}

pub fn print_unlocked(name: &str, updates: &[AppliedUpdate], as_json: bool) {
    if as_json {
        println!("{}", json!({ "unlocked": name, "updates": updates }));
        return;
    }
    println!("unlocked {name}");
    for u in updates {
        println!(
            "  {:>3}. {:<6} {:>10}  {}  {}",
            u.seq,
            u.action,
            human_size(u.size),
            local_time(u.mtime_ns),
            u.outcome
        );
    }
    if updates.is_empty() {
        println!("  no queued updates");
    }
}

pub fn print_locks(locks: &[LockInfo], as_json: bool) {
    if as_json {
        println!("{}", json!({ "locks": locks }));
        return;
    }
    if locks.is_empty() {
        println!("no locks");
    }
    for l in locks {
        println!("{}  ({} queued)", l.name, l.queued);
    }
}
