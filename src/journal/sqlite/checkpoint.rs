//! The checkpointer: folds the WAL back into the database file on its own thread, when the
//! writer's WAL hook says the WAL has grown and at least once a second.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError};

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

/// Past the cap, the writer is asked to fold once a pass copied at most this many frames
/// (its fold then has about as many to copy and sync)...
const FOLD_AFTER_FRAMES: i64 = 512;

/// ...or after this many back-to-back passes, so that a writer outrunning the checkpointer
/// still folds (the WAL must not grow without bound).
const CATCH_UP_PASSES: u32 = 8;

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

    /// Starts the checkpointer on its own connection to the database at `path`. It stops
    /// (after a last checkpoint) once the returned sender and the writer's connection are
    /// both dropped.
    pub(super) fn spawn(
        self,
        path: &std::path::Path,
        conn: Connection,
        wal_full: Arc<AtomicBool>,
    ) -> Result<Sender<()>, JournalError> {
        let Self {
            wake_tx,
            wake,
            asked,
        } = self;
        // A descriptor of its own to sync the database file with (sync is per file, not per
        // descriptor). It is never closed: closing any descriptor of a file drops every
        // POSIX lock this process holds on it, SQLite's included, and another process (an
        // export, `toolgate verify`) could then take the database as unused and delete its
        // WAL. One descriptor per opened journal is the price.
        let db = std::fs::File::open(path).map_err(|e| {
            JournalError::Storage(format!("cannot open {} for syncing: {e}", path.display()))
        })?;
        std::thread::Builder::new()
            .name("toolgate-ckpt".into())
            .spawn(move || {
                run(&conn, &db, &wake, &asked, &wal_full);
                drop(conn);
                std::mem::forget(db);
            })
            .map_err(|e| JournalError::Storage(format!("cannot start the checkpointer: {e}")))?;
        Ok(wake_tx)
    }
}

/// Copies committed WAL frames into the database file in PASSIVE mode (never waits for, nor
/// blocks, the writer or readers): every [`CHECKPOINT_EVERY`], or when the writer's WAL hook
/// sends on `wake` (at most every [`CHECKPOINT_GAP`]), until every sender is gone (the journal
/// and its writer), then once more.
///
/// SQLite syncs the database file only after a pass that reached the end of the WAL, which
/// under sustained writes never happens: the copied pages stayed dirty in the OS cache until
/// the writer's fold-back synced them all at once (megabytes: 3–7 ms during which no commit
/// ran, the tail of durable calls; BENCHMARKS.md session 5). So every pass that copied pages
/// is followed by an `fdatasync` of the database file here, off the writer's path.
///
/// When the WAL holds more than [`WAL_CAP_FRAMES`], passes run back to back until one copies
/// at most [`FOLD_AFTER_FRAMES`] (or [`CATCH_UP_PASSES`] have run), and only then is the
/// writer asked to fold: it then copies and syncs only what was committed since.
fn run(
    conn: &Connection,
    db: &std::fs::File,
    wake: &Receiver<()>,
    asked: &AtomicBool,
    wal_full: &AtomicBool,
) {
    let mut pacer = Pacer::default();
    let mut next = Step::Wait;
    loop {
        let last = match next {
            Step::Again => matches!(wake.try_recv(), Err(TryRecvError::Disconnected)),
            Step::Wait | Step::Fold => matches!(
                wake.recv_timeout(CHECKPOINT_EVERY),
                Err(RecvTimeoutError::Disconnected)
            ),
        };
        asked.store(false, Ordering::Relaxed);
        let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        });
        next = match done {
            Ok((log, done)) => {
                let (sync, step) = pacer.after_pass(log, done);
                if sync && let Err(e) = db.sync_data() {
                    tracing::warn!(error = %e, "journal checkpoint: cannot sync the database file");
                }
                if step == Step::Fold {
                    tracing::debug!(
                        frames = log,
                        "journal WAL over its cap: the writer folds it back"
                    );
                    wal_full.store(true, Ordering::Relaxed);
                }
                step
            }
            Err(e) => {
                tracing::warn!(error = %e, "journal checkpoint failed; the WAL keeps growing until one succeeds");
                pacer = Pacer::default();
                Step::Wait
            }
        };
        if last {
            return;
        }
        if next != Step::Again {
            std::thread::sleep(CHECKPOINT_GAP);
        }
    }
}

