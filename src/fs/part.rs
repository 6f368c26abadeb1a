//! Writing one downloaded file: the body streams into a part file in the output
//! folder and becomes `NAME` only once it is complete, so a final name never holds a
//! truncated file. Shared by every strategy.
//!
//! A fresh download's part starts unnamed (`O_TMPFILE`): it gets the name
//! `NAME.part` only when it is worth resuming (a write that does not end the
//! body), and a body that comes whole in its first chunk (most small files) is
//! linked straight to `NAME`. One `linkat` replaces a named create and a rename,
//! which on tmpfs is about a sixth of the kernel's work per small file, and a
//! kill leaves nothing behind for it. Every call is relative to the folder's
//! handle, opened once, so no call walks the folder's path again.

use std::borrow::Cow;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, AtFlags, OFlag, RenameFlags, openat, renameat2};
use nix::sys::stat::Mode;
use nix::unistd::{UnlinkatFlags, linkat, unlinkat};

use super::layout::make_folders;
use super::names::PART_SUFFIX;

/// The output folder: its path, for messages and whatever works by path, and a
/// handle opened at first use that parts are made relative to.
pub struct Folder {
    path: PathBuf,
    handle: OnceLock<OwnedFd>,
    /// The first way of naming an unnamed part that works here, learnt at the
    /// first that fails.
    naming: AtomicU8,
}

