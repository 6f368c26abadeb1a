//! Measuring one command from the outside, the same way for grab and its peers:
//! wall time, CPU time (user + sys, descendants included), and peak memory as the
//! largest sum of resident memory over the whole process tree, so the `processes`
//! strategy is charged for its workers.
//!
//! Wall time is `Instant` on every system. CPU and memory are the system's
//! own accounts: on Unix the waited-for children's `getrusage` and the tree's
//! resident memory sampled from /proc (where there is no /proc, as on macOS,
//! the largest single process's peak instead); on Windows a job object the
//! command runs in, whose accounts cover every process in it, workers
//! included (its peak is of committed memory, the nearest Windows keeps).

use std::fs;
use std::io;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What one run of a command cost.
#[derive(Debug, Clone)]
pub struct Measured {
    pub wall: Duration,
    pub cpu: Duration,
    pub peak_memory_bytes: u64,
    pub exit_code: Option<i32>,
    pub stdout: String,
    /// Every line the command wrote on stderr, with when it arrived after the
    /// start: curl reports each transfer there as it ends, and the arrival is
    /// that transfer's end on the run's clock.
    pub stderr_lines: Vec<(Duration, String)>,
}

/// Runs `command` to completion, stdout captured, stderr read line by line as
/// it comes, each line stamped with its arrival.
pub fn run(mut command: Command) -> io::Result<Measured> {
    let started = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let tree = Tree::watch(&child)?;
    let stderr = child.stderr.take().expect("stderr is piped");
    let stamper = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in io::BufRead::lines(io::BufReader::new(stderr)) {
            let Ok(line) = line else { break };
            lines.push((started.elapsed(), line));
        }
        lines
    });
    let output = child.wait_with_output()?;
    let wall = started.elapsed();
    let (cpu, peak_memory_bytes) = tree.finish()?;
    // A line read after the exit was written before it: the stamping thread
    // can lag the child on a busy machine, and a report stamped past the wall
    // time would draw a transfer ending after its run.
    let stderr_lines = stamper
        .join()
        .unwrap_or_default()
        .into_iter()
        .map(|(arrival, line)| (arrival.min(wall), line))
        .collect();
    Ok(Measured {
        wall,
        cpu,
        peak_memory_bytes,
        exit_code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr_lines,
    })
}

#[cfg(unix)]
use unix::Tree;
#[cfg(windows)]
use windows::Tree;

#[cfg(unix)]
mod unix {
    use std::io;
    use std::process::Child;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::thread::{self, JoinHandle};
    use std::time::Duration;

    use nix::sys::resource::{Usage, UsageWho, getrusage};

    /// How often the process tree's memory is sampled.
    const SAMPLE_EVERY: Duration = Duration::from_millis(10);

    /// A command's process tree, watched until it is waited for.
    pub struct Tree {
        before: Usage,
        running: Arc<AtomicBool>,
        sampler: JoinHandle<u64>,
    }

    fn cpu_of(usage: &Usage) -> Duration {
        let seconds = |time: nix::sys::time::TimeVal| {
            Duration::new(
                time.tv_sec().max(0) as u64,
                (time.tv_usec().max(0) as u32) * 1000,
            )
        };
        seconds(usage.user_time()) + seconds(usage.system_time())
    }

    impl Tree {
        /// Right after the spawn: the children's CPU time is read as the
        /// difference in what this process's waited-for children used (the new
        /// child counts once waited for); nothing else here runs children
        /// meanwhile.
        pub fn watch(child: &Child) -> io::Result<Tree> {
            let before = getrusage(UsageWho::RUSAGE_CHILDREN).map_err(io::Error::from)?;
            let pid = child.id();
            let running = Arc::new(AtomicBool::new(true));
            let sampler = {
                let running = running.clone();
                thread::spawn(move || {
                    let mut peak = 0;
                    while running.load(Ordering::Relaxed) {
                        peak = peak.max(super::tree_resident_bytes(pid));
                        thread::sleep(SAMPLE_EVERY);
                    }
                    peak
                })
            };
            Ok(Tree {
                before,
                running,
                sampler,
            })
        }

        /// Once the child is waited for: its CPU time and peak memory.
        pub fn finish(self) -> io::Result<(Duration, u64)> {
            self.running.store(false, Ordering::Relaxed);
            let sampled = self.sampler.join().unwrap_or(0);
            let after = getrusage(UsageWho::RUSAGE_CHILDREN).map_err(io::Error::from)?;
            let cpu = cpu_of(&after).saturating_sub(cpu_of(&self.before));
            // No /proc to sample: the largest single process's peak.
            let largest = u64::try_from(after.max_rss()).unwrap_or(0);
            let largest = match cfg!(target_os = "macos") {
                true => largest,
                false => largest * 1024,
            };
            Ok((cpu, if sampled > 0 { sampled } else { largest }))
        }
    }
}

