//! Linux's fast path for part files: every call relative to the folder's
//! handle, opened once, so no call walks the folder's path again; fresh parts
//! unnamed (`O_TMPFILE`) and linked to their name (`linkat`); commits with
//! `renameat2(RENAME_NOREPLACE)`, in one step that cannot follow a symlink at
//! the target. Where a call is missing (an old kernel, a filesystem without
//! it), the folder falls back a way, down to the portable one of `part.rs`.

use std::borrow::Cow;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;
use std::sync::atomic::Ordering;

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, AtFlags, OFlag, RenameFlags, openat, renameat2};
use nix::sys::stat::Mode;
use nix::unistd::{UnlinkatFlags, linkat, unlinkat};

use super::{Folder, Open, taken};

// How an unnamed part gets a name (`Folder::naming`): `linkat(AT_EMPTY_PATH)`
// (Linux 6.10 on for anyone, earlier only with CAP_DAC_READ_SEARCH), else
// through `/proc/self/fd`, else not at all: no unnamed parts are made (a
// filesystem without `O_TMPFILE`, no /proc) and one that exists is copied.
// `super::PORTABLE`, past these, is the way of every other system.
pub const EMPTY_PATH: u8 = 0;
pub const PROC_FD: u8 = 1;
pub const NAMED_ONLY: u8 = 2;

impl Folder {
    /// Where `relative` is, for a `*at` call: the handle and the name, or, while
    /// the folder cannot be opened (not made yet), the current directory and the
    /// whole path.
    fn at<'a>(&self, relative: &'a str) -> (BorrowedFd<'_>, Cow<'a, Path>) {
        if self.handle.get().is_none()
            && let Ok(handle) = openat(
                AT_FDCWD,
                &self.path,
                OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
        {
            // Another thread may have set it first: either handle is this folder.
            let _ = self.handle.set(handle);
        }
        match self.handle.get() {
            Some(handle) => (handle.as_fd(), Cow::Borrowed(Path::new(relative))),
            None => (AT_FDCWD, Cow::Owned(self.path.join(relative))),
        }
    }
}

/// Gives the open file `file` the name `relative` in `folder`, refusing a name
/// that is taken (`EEXIST`), as `renameat2(RENAME_NOREPLACE)` does.
/// `Unsupported` when no way of linking works here.
pub fn link(folder: &Folder, file: &File, relative: &str) -> io::Result<()> {
    let (directory, path) = folder.at(relative);
    loop {
        let way = folder.naming.load(Ordering::Relaxed);
        let result = match way {
            EMPTY_PATH => linkat(file, "", directory, path.as_ref(), AtFlags::AT_EMPTY_PATH),
            PROC_FD => {
                use std::os::fd::AsRawFd;
                let proc_path = format!("/proc/self/fd/{}", file.as_raw_fd());
                linkat(
                    AT_FDCWD,
                    proc_path.as_str(),
                    directory,
                    path.as_ref(),
                    AtFlags::AT_SYMLINK_FOLLOW,
                )
            }
            _ => return Err(io::Error::from(io::ErrorKind::Unsupported)),
        };
        match result {
            Ok(()) => return Ok(()),
            Err(Errno::EEXIST) => return Err(taken()),
            // Refused for want of the capability, or no /proc: the next way.
            Err(Errno::ENOENT | Errno::EPERM | Errno::EACCES | Errno::EINVAL) => {
                let _ = (folder.naming).compare_exchange(
                    way,
                    way + 1,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
            }
            Err(errno) => return Err(errno.into()),
        }
    }
}

/// A fresh unnamed part in the folder of `name`, or `None` where the folder
/// makes named parts only (and from now on it does).
pub fn create_unnamed(folder: &Folder, name: &str) -> io::Result<Option<File>> {
    if folder.naming.load(Ordering::Relaxed) >= NAMED_ONLY {
        return Ok(None);
    }
    let subfolder = name.rsplit_once('/').map_or(".", |(folders, _)| folders);
    let (directory, path) = folder.at(subfolder);
    match openat(
        directory,
        path.as_ref(),
        OFlag::O_TMPFILE | OFlag::O_RDWR | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o666),
    ) {
        Ok(file) => Ok(Some(File::from(file))),
        // No O_TMPFILE here (an old kernel, a filesystem without it).
        Err(Errno::EOPNOTSUPP | Errno::EISDIR | Errno::EINVAL) => {
            folder.naming.store(NAMED_ONLY, Ordering::Relaxed);
            Ok(None)
        }
        Err(errno) => Err(errno.into()),
    }
}

/// `part_name` in the folder, opened for writing as `how` says.
pub fn open_named(folder: &Folder, part_name: &str, how: Open) -> io::Result<File> {
    let flags = match how {
        // `O_EXCL` refuses anything already there, a symlink included, so a
        // planted link is never followed.
        Open::New => OFlag::O_CREAT | OFlag::O_EXCL,
        Open::Again { create: true } => OFlag::O_CREAT | OFlag::O_NOFOLLOW,
        Open::Again { create: false } => OFlag::O_NOFOLLOW,
    };
    let (directory, path) = folder.at(part_name);
    let file = openat(
        directory,
        path.as_ref(),
        flags | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o666),
    )?;
    Ok(File::from(file))
}

/// Renames `from` to `to` in the folder: replacing what is there when asked
/// (rename replaces a symlink itself, never what it points to), else refusing
/// a taken name, with the portable commit where the filesystem lacks
/// `RENAME_NOREPLACE`.
pub fn rename(folder: &Folder, from: &str, to: &str, replace: bool) -> io::Result<()> {
    let (from_directory, from_path) = folder.at(from);
    let (to_directory, to_path) = folder.at(to);
    let flags = match replace {
        true => RenameFlags::empty(),
        false => RenameFlags::RENAME_NOREPLACE,
    };
    match renameat2(
        from_directory,
        from_path.as_ref(),
        to_directory,
        to_path.as_ref(),
        flags,
    ) {
        Ok(()) => Ok(()),
        Err(Errno::EEXIST) if !replace => Err(taken()),
        Err(_) if !replace => {
            super::portable::commit(&folder.path.join(from), &folder.path.join(to))
        }
        Err(errno) => Err(errno.into()),
    }
}

/// Removes `relative` from the folder, quietly: a part that is not there is gone.
pub fn remove(folder: &Folder, relative: &str) {
    let (directory, path) = folder.at(relative);
    let _ = unlinkat(directory, path.as_ref(), UnlinkatFlags::NoRemoveDir);
}
