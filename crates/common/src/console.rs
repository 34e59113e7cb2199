//! What a server tells its user: one line per sync action on stdout, and
//! diagnostics (warnings, errors, `RUST_LOG` detail) on stderr.

use std::io::Write;

/// Initialises diagnostics on stderr; `RUST_LOG` overrides the `info` default.
pub fn init_logging() {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(use_colour())
        .try_init();
}

/// Colour only on a terminal, and never when `NO_COLOR` is set.
pub fn use_colour() -> bool {
    use std::io::IsTerminal;
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal()
}

/// Prints one action line: time, direction, action, path, size, detail.
///
/// `direction` is `A->B` (sent), `B->A` (received and applied) or a side's
/// letter (local only); `action` one of created, updated, deleted, renamed,
/// conflict, queued, applied, superseded, error.
pub fn announce(a: &crate::protocol::Action) {
    let time = chrono::DateTime::from_timestamp_nanos(a.time_ns).with_timezone(&chrono::Local);
    let size = a.size.map(human_size).unwrap_or_default();
    let (on, off) = match (use_colour(), a.action.as_str()) {
        (false, _) => ("", ""),
        (true, "deleted" | "error") => ("\x1b[31m", "\x1b[0m"),
        (true, "conflict" | "superseded") => ("\x1b[33m", "\x1b[0m"),
        (true, "queued") => ("\x1b[35m", "\x1b[0m"),
        (true, _) => ("\x1b[32m", "\x1b[0m"),
    };
    let detail = printable(&a.detail);
    let detail = if detail.is_empty() {
        String::new()
    } else {
        format!("  ({detail})")
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{}  {:<5} {on}{:<10}{off} {}  {size}{detail}",
        time.format("%H:%M:%S%.3f"),
        a.direction,
        a.action,
        printable(&a.path)
    );
    let _ = out.flush();
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

#[cfg(test)]
mod tests {
    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(super::printable("a\nb\x1b[31m"), "a\\nb\\u{1b}[31m");
        assert_eq!(super::printable("plain ü"), "plain ü");
    }

    #[test]
    fn human_sizes() {
        assert_eq!(super::human_size(0), "0 B");
        assert_eq!(super::human_size(1023), "1023 B");
        assert_eq!(super::human_size(4096), "4.0 KiB");
        assert_eq!(super::human_size(3 << 30), "3.0 GiB");
    }
}
