//! Measuring one command from the outside, the same way for grab and its peers:
//! wall time, CPU time (user + sys, descendants included), and peak memory as the
//! largest sum of resident memory over the whole process tree, so the `processes`
//! strategy is charged for its workers.

use std::fs;
use std::io;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::resource::{Usage, UsageWho, getrusage};

/// What one run of a command cost.
#[derive(Debug, Clone)]
pub struct Measured {
    pub wall: Duration,
    pub cpu: Duration,
    pub peak_memory_bytes: u64,
    pub exit_code: Option<i32>,
    pub stdout: String,
}

/// How often the process tree's memory is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(10);

fn cpu_of(usage: &Usage) -> Duration {
    let seconds = |time: nix::sys::time::TimeVal| {
        Duration::new(
            time.tv_sec().max(0) as u64,
            (time.tv_usec().max(0) as u32) * 1000,
        )
    };
    seconds(usage.user_time()) + seconds(usage.system_time())
}

/// Runs `command` to completion, stdout captured and stderr discarded.
pub fn run(mut command: Command) -> io::Result<Measured> {
    // The children's CPU time is read as the difference in what this process's
    // waited-for children used; nothing else here runs children meanwhile.
    let before = getrusage(UsageWho::RUSAGE_CHILDREN).map_err(io::Error::from)?;
    let started = Instant::now();
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let pid = child.id();
    let running = Arc::new(AtomicBool::new(true));
    let sampler = {
        let running = running.clone();
        thread::spawn(move || {
            let mut peak = 0;
            while running.load(Ordering::Relaxed) {
                peak = peak.max(tree_resident_bytes(pid));
                thread::sleep(SAMPLE_EVERY);
            }
            peak
        })
    };
    let output = child.wait_with_output()?;
    let wall = started.elapsed();
    running.store(false, Ordering::Relaxed);
    let peak_memory_bytes = sampler.join().unwrap_or(0);
    let after = getrusage(UsageWho::RUSAGE_CHILDREN).map_err(io::Error::from)?;
    Ok(Measured {
        wall,
        cpu: cpu_of(&after).saturating_sub(cpu_of(&before)),
        peak_memory_bytes,
        exit_code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
    })
}

/// Resident memory of a process and all its descendants, from /proc.
pub fn tree_resident_bytes(root: u32) -> u64 {
    let mut total = 0;
    let mut pending = vec![root];
    while let Some(pid) = pending.pop() {
        total += resident_bytes(pid);
        pending.extend(children(pid));
    }
    total
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_a_child_and_its_descendants() {
        let mut command = Command::new("sh");
        // A busy child in the background, waited for: its CPU counts too.
        command.args([
            "-c",
            "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done & wait; echo done",
        ]);
        let measured = run(command).unwrap();
        assert_eq!(measured.exit_code, Some(0));
        assert_eq!(measured.stdout.trim(), "done");
        assert!(measured.cpu > Duration::ZERO);
        assert!(measured.peak_memory_bytes > 0);
        assert!(measured.wall >= measured.cpu / 2);
    }

    #[test]
    fn own_tree_has_memory() {
        assert!(tree_resident_bytes(std::process::id()) > 0);
    }
}
