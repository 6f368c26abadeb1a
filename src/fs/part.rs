//! Writing one downloaded file: the body streams into a part file in the output
//! folder and becomes `NAME` only once it is complete, so a final name never holds a
//! truncated file, and a commit never replaces a file another run made. Shared by
//! every strategy.
//!
//! Two ways keep those promises. The portable one, on every system: the part
//! is created as `NAME.part` (refusing anything already there), and committed
//! by a hard link to `NAME` (which fails on a taken name on every system) and
//! the part's removal. Linux's fast path ([`linux`]): a fresh download's part
//! starts unnamed (`O_TMPFILE`), gets the name `NAME.part` only when it is
//! worth resuming (a write that does not end the body), and a body that comes
//! whole in its first chunk (most small files) is linked straight to `NAME`.
//! One `linkat` replaces a named create and a rename, which on tmpfs is about a
//! sixth of the kernel's work per small file, and a kill leaves nothing behind
//! for it. The portable way is compiled, and tested, on Linux too.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
#[cfg(target_os = "linux")]
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
#[cfg(target_os = "linux")]
use std::sync::OnceLock;
#[cfg(target_os = "linux")]
use std::sync::atomic::{AtomicU8, Ordering};

use super::layout::make_folders;
use super::names::PART_SUFFIX;
use super::ranges::Ranges;

#[cfg(target_os = "linux")]
mod linux;

/// On Linux, the way past its own ([`linux`]): [`portable`]'s. Other systems
/// have that way only.
#[cfg(target_os = "linux")]
const PORTABLE: u8 = 3;

/// The output folder: its path, for messages and whatever works by path, and
/// (on Linux) a handle opened at first use that parts are made relative to.
pub struct Folder {
    path: PathBuf,
    #[cfg(target_os = "linux")]
    handle: OnceLock<OwnedFd>,
    /// The first way of making and naming parts that works here, learnt at
    /// the first that fails.
    #[cfg(target_os = "linux")]
    naming: AtomicU8,
}

