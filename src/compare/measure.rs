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
    /// Every line the command wrote on stderr, with when it arrived after the
    /// start: curl reports each transfer there as it ends, and the arrival is
    /// that transfer's end on the run's clock.
    pub stderr_lines: Vec<(Duration, String)>,
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

/// Runs `command` to completion, stdout captured, stderr read line by line as
/// it comes, each line stamped with its arrival.
pub fn run(mut command: Command) -> io::Result<Measured> {
    // The children's CPU time is read as the difference in what this process's
    // waited-for children used; nothing else here runs children meanwhile.
    let before = getrusage(UsageWho::RUSAGE_CHILDREN).map_err(io::Error::from)?;
    let started = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let pid = child.id();
    let stderr = child.stderr.take().expect("stderr is piped");
    let stamper = thread::spawn(move || {
        let mut lines = Vec::new();
        for line in io::BufRead::lines(io::BufReader::new(stderr)) {
            let Ok(line) = line else { break };
            lines.push((started.elapsed(), line));
        }
        lines
    });
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
    let stderr_lines = stamper.join().unwrap_or_default();
    let after = getrusage(UsageWho::RUSAGE_CHILDREN).map_err(io::Error::from)?;
    Ok(Measured {
        wall,
        cpu: cpu_of(&after).saturating_sub(cpu_of(&before)),
        peak_memory_bytes,
        exit_code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr_lines,
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
