//! Operator-facing reasons why the data dir or the journal file cannot be opened.
//!
//! SQLite reports every failure to open a file as "unable to open database file", which
//! does not say whether the file is missing, unreadable, or in a directory the process may
//! not write (SQLite creates the `-wal` and `-shm` files beside it). After such a failure the
//! same accesses are tried again with `std::fs`, whose errors do say, and the answer names
//! the path, its owner and mode, and the uid the gateway runs as.

use std::io::ErrorKind;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// The uid this process runs as: the owner of `/proc/self` (Linux), without `unsafe` code.
pub fn process_uid() -> Option<u32> {
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

/// "cannot ACTION PATH: ERROR", or for a permission error "permission denied: ..." with the
/// process's uid and the owner and mode of PATH (or of its folder when PATH does not exist).
pub fn describe(action: &str, path: &Path, e: &std::io::Error) -> String {
    if e.kind() != ErrorKind::PermissionDenied {
        return format!("cannot {action} {}: {e}", path.display());
    }
    let uid = process_uid().map_or_else(|| "an unknown uid".to_string(), |u| format!("uid {u}"));
    let owner = [Some(path), path.parent()]
        .into_iter()
        .flatten()
        .find_map(|p| std::fs::metadata(p).ok().map(|m| (p, m)))
        .map(|(p, m)| {
            format!(
                " ({} is owned by uid {}, mode {:04o})",
                p.display(),
                m.uid(),
                m.mode() & 0o7777
            )
        })
        .unwrap_or_default();
    format!(
        "permission denied: toolgate runs as {uid} and cannot {action} {}{owner}; give that \
         user access, or point data_dir at a directory it owns",
        path.display()
    )
}

/// Why SQLite could not open `db` in `dir`, when `std::fs` can tell: the file (or its WAL
/// and shared-memory files) cannot be opened for reading and writing, or `dir` does not take
/// new files. `None` when every such access works, so the cause lies elsewhere.
pub fn diagnose_open(dir: &Path, db: &Path) -> Option<String> {
    let mut files = vec![db.to_path_buf()];
    for suffix in ["-wal", "-shm"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        let p = std::path::PathBuf::from(name);
        if p.exists() {
            files.push(p);
        }
    }
    for f in &files {
        if let Err(e) = std::fs::OpenOptions::new().read(true).write(true).open(f) {
            return Some(describe("open for reading and writing", f, &e));
        }
    }
    let probe = dir.join(format!(".toolgate-probe-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            None
        }
        Err(e) => Some(describe("create files in", dir, &e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_permission_error_names_the_path_its_mode_and_the_uid() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("journal.db");
        std::fs::write(&db, b"").unwrap();
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o400)).unwrap();
        let e = std::io::Error::from(ErrorKind::PermissionDenied);
        let text = describe("open for reading and writing", &db, &e);
        let uid = process_uid().expect("Linux has /proc/self");
        let want = format!(
            "permission denied: toolgate runs as uid {uid} and cannot open for reading and \
             writing {} ({} is owned by uid {uid}, mode 0400)",
            db.display(),
            db.display()
        );
        assert!(text.starts_with(&want), "{text}");

        // A path that does not exist: its folder's owner and mode.
        let missing = dir.path().join("nope.db");
        let text = describe("create", &missing, &e);
        assert!(
            text.contains(&format!("({} is owned by", dir.path().display())),
            "{text}"
        );
    }

    #[test]
    fn other_errors_keep_their_own_text() {
        let e = std::io::Error::from(ErrorKind::NotFound);
        let text = describe("open", Path::new("/x/journal.db"), &e);
        assert!(text.starts_with("cannot open /x/journal.db: "), "{text}");
    }

    #[test]
    fn a_usable_dir_and_file_have_nothing_to_report() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("journal.db");
        std::fs::write(&db, b"").unwrap();
        assert_eq!(diagnose_open(dir.path(), &db), None);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "probe left behind"
        );
    }
}
