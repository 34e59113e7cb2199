//! What a server tells its user: one line per sync action on stdout, and
//! diagnostics (warnings, errors, `RUST_LOG` detail) on stderr.

use std::io::Write;

/// Initialises diagnostics on stderr; `RUST_LOG` overrides the `info` default
/// (`RUST_LOG=debug`, `RUST_LOG=common::sync=trace`). Lines start with the
/// local time, like the action lines, and are coloured only when stderr is
/// a terminal and `NO_COLOR` is unset.
pub fn init_logging() {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_timer(LocalTime)
        .with_ansi(colour_on(&std::io::stderr()))
        .try_init();
}

/// The log's clock: local time of day, to the millisecond, as in action lines.
struct LocalTime;

impl tracing_subscriber::fmt::time::FormatTime for LocalTime {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        write!(w, "{}", chrono::Local::now().format("%H:%M:%S%.3f"))
    }
}

/// Colour on stdout: only on a terminal, and never when `NO_COLOR` is set.
pub fn use_colour() -> bool {
    colour_on(&std::io::stdout())
}

/// Colour on `stream`: only on a terminal, and never when `NO_COLOR` is set
/// (to anything but the empty string; see no-color.org).
pub fn colour_on(stream: &impl std::io::IsTerminal) -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && stream.is_terminal()
}

/// Prints one action line on stdout: time, direction, action, path, size, detail.
///
/// `direction` is `A->B` (sent), `B->A` (received and applied) or a side's
/// letter (local only); `action` one of created, updated, deleted, renamed,
/// conflict, queued, applied, superseded, locked, unlocked, sending,
/// receiving, error.
pub fn announce(a: &crate::protocol::Action) {
    // Whether stdout is a terminal is asked once, not once per line.
    static COLOUR: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let line = format_action(a, *COLOUR.get_or_init(use_colour), false);
    let line = match console_writer() {
        Some(tx) => match tx.send(line) {
            Ok(()) => return,
            Err(std::sync::mpsc::SendError(line)) => line,
        },
        None => line,
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// One thread writes the action lines. Woken by a line, it lets more gather
/// for [`GATHER`] before writing them all at once: a line shows within a
/// couple of milliseconds, and a burst of ten thousand costs a few hundred
/// wake-ups and writes rather than ten thousand of each.
const GATHER: std::time::Duration = std::time::Duration::from_millis(2);

fn console_writer() -> Option<&'static std::sync::mpsc::Sender<String>> {
    static WRITER: std::sync::OnceLock<Option<std::sync::mpsc::Sender<String>>> =
        std::sync::OnceLock::new();
    WRITER
        .get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel::<String>();
            let spawned = std::thread::Builder::new()
                .name("console".into())
                .spawn(move || {
                    let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout());
                    while let Ok(line) = rx.recv() {
                        let _ = writeln!(out, "{line}");
                        std::thread::sleep(GATHER);
                        while let Ok(line) = rx.try_recv() {
                            let _ = writeln!(out, "{line}");
                        }
                        let _ = out.flush();
                    }
                });
            spawned.ok().map(|_| tx)
        })
        .as_ref()
}

/// One action as a line for people, the same on a server's console and in
/// `lab3 watch` (which adds the side, `[A]` or `[B]`, after the time):
///
/// ```text
/// 10:02:03.123  A->B  created    notes.txt  12 B
/// 10:02:03.141  [B] A->B  created    notes.txt  12 B
/// ```
pub fn format_action(a: &crate::protocol::Action, colour: bool, with_side: bool) -> String {
    let size = a.size.map(human_size).unwrap_or_default();
    let (on, off) = match (colour, a.action.as_str()) {
        (false, _) => ("", ""),
        (true, "deleted" | "error") => ("\x1b[31m", "\x1b[0m"),
        (true, "conflict" | "superseded" | "refused") => ("\x1b[33m", "\x1b[0m"),
        (true, "queued" | "locked" | "unlocked") => ("\x1b[35m", "\x1b[0m"),
        (true, "sending" | "receiving" | "link up" | "link down") => ("\x1b[36m", "\x1b[0m"),
        (true, _) => ("\x1b[32m", "\x1b[0m"),
    };
    let detail = printable(&a.detail);
    let detail = if detail.is_empty() {
        String::new()
    } else {
        format!("({detail})")
    };
    let side = if with_side {
        format!("[{}] ", printable(&a.side))
    } else {
        String::new()
    };
    // Every field may come from the peer (relayed actions): all escaped.
    let mut line = format!(
        "{}  {side}{:<5} {on}{:<10}{off} {}",
        clock(a.time_ns),
        printable(&a.direction),
        printable(&a.action),
        printable(&a.path)
    );
    line.truncate(line.trim_end().len());
    for extra in [size, detail] {
        if !extra.is_empty() {
            line.push_str("  ");
            line.push_str(&extra);
        }
    }
    line
}