impl Folder {
    pub fn new(path: PathBuf) -> Folder {
        Folder {
            path,
            #[cfg(target_os = "linux")]
            handle: OnceLock::new(),
            #[cfg(target_os = "linux")]
            naming: AtomicU8::new(linux::EMPTY_PATH),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    #[cfg(target_os = "linux")]
    fn portable(&self) -> bool {
        self.naming.load(Ordering::Relaxed) == PORTABLE
    }
}

fn taken() -> io::Error {
    io::Error::new(io::ErrorKind::AlreadyExists, "the final name is taken")
}

/// How a named part is opened.
#[derive(Debug, Clone, Copy)]
enum Open {
    /// Made anew, refusing anything at the name (a symlink included, so a
    /// planted link is never followed).
    New,
    /// This batch's own part again, never through a symlink; made when
    /// `create`.
    Again { create: bool },
}

/// The portable way, by path through std: what every system but Linux runs,
/// and Linux where its calls fail.
mod portable {
    use super::*;

    pub fn open_named(path: &Path, how: Open) -> io::Result<File> {
        let mut options = OpenOptions::new();
        options.write(true);
        match how {
            // `create_new` is `O_EXCL` on Unix (which refuses a symlink too)
            // and `CREATE_NEW` on Windows.
            Open::New => options.create_new(true).open(path),
            Open::Again { create } => {
                crate::fs::system::open_no_follow(options.create(create), path)
            }
        }
    }

    /// Moves the whole part at `part` to `destination`, never replacing a
    /// file there: a hard link refuses a taken name on every system, then
    /// the part goes. Where the filesystem has no hard links (FAT, some
    /// network shares), a rename after checking that the name is still free.
    pub fn commit(part: &Path, destination: &Path) -> io::Result<()> {
        match fs::hard_link(part, destination) {
            Ok(()) => fs::remove_file(part),
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Err(taken()),
            Err(_) => {
                if destination.symlink_metadata().is_ok() {
                    return Err(taken());
                }
                fs::rename(part, destination)
            }
        }
    }
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
        let mut part = PartFile::unopened(folder, name, 0)?;
        #[cfg(target_os = "linux")]
        if let Some(file) = linux::create_unnamed(folder, name)? {
            part.file = Some(file);
            return Ok(part);
        }
        part.file = Some(part.open_named(Open::New)?);
        part.named = true;
        Ok(part)
    }

    /// Opens this batch's own `NAME.part` again: to append to it (`keep` bytes
    /// already there, for a resumed download) or, with `keep` zero, to start it over.
    /// A symlink planted at the name is refused.
    /// A part to resume must still hold the `keep` bytes (it is not made
    /// anew, which would resume from zeros). Until the file is open and sized,
    /// the part is not this value's to remove: a failure leaves it for `-c`.
    pub fn reopen(folder: &Arc<Folder>, name: &str, keep: u64) -> io::Result<PartFile> {
        PartFile::reopen_with(folder, name, keep, true)
    }

    /// As [`PartFile::reopen`], but the bytes past `keep` stay: a part
    /// fetched in pieces ([`super::ranges`]) holds complete ranges beyond its
    /// prefix, which a resume must not cut off.
    pub fn reopen_pieces(folder: &Arc<Folder>, name: &str, keep: u64) -> io::Result<PartFile> {
        PartFile::reopen_with(folder, name, keep, false)
    }

    fn reopen_with(
        folder: &Arc<Folder>,
        name: &str,
        keep: u64,
        truncate: bool,
    ) -> io::Result<PartFile> {
        let mut part = PartFile::unopened(folder, name, keep)?;
        let mut file = part.open_named(Open::Again { create: keep == 0 })?;
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
        if truncate {
            file.set_len(keep)?;
        }
        std::io::Seek::seek(&mut file, io::SeekFrom::Start(keep))?;
        part.file = Some(file);
        part.named = true;
        Ok(part)
    }

    /// The part's state before its file is open (not yet named on disk), once
    /// the folders of a name in a subfolder are made.
    fn unopened(folder: &Arc<Folder>, name: &str, written: u64) -> io::Result<PartFile> {
        make_folders(folder.path(), name)?;
        Ok(PartFile {
            folder: folder.clone(),
            name: name.to_string(),
            file: None,
            named: false,
            written,
            committed: false,
            replace: false,
        })
    }

    /// `NAME.part`, opened for writing as `how` says.
    fn open_named(&self, how: Open) -> io::Result<File> {
        #[cfg(target_os = "linux")]
        if !self.folder.portable() {
            return linux::open_named(&self.folder, &self.part_name(), how);
        }
        portable::open_named(&self.part_path(), how)
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
    /// `NAME.part`. (Only Linux makes unnamed parts.)
    pub fn name_on_disk(&mut self) -> io::Result<()> {
        if self.named {
            return Ok(());
        }
        #[cfg(target_os = "linux")]
        {
            let file = self
                .file
                .as_ref()
                .expect("a part being written has its file");
            let part_name = self.part_name();
            match linux::link(&self.folder, file, &part_name) {
                Err(error) if error.kind() == io::ErrorKind::Unsupported => {
                    let mut target = self.open_named(Open::New)?;
                    let copied = file.try_clone().and_then(|mut source| {
                        std::io::Seek::seek(&mut source, io::SeekFrom::Start(0))?;
                        // Leaves the copy's offset at its end, where the next write goes.
                        io::copy(&mut source, &mut target)
                    });
                    if let Err(error) = copied {
                        // A half copy is no part to resume: it goes.
                        self.remove_part();
                        return Err(error);
                    }
                    self.file = Some(target);
                }
                result => result?,
            }
            self.named = true;
            Ok(())
        }
        #[cfg(not(target_os = "linux"))]
        unreachable!("only Linux makes unnamed parts")
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

    /// Writes `bytes` at `offset`, wherever the last write ended: a piece of
    /// a `--split` download, several of which arrive at once. What
    /// [`PartFile::written`] counts is the caller's to say
    /// ([`PartFile::set_written`]) once the pieces are in.
    pub fn write_at(&self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        match &self.file {
            Some(file) => super::system::write_all_at(file, bytes, offset),
            None => Ok(()),
        }
    }

    /// Says how many bytes the part holds from its start, after writes at
    /// offsets: its whole length once every piece is in, else the complete
    /// prefix a resume may keep.
    pub fn set_written(&mut self, written: u64) {
        self.written = written;
    }

    /// Dates the file (the server's `Last-Modified`, as wget does) before it
    /// is committed: a rename keeps the time, so the file never shows
    /// another.
    pub fn set_modified(&self, time: std::time::SystemTime) -> io::Result<()> {
        match &self.file {
            Some(file) => file.set_modified(time),
            None => Ok(()),
        }
    }

    /// Moves the finished file to its final name, never replacing what is
    /// there unless [`PartFile::replacing`]. An unnamed part is linked there
    /// (`linkat` refuses a taken name); a named one is renamed with Linux's
    /// `renameat2(RENAME_NOREPLACE)`, else committed the portable way.
    pub fn commit(mut self) -> io::Result<()> {
        // No fsync: like curl and wget, a finished file is left to the page cache;
        // writing it whole before it gets its final name is what keeps a crashed
        // process from leaving a torn file under that name.
        #[cfg(target_os = "linux")]
        if !self.named && !self.replace {
            let file = self
                .file
                .as_ref()
                .expect("a part being written has its file");
            match linux::link(&self.folder, file, &self.name) {
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
        // Closed first: Windows neither links nor removes a file still open
        // for writing without sharing it.
        self.file.take();
        // A part whole under its final name has no ranges left to record.
        Ranges::remove(&self.part_path());
        #[cfg(target_os = "linux")]
        if !self.folder.portable() {
            linux::rename(&self.folder, &self.part_name(), &self.name, self.replace)?;
            self.committed = true;
            return Ok(());
        }
        let (part, destination) = (self.part_path(), self.folder.path().join(&self.name));
        match self.replace {
            // std's rename replaces on every system (on Windows, MoveFileExW
            // with MOVEFILE_REPLACE_EXISTING), and replaces a symlink itself,
            // never what it points to.
            true => fs::rename(&part, &destination)?,
            false => portable::commit(&part, &destination)?,
        }
        self.committed = true;
        Ok(())
    }

    /// Removes `NAME.part`, quietly: one that is not there is gone. Its
    /// record of complete ranges goes with it.
    fn remove_part(&self) {
        Ranges::remove(&self.part_path());
        #[cfg(target_os = "linux")]
        if !self.folder.portable() {
            linux::remove(&self.folder, &self.part_name());
            return;
        }
        let _ = fs::remove_file(self.part_path());
    }
}

impl Drop for PartFile {
    fn drop(&mut self) {
        // An unnamed part goes with its file.
        self.file.take();
        if !self.committed && self.named {
            self.remove_part();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_os = "linux")]
    use linux::{EMPTY_PATH, NAMED_ONLY, PROC_FD};

    /// Every way of this system, the portable one last.
    #[cfg(target_os = "linux")]
    const WAYS: [u8; 4] = [EMPTY_PATH, PROC_FD, NAMED_ONLY, PORTABLE];
    /// The portable way, the only one.
    #[cfg(not(target_os = "linux"))]
    const WAYS: [u8; 1] = [0];

    fn folder(directory: &tempfile::TempDir, naming: u8) -> Arc<Folder> {
        let folder = Folder::new(directory.path().to_path_buf());
        #[cfg(target_os = "linux")]
        folder.naming.store(naming, Ordering::Relaxed);
        #[cfg(not(target_os = "linux"))]
        let _ = naming;
        Arc::new(folder)
    }

    /// Runs `test` once for each way, in a fresh folder each time.
    fn each_way(test: impl Fn(u8, &tempfile::TempDir, &Arc<Folder>)) {
        for naming in WAYS {
            let directory = tempfile::tempdir().unwrap();
            test(naming, &directory, &folder(&directory, naming));
        }
    }

    fn names(directory: &tempfile::TempDir) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(directory.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// What the file `name` in `directory` holds.
    fn read(directory: &tempfile::TempDir, name: &str) -> Vec<u8> {
        fs::read(directory.path().join(name)).unwrap()
    }

    /// Writes `bytes` as the file `name` in `directory`, as an earlier run left it.
    fn put(directory: &tempfile::TempDir, name: &str, bytes: &[u8]) {
        fs::write(directory.path().join(name), bytes).unwrap();
    }

    /// Appends `bytes`, commits, and reads the final file back.
    fn finished(directory: &tempfile::TempDir, mut part: PartFile, bytes: &[u8]) -> Vec<u8> {
        let name = part.name.clone();
        part.write(bytes).unwrap();
        part.commit().unwrap();
        read(directory, &name)
    }

    #[cfg(target_os = "linux")]
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
            assert_eq!(read(&directory, "a.bin"), b"hello");
            assert_eq!(folder.naming.load(Ordering::Relaxed), naming);
        }
    }

    #[test]
    fn a_named_part_is_moved_to_its_final_name() {
        each_way(|naming, directory, folder| {
            let mut part = PartFile::create(folder, "a.bin").unwrap();
            part.write(b"hel").unwrap();
            part.name_on_disk().unwrap();
            assert_eq!(names(directory), ["a.bin.part"], "way {naming}");
            assert_eq!(read(directory, "a.bin.part"), b"hel");
            assert_eq!(finished(directory, part, b"lo"), b"hello");
            assert_eq!(names(directory), ["a.bin"], "way {naming}");
        });
    }

    #[test]
    fn a_part_in_a_subfolder_is_made_and_committed_there() {
        each_way(|naming, directory, folder| {
            let part = PartFile::create(folder, "sub/a.bin").unwrap();
            assert_eq!(finished(directory, part, b"x"), b"x");
            assert_eq!(names(directory), ["sub"], "way {naming}");
        });
    }

    #[test]
    fn dropped_parts_are_removed() {
        for naming in WAYS {
            for named in [false, true] {
                let directory = tempfile::tempdir().unwrap();
                let mut part = PartFile::create(&folder(&directory, naming), "a.bin").unwrap();
                part.write(b"half").unwrap();
                if named {
                    part.name_on_disk().unwrap();
                }
                drop(part);
                assert!(names(&directory).is_empty(), "way {naming}, named: {named}");
            }
        }
    }

    #[test]
    fn a_kept_part_is_named_and_stays() {
        each_way(|naming, directory, folder| {
            let mut part = PartFile::create(folder, "a.bin").unwrap();
            part.write(b"half").unwrap();
            assert!(part.keep());
            assert_eq!(names(directory), ["a.bin.part"], "way {naming}");
            assert_eq!(read(directory, "a.bin.part"), b"half");
        });
    }

    #[test]
    fn reopen_keeps_a_prefix_or_starts_over() {
        each_way(|naming, directory, folder| {
            put(directory, "a.bin.part", b"hello world");
            let part = PartFile::reopen(folder, "a.bin", 5).unwrap();
            assert_eq!(part.written(), 5);
            assert_eq!(finished(directory, part, b"!"), b"hello!");
            put(directory, "b.bin.part", b"stale");
            let part = PartFile::reopen(folder, "b.bin", 0).unwrap();
            assert_eq!(finished(directory, part, b"new"), b"new");
            assert_eq!(names(directory), ["a.bin", "b.bin"], "way {naming}");
        });
    }

    #[test]
    fn a_part_shorter_than_its_resume_is_refused_and_kept() {
        each_way(|_, directory, folder| {
            assert!(PartFile::reopen(folder, "gone.bin", 5).is_err());
            assert!(names(directory).is_empty(), "no part made from zeros");
            put(directory, "a.bin.part", b"abc");
            assert!(PartFile::reopen(folder, "a.bin", 5).is_err());
            assert_eq!(read(directory, "a.bin.part"), b"abc");
        });
    }

    #[test]
    fn replacing_overwrites_the_final_name() {
        each_way(|naming, directory, folder| {
            put(directory, "a.bin", b"old");
            let part = PartFile::create(folder, "a.bin").unwrap().replacing();
            assert_eq!(finished(directory, part, b"new"), b"new");
            put(directory, "b.bin.part", b"");
            put(directory, "b.bin", b"old");
            let part = PartFile::reopen(folder, "b.bin", 0).unwrap().replacing();
            assert_eq!(finished(directory, part, b"new"), b"new");
            assert_eq!(names(directory), ["a.bin", "b.bin"], "way {naming}");
        });
    }

    #[test]
    fn the_portable_commit_refuses_a_taken_name_and_leaves_no_part() {
        let directory = tempfile::tempdir().unwrap();
        let (part, destination) = (
            directory.path().join("a.bin.part"),
            directory.path().join("a.bin"),
        );
        fs::write(&part, b"ours").unwrap();
        fs::write(&destination, b"theirs").unwrap();
        let error = portable::commit(&part, &destination).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&destination).unwrap(), b"theirs");
        assert_eq!(fs::read(&part).unwrap(), b"ours", "the part is kept");
        fs::remove_file(&destination).unwrap();
        portable::commit(&part, &destination).unwrap();
        assert_eq!(fs::read(&destination).unwrap(), b"ours");
        assert_eq!(names(&directory), ["a.bin"], "no part left behind");
    }

    #[test]
    fn a_taken_final_name_is_never_replaced() {
        each_way(|naming, directory, folder| {
            put(directory, "a.bin", b"theirs");
            let mut part = PartFile::create(folder, "a.bin").unwrap();
            part.write(b"ours").unwrap();
            let error = part.commit().unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::AlreadyExists, "way {naming}");
            assert_eq!(names(directory), ["a.bin"], "way {naming}");
            assert_eq!(read(directory, "a.bin"), b"theirs");
        });
    }

    // Making a symbolic link takes a privilege on Windows.
    #[cfg(unix)]
    #[test]
    fn planted_symlink_is_not_followed() {
        each_way(|naming, directory, folder| {
            let (_outside, target) = crate::fs::scratch_file("victim");
            std::os::unix::fs::symlink(&target, directory.path().join("a.bin.part")).unwrap();
            let part = PartFile::create(folder, "a.bin");
            // Refused when it is created named, or when it is named.
            assert!(part.and_then(|mut part| part.name_on_disk()).is_err());
            std::os::unix::fs::symlink(&target, directory.path().join("b.bin")).unwrap();
            let mut part = PartFile::create(folder, "b.bin").unwrap();
            part.write(b"x").unwrap();
            assert!(part.commit().is_err());
            assert!(!target.exists());
            std::os::unix::fs::symlink(&target, directory.path().join("c.bin.part")).unwrap();
            assert!(PartFile::reopen(folder, "c.bin", 0).is_err());
            assert!(!target.exists(), "way {naming}");
        });
    }
}
