//! Running out of room: a full disk stops a run once (one message naming the
//! folder, no new downloads, what is complete kept, exit 1) and a run after
//! freeing space resumes; a low open-file limit caps the work in flight and
//! fails no download. The full disk is a small tmpfs the test mounts (it runs
//! as root, as here and in CI); the limit is set in the child before exec.

#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::support::{files_in, for_each_strategy, gallery, grab_command, stderr_of};

/// A tmpfs of a few hundred KiB mounted for one test; unmounted on drop.
struct SmallDisk {
    path: PathBuf,
    _scratch: tempfile::TempDir,
}

impl SmallDisk {
    /// `None` when this process may not mount (not root): the test says so
    /// and checks nothing.
    fn mount(bytes: u64) -> Option<SmallDisk> {
        let scratch = tempfile::tempdir().unwrap();
        let path = scratch.path().join("disk");
        std::fs::create_dir(&path).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(&path)
            .status();
        match mounted {
            Ok(status) if status.success() => Some(SmallDisk {
                path,
                _scratch: scratch,
            }),
            _ => {
                // SAFETY: geteuid only reads the process's user id.
                let root = unsafe { nix::libc::geteuid() } == 0;
                assert!(!root, "root could not mount a tmpfs");
                eprintln!("skipped: mounting a tmpfs needs root");
                None
            }
        }
    }

    /// Gives the disk room: `bytes` in all.
    fn grow(&self, bytes: u64) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={bytes}")])
            .arg(&self.path)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

fn run(command: &mut Command) -> Output {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

fn summary_of(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("no JSON summary: {}", stderr_of(output)))
}

/// The full disk's one message, and nothing else about it: no line per file.
/// It names `folder`, or (a dataset's worker processes) a folder in it.
fn assert_told_once(stderr: &str, folder: &Path) {
    let told: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains("no space left"))
        .collect();
    assert_eq!(told.len(), 1, "{stderr}");
    assert!(
        told[0].starts_with(&format!("error: {}", folder.display()))
            && told[0].contains(" is full"),
        "{stderr}"
    );
    assert!(!stderr.contains("os error 28"), "{stderr}");
}

const FILES: usize = 40;
const SIZE: usize = 64 * 1024;

fn a_full_disk_stops_the_run_once_and_a_run_with_room_resumes(strategy: &str) {
    let Some(disk) = SmallDisk::mount(512 * 1024) else {
        return;
    };
    let server = gallery();
    let list: String = (0..FILES)
        .map(|number| format!("{}/files/f{number}.bin?size={SIZE}\n", server.base_url()))
        .collect();
    let list_path = disk._scratch.path().join("urls.txt");
    std::fs::write(&list_path, list).unwrap();
    let output = disk.path.join("out");
    let jobs = 4;
    let get = || {
        let mut command = grab_command();
        command
            .args(["get", "-i"])
            .arg(&list_path)
            .arg("-o")
            .arg(&output)
            .args(["-s", strategy, "-j", &jobs.to_string()])
            .args(["--json", "--progress", "none", "-q"]);
        command
    };

    let full = run(&mut get());
    assert_eq!(full.status.code(), Some(1), "{}", stderr_of(&full));
    assert_told_once(&stderr_of(&full), &output);
    let summary = summary_of(&full);
    let count = |field: &str| summary[field].as_u64().unwrap();
    let (saved, failed) = (count("saved"), count("failed"));
    let never_started = summary["never_started"].as_u64().unwrap();
    assert!(
        summary["stopped"].as_str().unwrap().contains("is full"),
        "{summary}"
    );
    assert!(saved > 0 && saved < FILES as u64, "{summary}");
    // Only the downloads in flight at the stop failed; the rest never began.
    assert!(failed <= 2 * jobs, "{summary}");
    assert!(never_started > 0, "{summary}");
    assert_eq!(
        saved + failed + count("stopped_in_flight") + never_started,
        FILES as u64,
        "{summary}"
    );
    // What is complete stays, whole; nothing half-written is left.
    let names = files_in(&output);
    assert_eq!(names.len() as u64, saved, "{names:?}");
    for name in &names {
        assert!(!name.ends_with(".part"), "{names:?}");
        assert_eq!(
            std::fs::metadata(output.join(name)).unwrap().len(),
            SIZE as u64
        );
    }

    disk.grow(8 * 1024 * 1024);
    let again = run(&mut get());
    assert_eq!(again.status.code(), Some(0), "{}", stderr_of(&again));
    let summary = summary_of(&again);
    assert_eq!(summary["skipped"].as_u64(), Some(saved), "{summary}");
    assert_eq!(
        summary["saved"].as_u64(),
        Some(FILES as u64 - saved),
        "{summary}"
    );
    let names = files_in(&output);
    assert_eq!(names.len(), FILES, "{names:?}");
    for name in &names {
        assert_eq!(
            std::fs::metadata(output.join(name)).unwrap().len(),
            SIZE as u64
        );
    }
}