/// `time_ns` (since the epoch) as the local time of day, `HH:MM:SS.mmm`.
/// The offset from UTC is asked of the time zone once a minute (a change of
/// offset falls on a whole minute), not once a line: chrono's conversion
/// and format had been most of an action line's cost, on a burst of ten
/// thousand files a fifth of a millisecond-long line each.
fn clock(time_ns: i64) -> String {
    static OFFSET: std::sync::Mutex<Option<(i64, i64)>> = std::sync::Mutex::new(None);
    let secs = time_ns.div_euclid(1_000_000_000);
    let minute = secs.div_euclid(60);
    let offset = {
        let mut cached = OFFSET.lock().unwrap_or_else(|e| e.into_inner());
        match *cached {
            Some((m, offset)) if m == minute => offset,
            _ => {
                let offset = chrono::DateTime::from_timestamp(minute * 60, 0).map_or(0, |t| {
                    let local = t.with_timezone(&chrono::Local);
                    i64::from(chrono::Offset::fix(local.offset()).local_minus_utc())
                });
                *cached = Some((minute, offset));
                offset
            }
        }
    };
    let of_day = (secs + offset).rem_euclid(86_400);
    let ms = time_ns.rem_euclid(1_000_000_000) / 1_000_000;
    let mut out = String::with_capacity(12);
    for (i, (n, width)) in [
        (of_day / 3600, 2),
        (of_day / 60 % 60, 2),
        (of_day % 60, 2),
        (ms, 3),
    ]
    .into_iter()
    .enumerate()
    {
        if i > 0 {
            out.push(if i == 3 { '.' } else { ':' });
        }
        let digits = n.to_string();
        for _ in digits.len()..width {
            out.push('0');
        }
        out.push_str(&digits);
    }
    out
}

/// `s` with control characters escaped, so that a file name cannot forge
/// or break console lines.
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    if s.chars().any(char::is_control) {
        s.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect::<String>()
            .into()
    } else {
        s.into()
    }
}

/// Sizes for people: `512 B`, `4.0 KiB`, `1.5 GiB`.
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// A count with thousands separators: `412000` as `412,000`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::protocol::Action;

    #[test]
    fn action_lines() {
        let a = Action {
            time_ns: 1_795_255_200_123_000_000,
            side: "B".into(),
            direction: "B->A".into(),
            action: "updated".into(),
            path: "notes.txt".into(),
            size: Some(2048),
            detail: String::new(),
        };
        let plain = super::format_action(&a, false, false);
        assert!(
            plain.ends_with(".123  B->A  updated    notes.txt  2.0 KiB"),
            "{plain}"
        );
        let watch = super::format_action(&a, false, true);
        assert!(watch.contains("  [B] B->A  updated "), "{watch}");
        assert!(!watch.contains('\x1b'));
        let coloured = super::format_action(&a, true, false);
        assert!(coloured.contains("\x1b[32mupdated   \x1b[0m"), "{coloured}");
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(super::printable("a\nb\x1b[31m"), "a\\nb\\u{1b}[31m");
        assert_eq!(super::printable("plain ü"), "plain ü");
    }

    #[test]
    fn the_clock_says_what_chrono_says() {
        let start = chrono::Utc::now().timestamp_nanos_opt().unwrap();
        // Within a minute, across minutes, and around a day and a year ago.
        for back in [
            0,
            1,
            999_999,
            59_999_999_999,
            61_000_000_000,
            86_400_000_000_000,
            31_536_000_123_456_789,
        ] {
            let t = start - back;
            let want = chrono::DateTime::from_timestamp_nanos(t)
                .with_timezone(&chrono::Local)
                .format("%H:%M:%S%.3f")
                .to_string();
            assert_eq!(super::clock(t), want, "{t}");
        }
    }

    #[test]
    fn human_sizes() {
        assert_eq!(super::human_size(0), "0 B");
        assert_eq!(super::human_size(1023), "1023 B");
        assert_eq!(super::human_size(4096), "4.0 KiB");
        assert_eq!(super::human_size(3 << 30), "3.0 GiB");
    }
}
