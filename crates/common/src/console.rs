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

/// Prints one action line: time, direction, action, path, size.
///
/// `direction` is e.g. `A->B` (sent), `B->A` (received and applied) or
/// `A` (local only); `action` one of created, updated, deleted, renamed,
/// conflict, queued, applied, superseded.
pub fn announce(direction: &str, action: &str, path: &str, size: Option<u64>) {
    let time = chrono::Local::now().format("%H:%M:%S%.3f");
    let size = size.map(human_size).unwrap_or_default();
    let colour = use_colour();
    let (on, off) = match (colour, action) {
        (false, _) => ("", ""),
        (true, "deleted") => ("\x1b[31m", "\x1b[0m"),
        (true, "conflict" | "superseded") => ("\x1b[33m", "\x1b[0m"),
        (true, "queued") => ("\x1b[35m", "\x1b[0m"),
        (true, _) => ("\x1b[32m", "\x1b[0m"),
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{time}  {direction:<5} {on}{action:<10}{off} {path}  {size}"
    );
    let _ = out.flush();
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
    fn human_sizes() {
        assert_eq!(super::human_size(0), "0 B");
        assert_eq!(super::human_size(1023), "1023 B");
        assert_eq!(super::human_size(4096), "4.0 KiB");
        assert_eq!(super::human_size(3 << 30), "3.0 GiB");
    }
}
