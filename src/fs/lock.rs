//! One output folder, one run: a run holds an exclusive lock (std's file lock:
//! `flock` on Unix, `LockFileEx` on Windows) on `.grab-lock` in its folder for as long as it works there, with its pid written inside, so
//! a second run on the same folder refuses with a clear message instead of two
//! runs sharing part files and names. The system drops the lock when its holder
//! dies, however it dies, so a stale lock file is simply taken over. The name
//! starts with a dot, which no sanitised download name can.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

use super::system::{identity, identity_at, open_no_follow};

pub const LOCK_NAME: &str = ".grab-lock";

/// Held while a run works in its folder; removes the lock file when dropped
/// (an exclusive holder only: shared holders leave it to each other).
pub struct FolderLock {
    path: PathBuf,
    file: File,
    exclusive: bool,
}

impl FolderLock {
    /// Takes the folder's lock, or says which process holds it.
    pub fn take(directory: &Path) -> io::Result<FolderLock> {
        FolderLock::lock(directory, true)
    }

    /// Takes the folder's lock shared: `grab queue work` processes, which get
    /// their names from the queue, work side by side (on one machine or over a
    /// network filesystem whose `flock` reaches the server, as NFSv4's does),
    /// and a `grab get` on the folder refuses while any of them runs.
    pub fn share(directory: &Path) -> io::Result<FolderLock> {
        FolderLock::lock(directory, false)
    }

    fn lock(directory: &Path, exclusive: bool) -> io::Result<FolderLock> {
        let path = directory.join(LOCK_NAME);
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        loop {
            let mut file = open_no_follow(&options, &path)?;
            // std's file locks are `flock` on Unix and `LockFileEx` on Windows:
            // both dropped by the system when the holder dies.
            let locked = match exclusive {
                true => file.try_lock(),
                false => file.try_lock_shared(),
            };
            match locked {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    let mut holder = String::new();
                    // Windows refuses reading a file another process has locked:
                    // the holder is then unknown.
                    let holder = match file.read_to_string(&mut holder) {
                        Ok(_) if holder.trim().is_empty() => " (queue workers)".to_string(),
                        Ok(_) => format!(" (pid {})", holder.trim()),
                        Err(_) => String::new(),
                    };
                    return Err(io::Error::new(
                        io::ErrorKind::WouldBlock,
                        format!(
                            "{} is in use by another grab run{holder}; wait for it to end or use another folder",
                            directory.display(),
                        ),
                    ));
                }
                Err(TryLockError::Error(error)) => return Err(error),
            }
            // The run before may have removed the file between our open and our
            // lock: a lock on a file nobody else can open would protect nothing.
            if identity_at(&path) != Some(identity(&file)?) {
                continue;
            }
            if exclusive {
                file.set_len(0)?;
                file.rewind()?;
                writeln!(file, "{}", std::process::id())?;
            }
            return Ok(FolderLock {
                path,
                file,
                exclusive,
            });
        }
    }
}

impl Drop for FolderLock {
    fn drop(&mut self) {
        // The last of the shared holders is the one that can turn its lock
        // exclusive; the others leave the file to it. (Turning a lock
        // exclusive is an unlock and a new lock on every system, `flock`'s
        // own conversion included.)
        if !self.exclusive {
            let _ = self.file.unlock();
            if self.file.try_lock().is_err() {
                return;
            }
        }
        // Removed while still locked; a run that opened it meanwhile sees that
        // the path no longer leads to its file, and tries again.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Waits for, then holds until the file is dropped, the one exclusive lock on
/// the folder `directory` itself: for a short write that runs sharing the
/// folder take turns at (a dataset's `stats.json`), apart from
/// [`FolderLock`]. On Unix the folder's own handle is locked. Windows cannot
/// lock a folder, so a file in it stands for it there, `.grab-folder-lock`,
/// which stays (removing it would race the next run's open).
pub fn wait_for_folder(directory: &Path) -> io::Result<File> {
    let file = folder_handle(directory)?;
    file.lock()?;
    Ok(file)
}

/// What [`wait_for_folder`] locks for the folder.
fn folder_handle(directory: &Path) -> io::Result<File> {
    #[cfg(unix)]
    return File::open(directory);
    #[cfg(windows)]
    return open_no_follow(
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false),
        &directory.join(".grab-folder-lock"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_and_stale_files_taken_over() {
        let directory = tempfile::tempdir().unwrap();
        // A lock file left by a run that died: nobody holds it.
        std::fs::write(directory.path().join(LOCK_NAME), "999999999\n").unwrap();
        let lock = FolderLock::take(directory.path()).unwrap();
        let error = FolderLock::take(directory.path()).err().unwrap();
        assert_eq!(error.kind(), io::ErrorKind::WouldBlock);
        // Windows refuses reading an exclusively locked file, to the holder's
        // other handles too: there the message has no pid.
        #[cfg(unix)]
        {
            let written = std::fs::read_to_string(directory.path().join(LOCK_NAME)).unwrap();
            assert_eq!(written.trim(), std::process::id().to_string());
            assert!(
                error
                    .to_string()
                    .contains(&format!("pid {}", std::process::id())),
                "{error}"
            );
        }
        drop(lock);
        assert!(!directory.path().join(LOCK_NAME).exists());
        let _again = FolderLock::take(directory.path()).unwrap();
    }

    #[test]
    fn shared_holders_keep_an_exclusive_one_out_and_the_last_removes_the_file() {
        let directory = tempfile::tempdir().unwrap();
        let first = FolderLock::share(directory.path()).unwrap();
        let second = FolderLock::share(directory.path()).unwrap();
        let error = FolderLock::take(directory.path()).err().unwrap();
        assert_eq!(error.kind(), io::ErrorKind::WouldBlock);
        assert!(error.to_string().contains("queue workers"), "{error}");
        drop(first);
        assert!(directory.path().join(LOCK_NAME).exists(), "still shared");
        assert!(FolderLock::take(directory.path()).is_err());
        drop(second);
        assert!(!directory.path().join(LOCK_NAME).exists());
        let taken = FolderLock::take(directory.path()).unwrap();
        assert!(FolderLock::share(directory.path()).is_err());
        drop(taken);
    }

    #[test]
    fn the_folder_lock_is_one_at_a_time() {
        let directory = tempfile::tempdir().unwrap();
        let held = wait_for_folder(directory.path()).unwrap();
        // Another handle (as another run would have) cannot take it meanwhile.
        let other = folder_handle(directory.path()).unwrap();
        assert!(matches!(other.try_lock(), Err(TryLockError::WouldBlock)));
        drop(held);
        other.try_lock().unwrap();
    }
}
