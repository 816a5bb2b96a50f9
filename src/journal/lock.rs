//! The data dir's exclusive lock: one writing process per journal.
//!
//! The journal writer keeps the chain's next `seq` and `prev_hash` in memory, and the
//! safety state (hard stops, spam windows) lives in the process that loaded it. A second
//! process writing the same journal would make every audit append of the first fail (a
//! duplicate `seq`) while its side effects go on, and a stop tripped in one would not be
//! enforced by the other. So a gateway takes an exclusive `flock` on the data dir before it
//! opens the database (and writes its pid to `journal.lock`), and a second one refuses to
//! start. Read-only tools (export, verify,
//! incident bundles) do not take it: they read a consistent snapshot beside a live gateway.
//!
//! The lock is advisory and held by the open directory, so the kernel releases it however
//! the holder ends (exit, crash, SIGKILL): nothing stale to clean up after a crash.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use super::JournalError;

/// File name of the lock, beside `journal.db`.
pub const LOCK_FILE: &str = "journal.lock";

/// How long `acquire` waits for a holder in this same process to let go: a journal dropped
/// just before it is reopened (tests, benchmarks) releases its lock when its writer thread
/// has finished the last batch, a few milliseconds later. Another live process holds it for
/// good, so the wait only delays that error by this much.
const GRACE: Duration = Duration::from_millis(1500);

/// An exclusive lock on a data dir, released when dropped.
#[derive(Debug)]
pub struct DirLock {
    _dir: File,
}

impl DirLock {
    /// Takes the lock on the data dir itself, or says which process holds it.
    ///
    /// The lock is on the directory, not on a file in it: a lock file can be deleted or
    /// replaced while its holder runs (a cleanup script, an operator), and a second process
    /// would then lock the new file and start. The directory cannot be replaced without
    /// moving the journal with it. `journal.lock` only names the holder, for the message.
    pub fn acquire(dir: &Path) -> Result<Self, JournalError> {
        let path = dir.join(LOCK_FILE);
        let held = File::open(dir)
            .map_err(|e| JournalError::Storage(super::access::describe("open", dir, &e)))?;
        let started = Instant::now();
        loop {
            match held.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if started.elapsed() < GRACE => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(JournalError::InUse {
                        lock: dir.display().to_string(),
                        holder: holder(&path),
                    });
                }
                Err(TryLockError::Error(e)) => {
                    return Err(JournalError::Storage(format!(
                        "cannot lock the data dir {}: {e}",
                        dir.display()
                    )));
                }
            }
        }
        // Who holds it, for the error a second process prints. Best effort: the lock, not
        // this file, is what excludes.
        let _ = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| writeln!(f, "{}", std::process::id()));
        Ok(Self { _dir: held })
    }
}

/// The holder's pid as it wrote it, if readable.
fn holder(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_and_named_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(dir.path()).unwrap();
        let started = Instant::now();
        match DirLock::acquire(dir.path()) {
            Err(JournalError::InUse { lock, holder }) => {
                assert_eq!(lock, dir.path().display().to_string());
                assert_eq!(holder, Some(std::process::id()));
            }
            other => panic!("expected InUse, got {other:?}"),
        }
        assert!(started.elapsed() >= GRACE, "it waits out the grace first");
        // Deleting or replacing the pid file does not free the data dir.
        std::fs::remove_file(dir.path().join(LOCK_FILE)).unwrap();
        assert!(matches!(
            DirLock::acquire(dir.path()),
            Err(JournalError::InUse { holder: None, .. })
        ));
        drop(first);
        DirLock::acquire(dir.path()).expect("free again once the holder drops it");
    }

    #[tokio::test]
    async fn a_new_journals_files_are_readable_by_their_owner_only() {
        use crate::journal::Store;
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (j, _) = crate::journal::sqlite::SqliteJournal::open(dir.path(), 0).unwrap();
        let mut r = crate::journal::AuditRecord::new(
            uuid::Uuid::now_v7().to_string(),
            crate::clock::rfc3339(1_000),
            crate::journal::RecordKind::Call,
            "t",
            crate::journal::Outcome::Success,
        );
        r.tenant = Some("a".into());
        j.append(r).await.unwrap();
        for f in [LOCK_FILE, "journal.db", "journal.db-wal", "journal.db-shm"] {
            let mode = std::fs::metadata(dir.path().join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{f}: {mode:o}");
        }
    }
}