/// What the checkpointer does after a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Wait for the next wake-up (the WAL is within its cap).
    Wait,
    /// Run another pass at once: the WAL is over its cap and the last pass still had much
    /// to copy.
    Again,
    /// Ask the writer to fold the WAL back, then wait.
    Fold,
}

/// The checkpointer's memory between passes: what was copied, and how long it has been
/// catching up.
#[derive(Debug, Default)]
struct Pacer {
    /// WAL frames already in the database file after the last pass.
    backfilled: i64,
    /// Back-to-back passes run so far with the WAL over its cap.
    catching_up: u32,
}

impl Pacer {
    /// From a pass's result (`log`: frames in the WAL, `done`: frames in the database file):
    /// whether to sync the database file (the pass copied pages) and what to do next.
    /// SQLite has synced it already when no commit landed during the pass, but `log` is the
    /// WAL's length when the pass began, so the result cannot tell; syncing a clean file
    /// costs next to nothing.
    fn after_pass(&mut self, log: i64, done: i64) -> (bool, Step) {
        // `done` counts from the start of the WAL, which starts over after a fold.
        let copied = if done >= self.backfilled {
            done - self.backfilled
        } else {
            done
        };
        self.backfilled = done;
        let step = if log <= WAL_CAP_FRAMES {
            Step::Wait
        } else if copied <= FOLD_AFTER_FRAMES || self.catching_up >= CATCH_UP_PASSES {
            Step::Fold
        } else {
            Step::Again
        };
        self.catching_up = if step == Step::Again {
            self.catching_up + 1
        } else {
            0
        };
        (copied > 0, step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pass_that_copied_pages_is_synced() {
        let mut p = Pacer::default();
        assert_eq!(p.after_pass(40, 40), (true, Step::Wait));
        // Nothing new since: nothing to sync.
        assert_eq!(p.after_pass(40, 40), (false, Step::Wait));
        assert_eq!(p.after_pass(50, 45), (true, Step::Wait));
        // The WAL started over (a fold): the new count is all newly copied.
        assert_eq!(p.after_pass(10, 8), (true, Step::Wait));
        assert_eq!(p.after_pass(10, 8), (false, Step::Wait));
    }

    #[test]
    fn over_the_cap_passes_catch_up_before_the_writer_folds() {
        let cap = WAL_CAP_FRAMES;
        let big = FOLD_AFTER_FRAMES + 1;
        let mut p = Pacer::default();
        // A long pass over the cap: copy again at once, no fold yet.
        assert_eq!(p.after_pass(cap + 1, big), (true, Step::Again));
        assert_eq!(p.after_pass(cap + 2, 2 * big), (true, Step::Again));
        // A short pass: the writer has little left to copy, so it folds now.
        assert_eq!(
            p.after_pass(cap + 3, 2 * big + FOLD_AFTER_FRAMES),
            (true, Step::Fold)
        );
        // The WAL starts over after the fold.
        assert_eq!(p.after_pass(5, 5), (true, Step::Wait));
    }

    #[test]
    fn a_writer_that_outruns_the_checkpointer_still_folds() {
        let big = FOLD_AFTER_FRAMES + 1;
        let mut p = Pacer::default();
        let mut done = 0;
        for pass in 0..CATCH_UP_PASSES {
            done += big;
            assert_eq!(
                p.after_pass(WAL_CAP_FRAMES + done, done),
                (true, Step::Again),
                "pass {pass}"
            );
        }
        done += big;
        assert_eq!(
            p.after_pass(WAL_CAP_FRAMES + done, done),
            (true, Step::Fold)
        );
        // And catching up starts afresh.
        assert_eq!(
            p.after_pass(WAL_CAP_FRAMES + done + big, done + big),
            (true, Step::Again)
        );
    }
}
