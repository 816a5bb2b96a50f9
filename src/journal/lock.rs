//! The data dir's exclusive lock: one writing process per journal.
//!
//! The journal writer keeps the chain's next `seq` and `prev_hash` in memory, and the
//! safety state (hard stops, spam windows) lives in the process that loaded it. A second
//! process writing the same journal would make every audit append of the first fail (a
//! duplicate `seq`) while its side effects go on, and a stop tripped in one would not be
//! enforced by the other. So a gateway takes an exclusive `flock` on `journal.lock` before it
//! opens the database, and a second one refuses to start. Read-only tools (export, verify,
//! incident bundles) do not take it: they read a consistent snapshot beside a live gateway.
//!
//! The lock is advisory and held by the open file, so the kernel releases it however the
//! holder ends (exit, crash, SIGKILL): no stale lock file to clean up after a crash.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
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
    _file: File,
}

impl DirLock {
    /// Takes the lock on `dir/journal.lock`, or says which process holds it.
    pub fn acquire(dir: &Path) -> Result<Self, JournalError> {
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| JournalError::Storage(super::access::describe("open", &path, &e)))?;
        let started = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if started.elapsed() < GRACE => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(JournalError::InUse {
                        lock: path.display().to_string(),
                        holder: holder(&mut file),
                    });
                }
                Err(TryLockError::Error(e)) => {
                    return Err(JournalError::Storage(format!(
                        "cannot lock {}: {e}",
                        path.display()
                    )));
                }
            }
        }
        // Who holds it, for the error a second process prints. Best effort: the lock, not
        // this text, is what excludes.
        let _ = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()));
        Ok(Self { _file: file })
    }
}

/// The holder's pid as it wrote it, if readable.
fn holder(file: &mut File) -> Option<u32> {
    let mut s = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut s).ok()?;
    s.trim().parse().ok()
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
                assert_eq!(lock, dir.path().join(LOCK_FILE).display().to_string());
                assert_eq!(holder, Some(std::process::id()));
            }
            other => panic!("expected InUse, got {other:?}"),
        }
        assert!(started.elapsed() >= GRACE, "it waits out the grace first");
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
