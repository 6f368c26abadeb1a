//! Whole files written atomically, and the one mode rule for every file grab
//! writes: `0666 & !umask`, as curl, wget and every shell tool the user knows.
//! A file is written under a temporary name in its target folder (so the
//! rename never crosses a filesystem) and renamed into place whole: a reader
//! or a crash sees the old file or the new one, never half of one.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use tempfile::NamedTempFile;

/// The mode every file grab creates asks for; the umask takes its share.
#[cfg(unix)]
pub const FILE_MODE: u32 = 0o666;

/// Prefix of temporary names: a dot, which no sanitised download name starts
/// with, so a temporary file is never mistaken for a download.
const TEMPORARY_PREFIX: &str = ".grab-";

/// A new file under a temporary name in `directory`, with [`FILE_MODE`]
/// (tempfile's own default is 0600, which would make statistics and records
/// unreadable beside the downloads they describe).
pub fn temporary_in(directory: &Path) -> io::Result<NamedTempFile> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(TEMPORARY_PREFIX).suffix(".part");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(FILE_MODE));
    }
    builder.tempfile_in(directory)
}

/// The folder a path's file is in (`.` for a bare name).
pub fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Moves a whole temporary file to `path`. Without `replace`, a file already
/// at `path` stays and the call fails with `AlreadyExists`.
pub fn commit(temporary: NamedTempFile, path: &Path, replace: bool) -> io::Result<File> {
    let persisted = if replace {
        temporary.persist(path)
    } else {
        temporary.persist_noclobber(path)
    };
    persisted.map_err(|error| error.error)
}

/// Writes `bytes` to `path` atomically (see the module's note).
pub fn write_atomically(path: &Path, bytes: &[u8], replace: bool) -> io::Result<()> {
    let mut temporary = temporary_in(folder_of(path))?;
    temporary.write_all(bytes)?;
    commit(temporary, path, replace)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_replaced_only_when_asked() {
        let (directory, path) = crate::fs::scratch_file("a.png");
        write_atomically(&path, b"first", false).unwrap();
        write_atomically(&path, b"second", true).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        let refused = write_atomically(&path, b"third", false).unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        // No temporary file is left behind, whichever way it went.
        assert_eq!(std::fs::read_dir(directory.path()).unwrap().count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn a_written_file_has_the_mode_a_created_one_has() {
        use std::os::unix::fs::PermissionsExt;
        let (directory, atomic) = crate::fs::scratch_file("atomic");
        let created = directory.path().join("created");
        write_atomically(&atomic, b"x", false).unwrap();
        std::fs::write(&created, b"x").unwrap();
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&atomic), mode(&created));
    }
}
