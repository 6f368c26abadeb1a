//! Where in the output folder a file goes: flat by default; with wget's
//! `-x/--force-directories` under its host and the folders of its URL's path
//! (`HOST[+PORT]/a/b/c.jpg`, `-nH` without the host, `--cut-dirs N` without the
//! first N folders); with `--spread N` under N levels of folders named by a hash
//! of the file's name (`3f/a0/c.jpg`), so no folder of a list of millions holds
//! more than a few thousand files.
//!
//! A file's place is one relative path, `/`-separated, and that path is its name
//! everywhere: in the name registry, the manifest, the report. Every component
//! went through [`names::sanitise`], so the path never holds `..`, `.`, an empty
//! component or a control character, and cannot leave the output folder; a
//! percent-encoded `%2f` in a URL is a character of one component, never a
//! separator. Folders are made as the files need them, and a folder on the way
//! that is a symbolic link (or not a folder) is refused, never followed.

use std::io;
use std::path::{Path, PathBuf};

use percent_encoding::percent_decode_str;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use url::Url;

use crate::fs::names;

/// The most `--spread` levels: four levels of 256 folders are four billion
/// folders, far past any list.
pub const MAX_SPREAD: u8 = 4;

/// How files are arranged in the output folder. Sent to worker processes with
/// the settings, so every strategy places files alike.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    /// Folders from the URL (`-x`).
    #[serde(default)]
    pub force_directories: bool,
    /// Leave out the host folder (`-nH`).
    #[serde(default)]
    pub no_host: bool,
    /// Leading path folders left out (`--cut-dirs`).
    #[serde(default)]
    pub cut_dirs: usize,
    /// Levels of hash folders, two hex digits each (`--spread`).
    #[serde(default)]
    pub spread: u8,
}

impl Layout {
    pub fn is_flat(&self) -> bool {
        !self.force_directories && self.spread == 0
    }

    /// Where a file named `name` (already a sanitised file name) for `url` goes:
    /// a relative path whose last component is `name`.
    pub fn place(&self, url: &Url, name: &str) -> String {
        let mut components = self.url_folders(url);
        components.extend(spread_folders(name, self.spread));
        components.push(name.to_string());
        components.join("/")
    }

    /// The folders `-x` makes for `url`, each sanitised; empty without `-x`.
    /// Like wget, `HOST:PORT` only when the port is not the scheme's own, and
    /// `--cut-dirs` counts the URL's folders before any is found unusable.
    fn url_folders(&self, url: &Url) -> Vec<String> {
        if !self.force_directories {
            return Vec::new();
        }
        let mut folders = Vec::new();
        if !self.no_host {
            let host = url.host_str().unwrap_or_default();
            let host = match url.port() {
                // wget's spelling for Windows, which refuses `:` in a name.
                Some(port) => format!("{host}+{port}"),
                None => host.to_string(),
            };
            folders.extend(names::sanitise(&host));
        }
        let segments: Vec<&str> = url
            .path_segments()
            .map(|segments| segments.collect())
            .unwrap_or_default();
        // The last segment names the file, not a folder.
        let directories = &segments[..segments.len().saturating_sub(1)];
        folders.extend(
            directories
                .iter()
                .skip(self.cut_dirs)
                .filter_map(|segment| {
                    names::sanitise(&percent_decode_str(segment).decode_utf8_lossy())
                }),
        );
        folders
    }
}