impl Folder {
    pub fn new(path: PathBuf) -> Folder {
        Folder {
            path,
            handle: OnceLock::new(),
            naming: AtomicU8::new(EMPTY_PATH),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

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

// How an unnamed part gets a name (`Folder::naming`): `linkat(AT_EMPTY_PATH)`
// (Linux 6.10 on for anyone, earlier only with CAP_DAC_READ_SEARCH), else
// through `/proc/self/fd`, else not at all: no unnamed parts are made (a
// filesystem without `O_TMPFILE`, no /proc) and one that exists is copied.
const EMPTY_PATH: u8 = 0;
const PROC_FD: u8 = 1;
const NAMED_ONLY: u8 = 2;

/// Gives the open file `file` the name `relative` in `folder`, refusing a name
/// that is taken (`EEXIST`), as `renameat2(RENAME_NOREPLACE)` does.
fn link(folder: &Folder, file: &File, relative: &str) -> io::Result<()> {
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

fn taken() -> io::Error {
    io::Error::new(io::ErrorKind::AlreadyExists, "the final name is taken")
}

/// A file being written under its part name, or under none yet. Dropped without
/// [`PartFile::commit`] or [`PartFile::keep`], it removes what it wrote.
pub struct PartFile {
    folder: Arc<Folder>,
    /// The final name, relative to the folder.
    name: String,
    file: Option<File>,
    /// Whether `NAME.part` is on disk: false for an unnamed part.
    named: bool,
    written: u64,
    committed: bool,
    replace: bool,
}

impl PartFile {
    /// A fresh part for `name`: unnamed where the folder's filesystem allows,
    /// else created as `NAME.part`. Makes the folders of a name in a subfolder
    /// (refusing a link on the way).
    pub fn create(folder: &Arc<Folder>, name: &str) -> io::Result<PartFile> {
        let mut part = PartFile::unopened(folder, name, false, 0)?;
        if folder.naming.load(Ordering::Relaxed) != NAMED_ONLY {
            let subfolder = name.rsplit_once('/').map_or(".", |(folders, _)| folders);
            let (directory, path) = folder.at(subfolder);
            match openat(
                directory,
                path.as_ref(),
                OFlag::O_TMPFILE | OFlag::O_RDWR | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o666),
            ) {
                Ok(file) => {
                    part.file = Some(File::from(file));
                    return Ok(part);
                }
                // No O_TMPFILE here (an old kernel, a filesystem without it).
                Err(Errno::EOPNOTSUPP | Errno::EISDIR | Errno::EINVAL) => {
                    folder.naming.store(NAMED_ONLY, Ordering::Relaxed);
                }
                Err(errno) => return Err(errno.into()),
            }
        }
        // `O_EXCL` refuses anything already there, a symlink included, so a
        // planted link is never followed.
        part.file = Some(part.open_named(OFlag::O_CREAT | OFlag::O_EXCL)?);
        part.named = true;
        Ok(part)
    }

    /// Opens this batch's own `NAME.part` again: to append to it (`keep` bytes
    /// already there, for a resumed download) or, with `keep` zero, to start it over.
    /// `O_NOFOLLOW` refuses a symlink planted at the name.
    /// A part to resume must still hold the `keep` bytes (it is not made
    /// anew, which would resume from zeros). Until the file is open and sized,
    /// the part is not this value's to remove: a failure leaves it for `-c`.
    pub fn reopen(folder: &Arc<Folder>, name: &str, keep: u64) -> io::Result<PartFile> {
        let mut part = PartFile::unopened(folder, name, false, keep)?;
        let create = if keep == 0 {
            OFlag::O_CREAT
        } else {
            OFlag::empty()
        };
        let mut file = part.open_named(create | OFlag::O_NOFOLLOW)?;
        let length = file.metadata()?.len();
        if length < keep {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} holds {length} bytes, fewer than the {keep} to resume from",
                    part.part_name()
                ),
            ));
        }
        file.set_len(keep)?;
        std::io::Seek::seek(&mut file, io::SeekFrom::Start(keep))?;
        part.file = Some(file);
        part.named = true;
        Ok(part)
    }

    /// The part's state before its file is open, once the folders of a name in
    /// a subfolder are made.
    fn unopened(
        folder: &Arc<Folder>,
        name: &str,
        named: bool,
        written: u64,
    ) -> io::Result<PartFile> {
        make_folders(folder.path(), name)?;
        Ok(PartFile {
            folder: folder.clone(),
            name: name.to_string(),
            file: None,
            named,
            written,
            committed: false,
            replace: false,
        })
    }

    /// `NAME.part`, opened for writing with `flags` added.
    fn open_named(&self, flags: OFlag) -> io::Result<File> {
        let part_name = self.part_name();
        let (directory, path) = self.folder.at(&part_name);
        let file = openat(
            directory,
            path.as_ref(),
            flags | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o666),
        )?;
        Ok(File::from(file))
    }

    fn part_name(&self) -> String {
        format!("{}{PART_SUFFIX}", self.name)
    }

    /// Lets [`PartFile::commit`] replace a file already at the final name (`--force`
    /// downloading again what the manifest says is this batch's own file).
    pub fn replacing(mut self) -> Self {
        self.replace = true;
        self
    }

    /// Gives an unnamed part its name, `NAME.part`, so that it outlives this
    /// process: before its `started` record, when it becomes worth resuming.
    /// Where no way of linking it works, its bytes are copied to a new
    /// `NAME.part`.
    pub fn name_on_disk(&mut self) -> io::Result<()> {
        if self.named {
            return Ok(());
        }
        let file = self
            .file
            .as_ref()
            .expect("a part being written has its file");
        let part_name = self.part_name();
        match link(&self.folder, file, &part_name) {
            Err(error) if error.kind() == io::ErrorKind::Unsupported => {
                let mut target = self.open_named(OFlag::O_CREAT | OFlag::O_EXCL)?;
                let copied = file.try_clone().and_then(|mut source| {
                    std::io::Seek::seek(&mut source, io::SeekFrom::Start(0))?;
                    // Leaves the copy's offset at its end, where the next write goes.
                    io::copy(&mut source, &mut target)
                });
                if let Err(error) = copied {
                    // A half copy is no part to resume: it goes.
                    let (directory, path) = self.folder.at(&part_name);
                    let _ = unlinkat(directory, path.as_ref(), UnlinkatFlags::NoRemoveDir);
                    return Err(error);
                }
                self.file = Some(target);
            }
            result => result?,
        }
        self.named = true;
        Ok(())
    }

    /// Leaves the part on disk for a resume: named, closed, not committed, not
    /// removed. False when it could not be named: then it is gone.
    pub fn keep(mut self) -> bool {
        if self.name_on_disk().is_err() {
            return false;
        }
        self.file.take();
        self.committed = true;
        true
    }

    /// Where the part is, or would be once named: for messages and reading it back.
    pub fn part_path(&self) -> PathBuf {
        self.folder.path().join(self.part_name())
    }

    pub fn written(&self) -> u64 {
        self.written
    }

    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        if let Some(file) = self.file.as_mut() {
            file.write_all(bytes)?;
            self.written += bytes.len() as u64;
        }
        Ok(())
    }

    /// Moves the finished file to its final name, never replacing what is there.
    /// An unnamed part is linked there (`linkat` refuses a taken name). A named
    /// one is renamed with `renameat2(RENAME_NOREPLACE)`, in one step that
    /// cannot follow a symlink at the target; where the filesystem lacks it, a
    /// hard link (which also refuses an existing target) then removing the part;
    /// where links are missing too, a rename after checking the name is still free.
    /// Dates the file (the server's `Last-Modified`, as wget does) before it
    /// is committed: a rename keeps the time, so the file never shows
    /// another.
    pub fn set_modified(&self, time: std::time::SystemTime) -> io::Result<()> {
        match &self.file {
            Some(file) => file.set_modified(time),
            None => Ok(()),
        }
    }

    pub fn commit(mut self) -> io::Result<()> {
        // No fsync: like curl and wget, a finished file is left to the page cache;
        // writing it whole before it gets its final name is what keeps a crashed
        // process from leaving a torn file under that name.
        if !self.named && !self.replace {
            let file = self
                .file
                .as_ref()
                .expect("a part being written has its file");
            match link(&self.folder, file, &self.name) {
                Err(error) if error.kind() == io::ErrorKind::Unsupported => {}
                result => {
                    result?;
                    self.file.take();
                    self.committed = true;
                    return Ok(());
                }
            }
        }
        self.name_on_disk()?;
        self.file.take();
        let part_name = self.part_name();
        let (from_directory, from) = self.folder.at(&part_name);
        let (to_directory, to) = self.folder.at(&self.name);
        if self.replace {
            // rename() replaces a symlink itself, never what it points to.
            renameat2(
                from_directory,
                from.as_ref(),
                to_directory,
                to.as_ref(),
                RenameFlags::empty(),
            )?;
            self.committed = true;
            return Ok(());
        }
        match renameat2(
            from_directory,
            from.as_ref(),
            to_directory,
            to.as_ref(),
            RenameFlags::RENAME_NOREPLACE,
        ) {
            Ok(()) => {}
            Err(Errno::EEXIST) => return Err(taken()),
            Err(_) => {
                let (part_path, final_path) =
                    (self.part_path(), self.folder.path().join(&self.name));
                match fs::hard_link(&part_path, &final_path) {
                    Ok(()) => fs::remove_file(&part_path)?,
                    Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                        return Err(error);
                    }
                    Err(_) => {
                        if final_path.symlink_metadata().is_ok() {
                            return Err(io::Error::new(
                                io::ErrorKind::AlreadyExists,
                                "the final name was taken meanwhile",
                            ));
                        }
                        fs::rename(&part_path, &final_path)?;
                    }
                }
            }
        }
        self.committed = true;
        Ok(())
    }
}

