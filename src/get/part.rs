//! Writing one downloaded file: the body streams into `NAME.part` in the output
//! folder and becomes `NAME` only once it is complete, so a final name never holds a
//! truncated file. Shared by every strategy.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::layout::make_folders;
use super::naming::PART_SUFFIX;

/// A file being written under its `.part` name. Dropped without [`PartFile::commit`],
/// it removes what it wrote.
pub struct PartFile {
    part_path: PathBuf,
    final_path: PathBuf,
    file: Option<File>,
    written: u64,
    committed: bool,
    replace: bool,
}

impl PartFile {
    /// Creates `NAME.part`, and the folders of a name in a subfolder (refusing a
    /// link on the way). `create_new` refuses anything already there, a symlink
    /// included, so a planted link is never followed.
    pub fn create(directory: &Path, name: &str) -> io::Result<PartFile> {
        make_folders(directory, name)?;
        let part_path = directory.join(format!("{name}{PART_SUFFIX}"));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&part_path)?;
        Ok(PartFile {
            part_path,
            final_path: directory.join(name),
            file: Some(file),
            written: 0,
            committed: false,
            replace: false,
        })
    }

    /// Opens this batch's own `NAME.part` again: to append to it (`keep` bytes
    /// already there, for a resumed download) or, with `keep` zero, to start it over.
    /// `O_NOFOLLOW` refuses a symlink planted at the name.
    pub fn reopen(directory: &Path, name: &str, keep: u64) -> io::Result<PartFile> {
        use std::os::unix::fs::OpenOptionsExt;
        make_folders(directory, name)?;
        let part_path = directory.join(format!("{name}{PART_SUFFIX}"));
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&part_path)?;
        file.set_len(keep)?;
        let mut file = file;
        std::io::Seek::seek(&mut file, io::SeekFrom::Start(keep))?;
        Ok(PartFile {
            part_path,
            final_path: directory.join(name),
            file: Some(file),
            written: keep,
            committed: false,
            replace: false,
        })
    }

    /// Lets [`PartFile::commit`] replace a file already at the final name (`--force`
    /// downloading again what the manifest says is this batch's own file).
    pub fn replacing(mut self) -> Self {
        self.replace = true;
        self
    }

    /// Leaves the part on disk for a resume: closed, not committed, not removed.
    pub fn keep(mut self) {
        self.file.take();
        self.committed = true;
    }

    pub fn part_path(&self) -> &Path {
        &self.part_path
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

    /// Moves the finished file to its final name, never replacing what is there:
    /// `renameat2(RENAME_NOREPLACE)` does it in one step and cannot follow a symlink
    /// at the target; where the filesystem lacks it, a hard link (which also refuses
    /// an existing target) then removing the part; where links are missing too, a
    /// rename after checking the name is still free.
    pub fn commit(mut self) -> io::Result<PathBuf> {
        // No fsync: like curl and wget, a finished file is left to the page cache;
        // the rename-on-completion is what keeps a crashed process from leaving a
        // torn file under a final name.
        self.file.take();
        if self.replace {
            // rename() replaces a symlink itself, never what it points to.
            fs::rename(&self.part_path, &self.final_path)?;
            self.committed = true;
            return Ok(self.final_path.clone());
        }
        use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
        match renameat2(
            AT_FDCWD,
            &self.part_path,
            AT_FDCWD,
            &self.final_path,
            RenameFlags::RENAME_NOREPLACE,
        ) {
            Ok(()) => {}
            Err(nix::errno::Errno::EEXIST) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "the final name is taken",
                ));
            }
            Err(_) => match fs::hard_link(&self.part_path, &self.final_path) {
                Ok(()) => fs::remove_file(&self.part_path)?,
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => return Err(error),
                Err(_) => {
                    if self.final_path.symlink_metadata().is_ok() {
                        return Err(io::Error::new(
                            io::ErrorKind::AlreadyExists,
                            "the final name was taken meanwhile",
                        ));
                    }
                    fs::rename(&self.part_path, &self.final_path)?;
                }
            },
        }
        self.committed = true;
        Ok(self.final_path.clone())
    }
}

impl Drop for PartFile {
    fn drop(&mut self) {
        if !self.committed {
            self.file.take();
            let _ = fs::remove_file(&self.part_path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Appends `bytes`, commits, and reads the final file back.
    fn finished(mut part: PartFile, bytes: &[u8]) -> Vec<u8> {
        part.write(bytes).unwrap();
        fs::read(part.commit().unwrap()).unwrap()
    }

    #[test]
    fn commit_moves_part_to_final_name() {
        let directory = tempfile::tempdir().unwrap();
        let mut part = PartFile::create(directory.path(), "a.bin").unwrap();
        part.write(b"hello").unwrap();
        assert!(directory.path().join("a.bin.part").exists());
        let path = part.commit().unwrap();
        assert_eq!(fs::read(path).unwrap(), b"hello");
        assert!(!directory.path().join("a.bin.part").exists());
    }

    #[test]
    fn dropped_part_is_removed() {
        let directory = tempfile::tempdir().unwrap();
        let mut part = PartFile::create(directory.path(), "a.bin").unwrap();
        part.write(b"half").unwrap();
        drop(part);
        assert_eq!(fs::read_dir(directory.path()).unwrap().count(), 0);
    }

    #[test]
    fn reopen_keeps_a_prefix_or_starts_over() {
        let directory = tempfile::tempdir().unwrap();
        fs::write(directory.path().join("a.bin.part"), b"hello world").unwrap();
        let part = PartFile::reopen(directory.path(), "a.bin", 5).unwrap();
        assert_eq!(part.written(), 5);
        assert_eq!(finished(part, b"!"), b"hello!");
        fs::write(directory.path().join("b.bin.part"), b"stale").unwrap();
        let part = PartFile::reopen(directory.path(), "b.bin", 0).unwrap();
        assert_eq!(finished(part, b"new"), b"new");
    }

    #[test]
    fn replacing_overwrites_the_final_name() {
        let directory = tempfile::tempdir().unwrap();
        fs::write(directory.path().join("a.bin"), b"old").unwrap();
        let part = PartFile::create(directory.path(), "a.bin")
            .unwrap()
            .replacing();
        assert_eq!(finished(part, b"new"), b"new");
        assert_eq!(fs::read(directory.path().join("a.bin")).unwrap(), b"new");
    }

    #[test]
    fn planted_symlink_is_not_followed() {
        let directory = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().join("victim");
        std::os::unix::fs::symlink(&target, directory.path().join("a.bin.part")).unwrap();
        assert!(PartFile::create(directory.path(), "a.bin").is_err());
        std::os::unix::fs::symlink(&target, directory.path().join("b.bin")).unwrap();
        let mut part = PartFile::create(directory.path(), "b.bin").unwrap();
        part.write(b"x").unwrap();
        assert!(part.commit().is_err());
        assert!(!target.exists());
        std::os::unix::fs::symlink(&target, directory.path().join("c.bin.part")).unwrap();
        assert!(PartFile::reopen(directory.path(), "c.bin", 0).is_err());
        assert!(!target.exists());
    }
}
