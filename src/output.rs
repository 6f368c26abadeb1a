//! Writing one downloaded file: the body streams into `NAME.part` in the output
//! folder and becomes `NAME` only once it is complete, so a final name never holds a
//! truncated file. Shared by every strategy.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::naming::PART_SUFFIX;

/// A file being written under its `.part` name. Dropped without [`PartFile::commit`],
/// it removes what it wrote.
pub struct PartFile {
    part_path: PathBuf,
    final_path: PathBuf,
    file: Option<File>,
    written: u64,
    committed: bool,
}

impl PartFile {
    /// Creates `NAME.part`. `create_new` refuses anything already there, a symlink
    /// included, so a planted link is never followed.
    pub fn create(directory: &Path, name: &str) -> io::Result<PartFile> {
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
        })
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

    /// Moves the finished file to its final name. A hard link cannot replace an
    /// existing file or follow a symlink at the target, unlike `rename`, so what sits
    /// at the final name is never clobbered; filesystems without links fall back to
    /// rename after checking the name is still free.
    pub fn commit(mut self) -> io::Result<PathBuf> {
        // No fsync: like curl and wget, a finished file is left to the page cache;
        // the rename-on-completion is what keeps a crash from leaving a torn file.
        self.file.take();
        match fs::hard_link(&self.part_path, &self.final_path) {
            Ok(()) => {
                fs::remove_file(&self.part_path)?;
            }
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
    }
}