/// `grab dataset` on a full disk: one message, not one per sample; the
/// samples spooled stay, and a run with room reuses them and finishes.
fn dataset_on_a_full_disk(strategy: &str) {
    let Some(disk) = SmallDisk::mount(160 * 1024) else {
        return;
    };
    let server = gallery();
    let rows = 60;
    let table: String = (0..rows)
        .map(|number| format!("{}/images/r{number}.jpg?w=160&h=160\n", server.base_url()))
        .collect();
    let table_path = disk._scratch.path().join("table.txt");
    std::fs::write(&table_path, table).unwrap();
    let output = disk.path.join("out");
    let build = || {
        let mut command = grab_command();
        command
            .arg("dataset")
            .arg(&table_path)
            .arg("-o")
            .arg(&output)
            .args(["-s", strategy, "-j", "4", "--samples-per-shard", "20"])
            .args(["--image-size", "96", "--encode-quality", "100"])
            .args(["--json", "--progress", "none", "-q"]);
        command
    };

    let full = run(&mut build());
    assert_eq!(full.status.code(), Some(1), "{}", stderr_of(&full));
    assert_told_once(&stderr_of(&full), &output);
    assert!(
        !stderr_of(&full).contains("cannot spool"),
        "{}",
        stderr_of(&full)
    );

    disk.grow(16 * 1024 * 1024);
    let again = run(&mut build());
    assert_eq!(again.status.code(), Some(0), "{}", stderr_of(&again));
    let stats = summary_of(&again);
    assert!(stats["samples_reused"].as_u64().unwrap() > 0, "{stats}");
    assert_eq!(
        (stats["count"].as_u64(), stats["successes"].as_u64()),
        (Some(rows), Some(rows)),
        "{stats}"
    );
}

#[test]
fn dataset_on_a_full_disk_async() {
    dataset_on_a_full_disk("async");
}

#[test]
fn dataset_on_a_full_disk_processes() {
    dataset_on_a_full_disk("processes");
}

/// The open-file limit a child runs under, set between fork and exec.
fn with_open_file_limit(command: &mut Command, limit: u64) {
    use nix::sys::resource::{Resource, setrlimit};
    use std::os::unix::process::CommandExt;
    // SAFETY: setrlimit is a system call, async-signal-safe; nothing is
    // allocated between fork and exec.
    unsafe {
        command.pre_exec(move || {
            setrlimit(Resource::RLIMIT_NOFILE, limit, limit)
                .map_err(|errno| std::io::Error::from_raw_os_error(errno as i32))
        });
    }
}

fn a_low_open_file_limit_caps_the_work_and_fails_nothing(strategy: &str) {
    let server = gallery();
    let scratch = tempfile::tempdir().unwrap();
    let count = 200;
    let list: String = (0..count)
        .map(|number| format!("{}/files/n{number}.bin?size=3000\n", server.base_url()))
        .collect();
    let list_path = scratch.path().join("urls.txt");
    std::fs::write(&list_path, list).unwrap();
    let output = scratch.path().join("out");
    let mut command = grab_command();
    command
        .args(["get", "-i"])
        .arg(&list_path)
        .arg("-o")
        .arg(&output)
        .args([
            "-s",
            strategy,
            "-j",
            "64",
            "--json",
            "--progress",
            "none",
            "-q",
        ]);
    with_open_file_limit(&mut command, 40);
    let result = run(&mut command);
    let stderr = stderr_of(&result);
    assert_eq!(result.status.code(), Some(0), "{stderr}");
    let summary = summary_of(&result);
    assert_eq!(
        (summary["saved"].as_u64(), summary["failed"].as_u64()),
        (Some(count), Some(0)),
        "{summary} {stderr}"
    );
    assert_eq!(files_in(&output).len() as u64, count);
    // Said once, with the limit and what it allows (sequential holds one
    // download whatever -j says: nothing to cap).
    let said = usize::from(strategy != "sequential");
    assert_eq!(
        stderr.matches("open-file limit (40").count(),
        said,
        "{stderr}"
    );
    assert!(!stderr.contains("Too many open files"), "{stderr}");
}

for_each_strategy!(
    a_full_disk_stops_the_run_once_and_a_run_with_room_resumes,
    a_low_open_file_limit_caps_the_work_and_fails_nothing,
);
