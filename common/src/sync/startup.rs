//! The engine's start-up as the rest of the server sees it. The first
//! scan of a big folder takes a while (minutes at a million files): the
//! server answers clients meanwhile, `lab3 status` shows how far the scan
//! is, and what needs the engine's journal (Server A's locks) waits for
//! [`StartUp::ready`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;

/// How far the start-up is, shared by the engine's thread (which sets it)
/// and the server (which shows it and waits on it).
#[derive(Debug)]
pub struct StartUp {
    /// Files and folders the start-up scan found so far.
    found: AtomicU64,
    /// `None` while starting; then `Ok`, or why the engine could not start.
    done: watch::Sender<Option<Result<(), String>>>,
}

impl Default for StartUp {
    fn default() -> Self {
        StartUp {
            found: AtomicU64::new(0),
            done: watch::Sender::new(None),
        }
    }
}

impl StartUp {
    /// The scan found `n` entries so far.
    pub fn found(&self, n: usize) {
        self.found.store(n as u64, Ordering::Relaxed);
    }

    /// While the engine is starting: the entries its scan found so far.
    pub fn scanning(&self) -> Option<u32> {
        let found = self.found.load(Ordering::Relaxed);
        self.done
            .borrow()
            .is_none()
            .then(|| u32::try_from(found).unwrap_or(u32::MAX))
    }

    /// The engine runs (`Ok`) or could not start.
    pub fn finish(&self, result: Result<(), String>) {
        self.done.send_replace(Some(result));
    }

    /// Waits until the engine runs; an error says why it could not start.
    pub async fn ready(&self) -> anyhow::Result<()> {
        let mut rx = self.done.subscribe();
        let done = rx.wait_for(Option::is_some).await;
        match done.as_deref() {
            Ok(Some(Ok(()))) => Ok(()),
            Ok(Some(Err(e))) => anyhow::bail!("the sync engine could not start: {e}"),
            _ => anyhow::bail!("the sync engine stopped while starting"),
        }
    }
}

/// For tests only: `LAB3_TEST_SCAN_DELAY_MS=N` makes the start-up scan
/// wait N ms after each folder, so that a test can ask `lab3 status`
/// while a small tree is still being scanned.
pub fn test_delay_per_folder() -> Option<Duration> {
    let ms: u64 = std::env::var("LAB3_TEST_SCAN_DELAY_MS")
        .ok()?
        .parse()
        .ok()?;
    Some(Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn scanning_counts_until_finished_and_ready_says_how_it_ended() {
        let s = StartUp::default();
        assert_eq!(s.scanning(), Some(0));
        s.found(412_000);
        assert_eq!(s.scanning(), Some(412_000));
        s.finish(Ok(()));
        assert_eq!(s.scanning(), None);
        s.ready().await.unwrap();

        let s = StartUp::default();
        s.finish(Err("cannot read the journal".into()));
        let e = s.ready().await.unwrap_err().to_string();
        assert!(e.contains("cannot read the journal"), "{e}");
    }
}