impl Drop for PartFile {
    fn drop(&mut self) {
        // An unnamed part goes with its file.
        self.file.take();
        if !self.committed && self.named {
            let part_name = self.part_name();
            let (directory, path) = self.folder.at(&part_name);
            let _ = unlinkat(directory, path.as_ref(), UnlinkatFlags::NoRemoveDir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(directory: &tempfile::TempDir, naming: u8) -> Arc<Folder> {
        let folder = Folder::new(directory.path().to_path_buf());
        folder.naming.store(naming, Ordering::Relaxed);
        Arc::new(folder)
    }

    fn names(directory: &tempfile::TempDir) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(directory.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// Appends `bytes`, commits, and reads the final file back.
    fn finished(directory: &tempfile::TempDir, mut part: PartFile, bytes: &[u8]) -> Vec<u8> {
        let name = part.name.clone();
        part.write(bytes).unwrap();
        part.commit().unwrap();
        fs::read(directory.path().join(name)).unwrap()
    }

    #[test]
    fn an_unnamed_part_is_nowhere_until_it_is_committed_whole() {
        for naming in [EMPTY_PATH, PROC_FD] {
            let directory = tempfile::tempdir().unwrap();
            let folder = folder(&directory, naming);
            let mut part = PartFile::create(&folder, "a.bin").unwrap();
            part.write(b"hello").unwrap();
            assert!(names(&directory).is_empty(), "way {naming}");
            part.commit().unwrap();
            assert_eq!(names(&directory), ["a.bin"], "way {naming}");
            assert_eq!(fs::read(directory.path().join("a.bin")).unwrap(), b"hello");
            assert_eq!(folder.naming.load(Ordering::Relaxed), naming);
        }
    }

    #[test]
    fn a_named_part_is_moved_to_its_final_name() {
        for naming in [EMPTY_PATH, PROC_FD, NAMED_ONLY] {
            let directory = tempfile::tempdir().unwrap();
            let mut part = PartFile::create(&folder(&directory, naming), "a.bin").unwrap();
            part.write(b"hel").unwrap();
            part.name_on_disk().unwrap();
            assert_eq!(names(&directory), ["a.bin.part"], "way {naming}");
            assert_eq!(
                fs::read(directory.path().join("a.bin.part")).unwrap(),
                b"hel"
            );
            assert_eq!(finished(&directory, part, b"lo"), b"hello");
            assert_eq!(names(&directory), ["a.bin"], "way {naming}");
        }
    }

    #[test]
    fn a_part_in_a_subfolder_is_made_and_committed_there() {
        let directory = tempfile::tempdir().unwrap();
        let part = PartFile::create(&folder(&directory, EMPTY_PATH), "sub/a.bin").unwrap();
        assert_eq!(finished(&directory, part, b"x"), b"x");
        assert_eq!(names(&directory), ["sub"]);
    }

    #[test]
    fn dropped_parts_are_removed() {
        for named in [false, true] {
            let directory = tempfile::tempdir().unwrap();
            let mut part = PartFile::create(&folder(&directory, EMPTY_PATH), "a.bin").unwrap();
            part.write(b"half").unwrap();
            if named {
                part.name_on_disk().unwrap();
            }
            drop(part);
            assert!(names(&directory).is_empty(), "named: {named}");
        }
    }

    #[test]
    fn a_kept_part_is_named_and_stays() {
        let directory = tempfile::tempdir().unwrap();
        let mut part = PartFile::create(&folder(&directory, EMPTY_PATH), "a.bin").unwrap();
        part.write(b"half").unwrap();
        assert!(part.keep());
        assert_eq!(
            fs::read(directory.path().join("a.bin.part")).unwrap(),
            b"half"
        );
    }

    #[test]
    fn reopen_keeps_a_prefix_or_starts_over() {
        let directory = tempfile::tempdir().unwrap();
        let folder = folder(&directory, EMPTY_PATH);
        fs::write(directory.path().join("a.bin.part"), b"hello world").unwrap();
        let part = PartFile::reopen(&folder, "a.bin", 5).unwrap();
        assert_eq!(part.written(), 5);
        assert_eq!(finished(&directory, part, b"!"), b"hello!");
        fs::write(directory.path().join("b.bin.part"), b"stale").unwrap();
        let part = PartFile::reopen(&folder, "b.bin", 0).unwrap();
        assert_eq!(finished(&directory, part, b"new"), b"new");
    }

    #[test]
    fn a_part_shorter_than_its_resume_is_refused_and_kept() {
        let directory = tempfile::tempdir().unwrap();
        let folder = folder(&directory, EMPTY_PATH);
        assert!(PartFile::reopen(&folder, "gone.bin", 5).is_err());
        assert!(names(&directory).is_empty(), "no part made from zeros");
        fs::write(directory.path().join("a.bin.part"), b"abc").unwrap();
        assert!(PartFile::reopen(&folder, "a.bin", 5).is_err());
        assert_eq!(
            fs::read(directory.path().join("a.bin.part")).unwrap(),
            b"abc"
        );
    }

    #[test]
    fn replacing_overwrites_the_final_name() {
        let directory = tempfile::tempdir().unwrap();
        let folder = folder(&directory, EMPTY_PATH);
        fs::write(directory.path().join("a.bin"), b"old").unwrap();
        let part = PartFile::create(&folder, "a.bin").unwrap().replacing();
        assert_eq!(finished(&directory, part, b"new"), b"new");
        fs::write(directory.path().join("b.bin.part"), b"").unwrap();
        fs::write(directory.path().join("b.bin"), b"old").unwrap();
        let part = PartFile::reopen(&folder, "b.bin", 0).unwrap().replacing();
        assert_eq!(finished(&directory, part, b"new"), b"new");
    }

    #[test]
    fn a_taken_final_name_is_never_replaced() {
        for naming in [EMPTY_PATH, PROC_FD, NAMED_ONLY] {
            let directory = tempfile::tempdir().unwrap();
            fs::write(directory.path().join("a.bin"), b"theirs").unwrap();
            let mut part = PartFile::create(&folder(&directory, naming), "a.bin").unwrap();
            part.write(b"ours").unwrap();
            let error = part.commit().unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::AlreadyExists, "way {naming}");
            assert_eq!(names(&directory), ["a.bin"], "way {naming}");
            assert_eq!(fs::read(directory.path().join("a.bin")).unwrap(), b"theirs");
        }
    }

    #[test]
    fn planted_symlink_is_not_followed() {
        for naming in [EMPTY_PATH, NAMED_ONLY] {
            let directory = tempfile::tempdir().unwrap();
            let folder = folder(&directory, naming);
            let outside = tempfile::tempdir().unwrap();
            let target = outside.path().join("victim");
            std::os::unix::fs::symlink(&target, directory.path().join("a.bin.part")).unwrap();
            let part = PartFile::create(&folder, "a.bin");
            // Refused when it is created named, or when it is named.
            assert!(part.and_then(|mut part| part.name_on_disk()).is_err());
            std::os::unix::fs::symlink(&target, directory.path().join("b.bin")).unwrap();
            let mut part = PartFile::create(&folder, "b.bin").unwrap();
            part.write(b"x").unwrap();
            assert!(part.commit().is_err());
            assert!(!target.exists());
            std::os::unix::fs::symlink(&target, directory.path().join("c.bin.part")).unwrap();
            assert!(PartFile::reopen(&folder, "c.bin", 0).is_err());
            assert!(!target.exists(), "way {naming}");
        }
    }
}
