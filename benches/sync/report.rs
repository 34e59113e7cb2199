//! The results as a markdown table, and the "Sync" section of
//! `bench/RESULTS.md` (other sections of that file are left as they are).

use std::path::Path;

/// One line of the table.
pub struct Row {
    /// Row number of the brief (1-5).
    pub n: u8,
    pub what: String,
    pub lab3: String,
    /// The peer's figure, with the tool named, or why there is none.
    pub peer: String,
    /// lab3 / peer, on the medians.
    pub ratio: Option<f64>,
    pub target: String,
    /// `None`: reported for information, no target.
    pub pass: Option<bool>,
}

impl Row {
    pub fn new(n: u8, what: impl Into<String>) -> Row {
        Row {
            n,
            what: what.into(),
            lab3: String::new(),
            peer: "—".into(),
            ratio: None,
            target: "—".into(),
            pass: None,
        }
    }
}

pub fn table(rows: &[Row]) -> String {
    let mut s = String::from(
        "| # | measure | lab3 | peer (same run) | lab3/peer | target | result |\n\
         | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for r in rows {
        let ratio = r.ratio.map(|x| format!("{x:.2}x")).unwrap_or("—".into());
        let pass = match r.pass {
            Some(true) => "pass",
            Some(false) => "**FAIL**",
            None => "info",
        };
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            r.n, r.what, r.lab3, r.peer, ratio, r.target, pass
        ));
    }
    s
}

/// Today's date (UTC) as YYYY-MM-DD, from the system clock.
pub fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    // Howard Hinnant's civil_from_days.
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Replaces (or adds) the `## Sync` section of `path` with `body`.
pub fn write_section(path: &Path, body: &str) -> std::io::Result<()> {
    write_named_section(path, "Sync", body)
}

/// Replaces (or adds) the `## {title}` section of `path` with `body`: the
/// text from its heading to the next heading (`##` or `###`), so that
/// the dated subsections under it are kept.
pub fn write_named_section(path: &Path, title: &str, body: &str) -> std::io::Result<()> {
    let heading = format!("## {title}");
    let old = std::fs::read_to_string(path).unwrap_or_else(|_| {
        "# lab3 benchmark results\n\nEach section is written by its benchmark's full run.\n".into()
    });
    let section = format!("{heading}\n\n{}\n", body.trim_end());
    let mut out = String::new();
    let mut lines = old.lines().peekable();
    let mut replaced = false;
    while let Some(line) = lines.next() {
        if line.trim_end() == heading && !replaced {
            // Skip the old section, up to the next heading: the dated
            // notes (`### `) written under it by hand stay.
            while lines
                .peek()
                .is_some_and(|l| !l.starts_with("## ") && !l.starts_with("### "))
            {
                lines.next();
            }
            out.push_str(&section);
            if lines.peek().is_some() {
                out.push('\n');
            }
            replaced = true;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !replaced {
        if !out.ends_with("\n\n") {
            out.push('\n');
        }
        out.push_str(&section);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, out)
}
