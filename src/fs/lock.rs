//! One output folder, one run: a run holds an exclusive `flock` on `.grab-lock`
//! in its folder for as long as it works there, with its pid written inside, so
//! a second run on the same folder refuses with a clear message instead of two
//! runs sharing part files and names. The kernel drops the lock when its holder
//! dies, however it dies, so a stale lock file is simply taken over. The name
//! starts with a dot, which no sanitised download name can.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

pub const LOCK_NAME: &str = ".grab-lock";

/// Held while a run works in its folder; removes the lock file when dropped
/// (an exclusive holder only: shared holders leave it to each other).
pub struct FolderLock {
    path: PathBuf,
    file: Flock<File>,
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
        let mode = match exclusive {
            true => FlockArg::LockExclusiveNonblock,
            false => FlockArg::LockSharedNonblock,
        };
        loop {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .custom_flags(nix::libc::O_NOFOLLOW)
                .open(&path)?;
            let mut file = match Flock::lock(file, mode) {
                Ok(locked) => locked,
                Err((mut file, Errno::EWOULDBLOCK)) => {
                    let mut holder = String::new();
                    let _ = file.read_to_string(&mut holder);
                    let holder = match holder.trim() {
                        "" => "queue workers".to_string(),
                        pid => format!("pid {pid}"),
                    };
                    return Err(io::Error::new(
                        io::ErrorKind::WouldBlock,
                        format!(
                            "{} is in use by another grab run ({holder}); wait for it to end or use another folder",
                            directory.display(),
                        ),
                    ));
                }
                Err((_, errno)) => return Err(errno.into()),
            };
            // The run before may have removed the file between our open and our
            // lock: a lock on a file nobody else can open would protect nothing.
            let ours = file.metadata()?;
            let current = path.symlink_metadata().ok();
            if current.is_none_or(|now| (now.dev(), now.ino()) != (ours.dev(), ours.ino())) {
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
        // exclusive; the others leave the file to it.
        if !self.exclusive && self.file.relock(FlockArg::LockExclusiveNonblock).is_err() {
            return;
        }
        // Removed while still locked; a run that opened it meanwhile sees that
        // the path no longer leads to its file, and tries again.
        let _ = std::fs::remove_file(&self.path);
    }
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
        let written = std::fs::read_to_string(directory.path().join(LOCK_NAME)).unwrap();
        assert_eq!(written.trim(), std::process::id().to_string());
        let error = FolderLock::take(directory.path()).err().unwrap();
        assert!(
            error
                .to_string()
                .contains(&format!("pid {}", std::process::id())),
            "{error}"
        );
        drop(lock);
        assert!(!directory.path().join(LOCK_NAME).exists());
        let _again = FolderLock::take(directory.path()).unwrap();
    }
}
