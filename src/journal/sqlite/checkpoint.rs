//! The checkpointer: folds the WAL back into the database file on its own thread, when the
//! writer's WAL hook says the WAL has grown and at least once a second.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};

use rusqlite::Connection;

use crate::journal::JournalError;

/// The checkpointer folds the WAL back into the database file at least this often (in unit
/// tests never, so that they see the frame trigger below at work)...
#[cfg(not(test))]
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
#[cfg(test)]
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// ...and sooner once a commit leaves this many frames (pages) in the WAL (4 MiB of 4 KiB
/// pages). A light load (a few thousand read-only calls a second) thus checkpoints about once
/// a second instead of ten times: each checkpoint copies pages and syncs two files, and on a
/// small machine that work lands in the tail of concurrent calls.
#[cfg(not(test))]
const CHECKPOINT_AFTER_FRAMES: i32 = 1024;
#[cfg(test)]
const CHECKPOINT_AFTER_FRAMES: i32 = 16;

/// Under sustained writes the WAL stays past [`CHECKPOINT_AFTER_FRAMES`], and every commit
/// asks again: checkpoints are spaced at least this far apart.
const CHECKPOINT_GAP: std::time::Duration = std::time::Duration::from_millis(100);

/// WAL frames (pages) past which the writer finishes a checkpoint itself, so the WAL starts
/// over (32 MiB of 4 KiB pages; small in tests so they can see it).
#[cfg(not(test))]
const WAL_CAP_FRAMES: i64 = 8192;
#[cfg(test)]
const WAL_CAP_FRAMES: i64 = 64;

/// The link between the writer's WAL hook and the checkpointer thread.
pub(super) struct Schedule {
    wake_tx: Sender<()>,
    wake: Receiver<()>,
    /// A wake-up is pending (so the hook sends at most one per checkpoint).
    asked: Arc<AtomicBool>,
}

impl Schedule {
    /// Installs the WAL hook on the writer's connection; call it after `wal_autocheckpoint`,
    /// which replaces any hook.
    pub(super) fn hook(conn: &mut Connection) -> Result<Self, JournalError> {
        let (wake_tx, wake) = std::sync::mpsc::channel::<()>();
        let asked = Arc::new(AtomicBool::new(false));
        let (hook_asked, hook_tx) = (asked.clone(), wake_tx.clone());
        conn.wal_hook(Some(move |_: &mut rusqlite::hooks::Wal, frames: i32| {
            if frames >= CHECKPOINT_AFTER_FRAMES && !hook_asked.swap(true, Ordering::Relaxed) {
                let _ = hook_tx.send(());
            }
            Ok(())
        }))?;
        Ok(Self {
            wake_tx,
            wake,
            asked,
        })
    }

    /// Starts the checkpointer on its own connection. It stops (after a last checkpoint)
    /// once the returned sender and the writer's connection are both dropped.
    pub(super) fn spawn(
        self,
        conn: Connection,
        wal_full: Arc<AtomicBool>,
    ) -> Result<Sender<()>, JournalError> {
        let Self {
            wake_tx,
            wake,
            asked,
        } = self;
        std::thread::Builder::new()
            .name("toolgate-ckpt".into())
            .spawn(move || run(&conn, &wake, &asked, &wal_full))
            .map_err(|e| JournalError::Storage(format!("cannot start the checkpointer: {e}")))?;
        Ok(wake_tx)
    }
}

/// Copies committed WAL frames into the database file in PASSIVE mode (never waits for, nor
/// blocks, the writer or readers): every [`CHECKPOINT_EVERY`], or when the writer's WAL hook
/// sends on `wake` (at most every [`CHECKPOINT_GAP`]), until every sender is gone (the journal
/// and its writer), then once more. When the WAL holds more than [`WAL_CAP_FRAMES`] it asks
/// the writer to finish the job.
fn run(conn: &Connection, wake: &Receiver<()>, asked: &AtomicBool, wal_full: &AtomicBool) {
    loop {
        let last = matches!(
            wake.recv_timeout(CHECKPOINT_EVERY),
            Err(RecvTimeoutError::Disconnected)
        );
        asked.store(false, Ordering::Relaxed);
        let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        });
        match done {
            Ok((_, log, _)) if log > WAL_CAP_FRAMES => wal_full.store(true, Ordering::Relaxed),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "journal checkpoint failed; the WAL keeps growing until one succeeds")
            }
        }
        if last {
            return;
        }
        std::thread::sleep(CHECKPOINT_GAP);
    }
}