#[cfg(windows)]
mod windows {
    use std::io;
    use std::mem::size_of;
    use std::os::windows::io::AsRawHandle;
    use std::process::Child;
    use std::time::Duration;

    use windows_sys::Win32::Foundation::{CloseHandle, HANDLE};
    use windows_sys::Win32::System::JobObjects::{
        AssignProcessToJobObject, CreateJobObjectW, JOBOBJECT_BASIC_ACCOUNTING_INFORMATION,
        JOBOBJECT_EXTENDED_LIMIT_INFORMATION, JOBOBJECTINFOCLASS,
        JobObjectBasicAccountingInformation, JobObjectExtendedLimitInformation,
        QueryInformationJobObject,
    };

    /// A command's process tree: the job it runs in.
    pub struct Tree {
        job: HANDLE,
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            // SAFETY: the job's handle is this value's, closed once.
            unsafe { CloseHandle(self.job) };
        }
    }

    impl Tree {
        /// Right after the spawn: the child joins a job, and every process it
        /// starts joins it too.
        pub fn watch(child: &Child) -> io::Result<Tree> {
            // SAFETY: a fresh unnamed job with default security.
            let job = unsafe { CreateJobObjectW(std::ptr::null(), std::ptr::null()) };
            if job.is_null() {
                return Err(io::Error::last_os_error());
            }
            let tree = Tree { job };
            // SAFETY: both handles are open while borrowed here.
            if unsafe { AssignProcessToJobObject(tree.job, child.as_raw_handle()) } == 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(tree)
        }

        /// Once the child is waited for: the job's CPU time and peak memory.
        pub fn finish(self) -> io::Result<(Duration, u64)> {
            // SAFETY: each structure is the one Windows fills for its class.
            let (accounting, limits) = unsafe {
                (
                    self.query::<JOBOBJECT_BASIC_ACCOUNTING_INFORMATION>(
                        JobObjectBasicAccountingInformation,
                    )?,
                    self.query::<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>(
                        JobObjectExtendedLimitInformation,
                    )?,
                )
            };
            // Both times count 100-nanosecond intervals.
            let ticks = (accounting.TotalUserTime + accounting.TotalKernelTime).max(0) as u64;
            Ok((
                Duration::from_nanos(ticks * 100),
                limits.PeakJobMemoryUsed as u64,
            ))
        }

        /// One class of the job's information.
        ///
        /// # Safety
        ///
        /// `T` is the plain-data structure Windows fills for `class`.
        unsafe fn query<T>(&self, class: JOBOBJECTINFOCLASS) -> io::Result<T> {
            // SAFETY: the caller vouches for `T`; it is sized as told.
            unsafe {
                let mut information: T = std::mem::zeroed();
                if QueryInformationJobObject(
                    self.job,
                    class,
                    (&raw mut information).cast(),
                    size_of::<T>() as u32,
                    std::ptr::null_mut(),
                ) == 0
                {
                    return Err(io::Error::last_os_error());
                }
                Ok(information)
            }
        }
    }
}

/// Resident memory of a process and all its descendants, from /proc.
#[cfg(unix)]
pub fn tree_resident_bytes(root: u32) -> u64 {
    let mut total = 0;
    let mut pending = vec![root];
    while let Some(pid) = pending.pop() {
        total += resident_bytes(pid);
        pending.extend(children(pid));
    }
    total
}

#[cfg(unix)]
fn resident_bytes(pid: u32) -> u64 {
    let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else {
        return 0;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| {
            value
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kibibytes| kibibytes * 1024)
}

/// Children of every thread of a process (each thread lists the ones it started).
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(|task| fs::read_to_string(task.ok()?.path().join("children")).ok())
        .flat_map(|text| {
            text.split_whitespace()
                .filter_map(|pid| pid.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

// `sh` and /proc: Linux's.
#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn measures_a_child_and_its_descendants() {
        let mut command = Command::new("sh");
        // A busy child in the background, waited for: its CPU counts too.
        command.args([
            "-c",
            "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done & wait; echo done; echo first >&2; sleep 0.05; echo second >&2",
        ]);
        let measured = run(command).unwrap();
        assert_eq!(measured.exit_code, Some(0));
        assert_eq!(measured.stdout.trim(), "done");
        let [(first, one), (second, two)] = &measured.stderr_lines[..] else {
            panic!("{:?}", measured.stderr_lines)
        };
        assert_eq!((one.as_str(), two.as_str()), ("first", "second"));
        // Stamped as they came, not when the command ended.
        assert!(first < second && *second <= measured.wall);
        assert!(measured.cpu > Duration::ZERO);
        assert!(measured.peak_memory_bytes > 0);
        assert!(measured.wall >= measured.cpu / 2);
    }

    #[test]
    fn own_tree_has_memory() {
        assert!(tree_resident_bytes(std::process::id()) > 0);
    }
}