/// `levels` folders of two hex digits from the SHA-256 of `name`: the same name
/// always lands in the same folder, so its numbered alternatives (`c-1.jpg`)
/// sit beside it and a re-run looks in one place.
fn spread_folders(name: &str, levels: u8) -> Vec<String> {
    let digest = Sha256::digest(name.as_bytes());
    digest[..usize::from(levels)]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Whether a relative path (from the manifest, say) is one this module could
/// have made: components separated by `/`, each a name that sanitising leaves
/// as it is. `../x`, `/etc/x`, `a//b` and `.hidden` are not.
pub fn is_safe_path(path: &str) -> bool {
    path.split('/')
        .all(|component| names::sanitise(component).as_deref() == Some(component))
}

/// Makes the folders of `relative` (all its components but the last) inside
/// `directory`, one by one, refusing any that is already there as something
/// other than a folder, a symbolic link to one included: a link planted in the
/// output folder must not carry a download outside it.
pub fn make_folders(directory: &Path, relative: &str) -> io::Result<()> {
    let Some((folders, _name)) = relative.rsplit_once('/') else {
        return Ok(());
    };
    let mut path = PathBuf::from(directory);
    for folder in folders.split('/') {
        path.push(folder);
        match std::fs::create_dir(&path) {
            Ok(()) => continue,
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(error),
        }
        if !path.symlink_metadata()?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} is in the way: not a folder (a file or a symbolic link)",
                    path.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Whether every folder of `relative` inside `directory` is a real folder (no
/// symbolic link on the way): a file found through a link is not this folder's.
pub fn folders_are_real(directory: &Path, relative: &str) -> bool {
    let Some((folders, _name)) = relative.rsplit_once('/') else {
        return true;
    };
    let mut path = PathBuf::from(directory);
    folders.split('/').all(|folder| {
        path.push(folder);
        path.symlink_metadata()
            .is_ok_and(|metadata| metadata.is_dir())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    fn force(no_host: bool, cut_dirs: usize) -> Layout {
        Layout {
            force_directories: true,
            no_host,
            cut_dirs,
            spread: 0,
        }
    }

    #[test]
    fn flat_by_default() {
        let layout = Layout::default();
        assert!(layout.is_flat());
        assert_eq!(layout.place(&url("http://h/a/b/c.jpg"), "c.jpg"), "c.jpg");
    }

    #[test]
    fn force_directories_as_wget() {
        let address = url("http://127.0.0.1:8080/a/b/c.jpg");
        assert_eq!(
            force(false, 0).place(&address, "c.jpg"),
            "127.0.0.1+8080/a/b/c.jpg"
        );
        // The scheme's own port is left out.
        assert_eq!(
            force(false, 0).place(&url("https://Example.com:443/a/c.jpg"), "c.jpg"),
            "example.com/a/c.jpg"
        );
        assert_eq!(force(true, 0).place(&address, "c.jpg"), "a/b/c.jpg");
        assert_eq!(force(true, 1).place(&address, "c.jpg"), "b/c.jpg");
        assert_eq!(
            force(false, 1).place(&address, "c.jpg"),
            "127.0.0.1+8080/b/c.jpg"
        );
        // Cutting more folders than there are leaves the name.
        assert_eq!(force(true, 5).place(&address, "c.jpg"), "c.jpg");
        // A URL ending in `/` is all folders.
        assert_eq!(
            force(true, 0).place(&url("http://h/docs/"), "index.html"),
            "docs/index.html"
        );
        assert_eq!(
            force(false, 0).place(&url("http://h/"), "index.html"),
            "h/index.html"
        );
    }

    #[test]
    fn hostile_folders_stay_inside() {
        let layout = force(true, 0);
        // The URL parser resolves `%2e%2e` as `..`: nothing climbs above the root.
        assert_eq!(layout.place(&url("http://h/a/%2e%2e/b/c"), "c"), "b/c");
        // `%2f` is a character of the folder's name, never a separator.
        let place = layout.place(&url("http://h/..%2f..%2fetc/passwd"), "passwd");
        assert_eq!(place, "_.._etc/passwd");
        assert!(is_safe_path(&place));
        // Empty, dot and control-character folders: dropped or cleaned.
        let place = layout.place(&url("http://h/a//%2e/%00x/%20/c"), "c");
        assert_eq!(place, "a/_x/c");
        let long = "x".repeat(1000);
        let place = layout.place(&url(&format!("http://h/{long}/c")), "c");
        assert!(
            place
                .split('/')
                .all(|part| part.len() <= names::MAX_NAME_BYTES)
        );
    }

    #[test]
    fn spread_by_the_name_deterministic() {
        let layout = Layout {
            spread: 2,
            ..Layout::default()
        };
        let place = layout.place(&url("http://h/x/c.jpg"), "c.jpg");
        assert_eq!(place, layout.place(&url("http://other/c.jpg"), "c.jpg"));
        let parts: Vec<&str> = place.split('/').collect();
        assert_eq!(parts.len(), 3);
        assert!(
            parts[..2]
                .iter()
                .all(|part| part.len() == 2 && part.chars().all(|c| c.is_ascii_hexdigit()))
        );
        assert_eq!(parts[2], "c.jpg");
        assert_ne!(place, layout.place(&url("http://h/d.jpg"), "d.jpg"));
        // Below the folders of -x.
        let both = Layout {
            spread: 1,
            ..force(false, 0)
        };
        let place = both.place(&url("http://h/a/c.jpg"), "c.jpg");
        assert!(
            place.starts_with("h/a/") && place.ends_with("/c.jpg"),
            "{place}"
        );
        assert_eq!(place.split('/').count(), 4);
    }

    #[test]
    fn safe_paths() {
        for path in ["a.jpg", "h+80/a/b.jpg", "3f/a0/c.jpg"] {
            assert!(is_safe_path(path), "{path}");
        }
        // A `:` is refused as Windows refuses it (-x spells a port `h+80`).
        assert!(!is_safe_path("h:80/a/b.jpg"));
        for path in [
            "../a",
            "a/../b",
            "/etc/passwd",
            "a//b",
            ".hidden",
            "a/.b",
            "a/",
            "",
            "a\\b",
        ] {
            assert!(!is_safe_path(path), "{path}");
        }
    }

    // Making a symbolic link takes a privilege on Windows.
    #[cfg(unix)]
    #[test]
    fn folders_are_made_and_links_refused() {
        let directory = tempfile::tempdir().unwrap();
        make_folders(directory.path(), "a/b/c.jpg").unwrap();
        assert!(directory.path().join("a/b").is_dir());
        assert!(folders_are_real(directory.path(), "a/b/c.jpg"));
        make_folders(directory.path(), "a/b/d.jpg").unwrap();
        make_folders(directory.path(), "flat.jpg").unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), directory.path().join("link")).unwrap();
        let error = make_folders(directory.path(), "link/x/c.jpg").unwrap_err();
        assert!(error.to_string().contains("in the way"), "{error}");
        assert!(!folders_are_real(directory.path(), "link/c.jpg"));
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
        std::fs::write(directory.path().join("file"), b"").unwrap();
        assert!(make_folders(directory.path(), "file/c.jpg").is_err());
    }
}
