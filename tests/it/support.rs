//! Shared helpers: running the grab binary, and local servers.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub use grab::server::Background;

pub const STRATEGIES: [&str; 4] = ["sequential", "threads", "processes", "async"];

/// The gallery server on a free loopback port.
pub fn gallery() -> Background {
    Background::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).expect("start the local server")
}

pub fn grab_command() -> Command {
    Command::new(env!("CARGO_BIN_EXE_grab"))
}

/// Runs grab with `arguments`, feeding `stdin` if given, and waits for it.
pub fn grab(arguments: &[&str], stdin: Option<&str>) -> Output {
    let mut command = grab_command();
    command
        .args(arguments)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = command.spawn().expect("start grab");
    if let Some(text) = stdin {
        let mut input = child.stdin.take().unwrap();
        input.write_all(text.as_bytes()).unwrap();
    }
    child.wait_with_output().expect("wait for grab")
}

pub fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Every file in a folder, by name, sorted; grab's own manifest left out (any
/// other dot-file would show).
pub fn files_in(directory: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(directory)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != grab::fs::MANIFEST_NAME && name != grab::filter::RECORD_NAME)
        .collect();
    names.sort();
    names
}

/// Every file under a folder, as paths relative to it with `/` between
/// folders, sorted; grab's own manifest left out.
pub fn files_under(directory: &Path) -> Vec<String> {
    fn walk(directory: &Path, prefix: &str, found: &mut Vec<String>) {
        for entry in std::fs::read_dir(directory).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = format!("{prefix}{name}");
            if entry.file_type().unwrap().is_dir() {
                walk(&entry.path(), &format!("{path}/"), found);
            } else if path != grab::fs::MANIFEST_NAME {
                found.push(path);
            }
        }
    }
    let mut found = Vec::new();
    walk(directory, "", &mut found);
    found.sort();
    found
}

/// A scratch area with the output folder one level down, so a test can check that
/// nothing was written beside it.
pub struct Scratch {
    pub root: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch {
            root: tempfile::tempdir().unwrap(),
        }
    }

    pub fn output(&self) -> PathBuf {
        self.root.path().join("out")
    }

    pub fn output_arg(&self) -> String {
        self.output().display().to_string()
    }

    /// Writes a file at the root and returns its path.
    pub fn write(&self, name: &str, text: &str) -> String {
        let path = self.root.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    /// Fails if anything but the output folder and the given files sits at the root.
    pub fn assert_nothing_outside(&self, expected: &[&str]) {
        let mut allowed: Vec<String> = expected.iter().map(|name| name.to_string()).collect();
        allowed.push("out".to_string());
        for name in files_in(self.root.path()) {
            assert!(
                allowed.contains(&name),
                "unexpected file outside the output folder: {name}"
            );
        }
    }

    /// Fails if a `.part` file is left in the output folder.
    pub fn assert_no_part_files(&self) {
        for name in files_in(&self.output()) {
            assert!(!name.ends_with(".part"), "left behind: {name}");
        }
    }
}

/// Makes a module per strategy, each with one test per named case: `case(strategy)`
/// from the invoking module runs under the name of the case.
macro_rules! for_each_strategy {
    ($($case:ident),* $(,)?) => {
        mod sequential { $(#[test] fn $case() { super::$case("sequential") })* }
        mod threads { $(#[test] fn $case() { super::$case("threads") })* }
        mod processes { $(#[test] fn $case() { super::$case("processes") })* }
        mod asynchronous { $(#[test] fn $case() { super::$case("async") })* }
    };
}
pub(crate) use for_each_strategy;
