//! One server per state directory: two servers on one journal, one lock
//! table and one set of temporary files would undo each other's work (the
//! second would delete the first's transfers in progress). Each server
//! holds an exclusive OS lock (`flock` on Unix, `LockFileEx` on Windows,
//! through `std::fs::File::try_lock`) on `<state>/server.lock` for as long
//! as it runs; the OS drops it when the process ends, however it ends.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::Path;
use std::sync::Arc;

/// The lock, held while this value lives.
#[derive(Debug, Clone)]
pub struct StateLock(#[allow(dead_code)] Arc<File>);

/// Takes the state directory `dir` (made if missing) for this process, or
/// fails with one line naming it (and the holder's process id).
pub fn take(dir: &Path) -> anyhow::Result<StateLock> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("server.lock");
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let pid = holder.trim();
            let who = if pid.is_empty() {
                "another running server".to_string()
            } else {
                format!("another running server (process {pid})")
            };
            anyhow::bail!(
                "the state directory {} is in use by {who}; stop that one, or give this one its own --state-dir",
                dir.display()
            );
        }
        Err(TryLockError::Error(e)) => {
            anyhow::bail!("cannot lock {}: {e}", path.display())
        }
    }
    // Who holds it, for the message above (a hint only: the lock decides).
    file.set_len(0)?;
    file.rewind()?;
    writeln!(file, "{}", std::process::id())?;
    Ok(StateLock(Arc::new(file)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let d = tempfile::tempdir().unwrap();
        let first = super::take(d.path()).unwrap();
        let err = super::take(d.path()).unwrap_err().to_string();
        assert!(
            err.contains("in use by another running server (process"),
            "{err}"
        );
        drop(first);
        super::take(d.path()).unwrap();
    }
}
