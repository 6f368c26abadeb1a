//! What differs between systems in how grab opens and tells files apart, in one
//! place, so the rest of `fs/` (and every command) is written once for all:
//! opening without following a symbolic link, which file a path or handle
//! is, and writing and reading at an offset.
//!
//! Long paths: on Windows, std turns a path past 260 characters into its
//! `\\?\` form itself on every file-system call (rust-lang/rust#89174, Rust
//! 1.58), and grab reaches files only through std (the handle calls here take
//! a handle std opened), so long paths work there without a prefix of grab's.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// Opens `path` with `options`, refusing a symbolic link at its last component:
/// a link planted in an output folder must never send a write, or a read,
/// elsewhere. On Unix the open does not wait either (a FIFO planted at the
/// path would block a reader forever); regular files are unchanged by that.
/// A refused link is an `InvalidInput` error naming the path.
#[cfg(unix)]
pub fn open_no_follow(options: &OpenOptions, path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = options.clone();
    options.custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK);
    options
        .open(path)
        .map_err(|error| match error.raw_os_error() {
            // What O_NOFOLLOW answers for a link.
            Some(nix::libc::ELOOP) => link_refused(path),
            _ => error,
        })
}

/// Opens `path` with `options`, refusing a symbolic link at its last component
/// (see the Unix version): the link itself is opened, never what it points to,
/// and refused once its type is known.
#[cfg(windows)]
pub fn open_no_follow(options: &OpenOptions, path: &Path) -> io::Result<File> {
    use std::os::windows::fs::OpenOptionsExt;
    use windows_sys::Win32::Storage::FileSystem::FILE_FLAG_OPEN_REPARSE_POINT;
    let mut options = options.clone();
    options.custom_flags(FILE_FLAG_OPEN_REPARSE_POINT);
    let file = options.open(path)?;
    if file.metadata()?.file_type().is_symlink() {
        return Err(link_refused(path));
    }
    Ok(file)
}

/// Writes all of `bytes` at `offset` in `file`, without moving a shared
/// cursor: the pieces of a `--split` download land at their places from
/// several threads through one handle.
#[cfg(unix)]
pub fn write_all_at(file: &File, bytes: &[u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, bytes, offset)
}

/// Writes all of `bytes` at `offset` in `file` (see the Unix version).
/// Windows's `seek_write` moves the handle's cursor as it writes, which no
/// caller of this relies on.
#[cfg(windows)]
pub fn write_all_at(file: &File, mut bytes: &[u8], mut offset: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !bytes.is_empty() {
        match file.seek_write(bytes, offset) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
            Ok(written) => {
                bytes = &bytes[written..];
                offset += written as u64;
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Fills `buffer` from `offset` in `file`, without moving a shared cursor:
/// records of a spool are read back by place while others are appended.
#[cfg(unix)]
pub fn read_exact_at(file: &File, buffer: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buffer, offset)
}

/// Fills `buffer` from `offset` in `file` (see the Unix version; Windows's
/// `seek_read` moves the handle's cursor, which no caller relies on).
#[cfg(windows)]
pub fn read_exact_at(file: &File, mut buffer: &mut [u8], mut offset: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buffer.is_empty() {
        match file.seek_read(buffer, offset) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
            Ok(read) => {
                buffer = &mut buffer[read..];
                offset += read as u64;
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

fn link_refused(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "{} is a symbolic link, which grab does not follow",
            path.display()
        ),
    )
}

/// Which file a handle or a path leads to: the same for two names of one file,
/// another for a file committed anew at a name (a rename brings another file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileIdentity {
    /// The device (Unix) or volume serial number (Windows).
    device: u64,
    /// The inode (Unix) or file index (Windows).
    index: u64,
}

/// The identity of an open file.
#[cfg(unix)]
pub fn identity(file: &File) -> io::Result<FileIdentity> {
    use std::os::unix::fs::MetadataExt;
    let metadata = file.metadata()?;
    Ok(FileIdentity {
        device: metadata.dev(),
        index: metadata.ino(),
    })
}

/// The identity of an open file.
#[cfg(windows)]
pub fn identity(file: &File) -> io::Result<FileIdentity> {
    use std::os::windows::io::AsRawHandle;
    use windows_sys::Win32::Storage::FileSystem::{
        BY_HANDLE_FILE_INFORMATION, GetFileInformationByHandle,
    };
    // SAFETY: the handle is open for the call (borrowed from `file`), and the
    // structure is plain data the call fills.
    let information = unsafe {
        let mut information: BY_HANDLE_FILE_INFORMATION = std::mem::zeroed();
        if GetFileInformationByHandle(file.as_raw_handle(), &mut information) == 0 {
            return Err(io::Error::last_os_error());
        }
        information
    };
    Ok(FileIdentity {
        device: information.dwVolumeSerialNumber.into(),
        index: (u64::from(information.nFileIndexHigh) << 32) | u64::from(information.nFileIndexLow),
    })
}

/// The identity of the regular file at `path`, not through a link: `None` when
/// there is none (nothing, a folder, a link).
#[cfg(unix)]
pub fn identity_at(path: &Path) -> Option<FileIdentity> {
    use std::os::unix::fs::MetadataExt;
    let metadata = std::fs::symlink_metadata(path).ok()?;
    metadata.is_file().then(|| FileIdentity {
        device: metadata.dev(),
        index: metadata.ino(),
    })
}

/// The identity of the regular file at `path`, not through a link: `None` when
/// there is none (nothing, a folder, a link).
#[cfg(windows)]
pub fn identity_at(path: &Path) -> Option<FileIdentity> {
    use std::os::windows::fs::OpenOptionsExt;
    use windows_sys::Win32::Storage::FileSystem::FILE_FLAG_OPEN_REPARSE_POINT;
    if !std::fs::symlink_metadata(path).ok()?.is_file() {
        return None;
    }
    // Access 0: opened to ask about it only, which no sharing mode refuses.
    let file = OpenOptions::new()
        .access_mode(0)
        .custom_flags(FILE_FLAG_OPEN_REPARSE_POINT)
        .open(path)
        .ok()?;
    identity(&file).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_keeps_its_identity_under_another_name_and_a_new_one_has_another() {
        let (directory, first) = crate::fs::scratch_file("first");
        std::fs::write(&first, b"x").unwrap();
        let open = File::open(&first).unwrap();
        let identity_of_open = identity(&open).unwrap();
        assert_eq!(identity_at(&first), Some(identity_of_open));
        let second = directory.path().join("second");
        std::fs::rename(&first, &second).unwrap();
        assert_eq!(identity_at(&second), Some(identity_of_open));
        std::fs::write(&first, b"x").unwrap();
        assert_ne!(identity_at(&first), Some(identity_of_open));
        assert_eq!(identity_at(directory.path()), None, "a folder is no file");
        assert_eq!(identity_at(&directory.path().join("none")), None);
    }

    #[cfg(unix)]
    #[test]
    fn a_link_is_refused_naming_it_and_a_fifo_does_not_block() {
        let (directory, target) = crate::fs::scratch_file("target");
        std::fs::write(&target, b"x").unwrap();
        let link = directory.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let mut options = OpenOptions::new();
        options.read(true);
        let error = open_no_follow(&options, &link).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        assert!(
            error.to_string().contains("link is a symbolic link"),
            "{error}"
        );
        assert_eq!(identity_at(&link), None, "a link is not followed");
        assert!(open_no_follow(&options, &target).is_ok());
        let fifo = directory.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let opened = open_no_follow(&options, &fifo).unwrap();
        assert!(!opened.metadata().unwrap().is_file());
    }
}
