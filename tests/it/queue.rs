//! `grab queue`: workers against a real `redis-server`, started by each test
//! on a free port with persistence off (the append-only file on for the
//! restart test) and killed when the test ends.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::support::{Scratch, files_in, gallery, grab, grab_command, stderr_of};

/// A redis-server of this test's own; killed on drop.
pub(crate) struct RedisServer {
    child: Child,
    port: u16,
    folder: PathBuf,
    appendonly: bool,
}

impl RedisServer {
    pub(crate) fn start(folder: &Path, appendonly: bool) -> RedisServer {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        RedisServer::start_on(folder, appendonly, port)
    }

    fn start_on(folder: &Path, appendonly: bool, port: u16) -> RedisServer {
        let mut server = RedisServer {
            child: spawn_redis(folder, appendonly, port),
            port,
            folder: folder.to_path_buf(),
            appendonly,
        };
        server.wait_until_it_answers();
        server
    }

    fn wait_until_it_answers(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.answers() {
            assert!(
                self.child.try_wait().unwrap().is_none(),
                "redis-server exited"
            );
            assert!(Instant::now() < deadline, "redis-server did not start");
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn answers(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)) else {
            return false;
        };
        let mut reply = [0u8; 5];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut reply).is_ok()
            && &reply == b"+PONG"
    }

    pub(crate) fn address(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn connection(&self) -> redis::Connection {
        redis::Client::open(self.address())
            .unwrap()
            .get_connection()
            .unwrap()
    }

    /// Stops the server as `SIGTERM` does (its append-only file complete)
    /// and starts it again on the same port.
    fn restart(&mut self) {
        #[cfg(unix)]
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        // Windows has no SIGTERM to send: Redis there is stopped outright.
        #[cfg(not(unix))]
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        thread::sleep(Duration::from_millis(500));
        self.child = spawn_redis(&self.folder, self.appendonly, self.port);
        self.wait_until_it_answers();
    }
}

fn spawn_redis(folder: &Path, appendonly: bool, port: u16) -> Child {
    Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", ""])
        .args(["--appendonly", if appendonly { "yes" } else { "no" }])
        .arg("--dir")
        .arg(folder)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start redis-server (the Debian package redis-server)")
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `grab queue ARGUMENTS --redis ADDRESS --queue test`.
fn queue(redis: &RedisServer, arguments: &[&str]) -> Output {
    let address = redis.address();
    let mut all = vec!["queue"];
    all.extend_from_slice(arguments);
    all.extend_from_slice(&["--redis", &address, "--queue", "test"]);
    grab(&all, None)
}

fn start_worker(redis: &RedisServer, output: &Path, more: &[&str]) -> Child {
    grab_command()
        .args([
            "queue",
            "work",
            "--redis",
            &redis.address(),
            "--queue",
            "test",
        ])
        .args(["-o", output.to_str().unwrap(), "-q", "--progress", "none"])
        .args(more)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn push(redis: &RedisServer, scratch: &Scratch, urls: &[String]) -> Output {
    let list = scratch.write("urls.txt", &(urls.join("\n") + "\n"));
    let pushed = queue(redis, &["push", "-i", &list]);
    assert_eq!(pushed.status.code(), Some(0), "{}", stderr_of(&pushed));
    pushed
}

fn status(redis: &RedisServer) -> serde_json::Value {
    let output = queue(redis, &["status", "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Waits for a worker and checks that it ended well.
fn finish(worker: Child) -> Output {
    let output = worker.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    output
}

/// Every URL saved once: one file per URL, with its size, and nothing else
/// (no `-1` twin, no part file).
fn assert_each_saved_once(output: &Path, count: usize, size: usize) {
    let files = files_in(output);
    let expected: BTreeSet<String> = (0..count).map(|number| format!("q{number}.bin")).collect();
    assert_eq!(files.into_iter().collect::<BTreeSet<_>>(), expected);
    for name in &expected {
        assert_eq!(
            std::fs::metadata(output.join(name)).unwrap().len(),
            size as u64
        );
    }
}

fn urls(base: &str, count: usize, size: usize, delay_ms: u64) -> Vec<String> {
    (0..count)
        .map(|number| format!("{base}/files/q{number}.bin?size={size}&delay_ms={delay_ms}"))
        .collect()
}

/// The results stream's entries: (status, worker) counts.
fn results(redis: &RedisServer) -> BTreeMap<(String, String), u64> {
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg("grab:test:results")
        .arg("-")
        .arg("+")
        .query(&mut redis.connection())
        .unwrap();
    let mut counts = BTreeMap::new();
    for entry in reply.ids {
        let status: String = entry.get("status").unwrap();
        let worker: String = entry.get("worker").unwrap();
        *counts.entry((status, worker)).or_insert(0) += 1;
    }
    counts
}

/// Of the results stream's entries, how many have `status`.
fn with_status(results: &BTreeMap<(String, String), u64>, status: &str) -> u64 {
    results
        .iter()
        .filter(|((found, _), _)| found == status)
        .map(|(_, count)| *count)
        .sum()
}

/// Waits until the workers have put `count` entries in the output folder.
/// Waits until `count` jobs' files are saved. Only finished `.bin` files
/// count: the worker's lock and manifest appear before it has read a job.
fn wait_for_files(output: &Path, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let saved = || {
        std::fs::read_dir(output).map_or(0, |entries| {
            entries
                .flatten()
                .filter(|entry| entry.file_name().to_string_lossy().ends_with(".bin"))
                .count()
        })
    };
    while saved() < count {
        assert!(Instant::now() < deadline, "the workers saved nothing");
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn two_workers_drain_a_queue_each_url_saved_once() {
    let scratch = Scratch::new();
    let redis = RedisServer::start(scratch.root.path(), false);
    let server = gallery();
    let list = urls(&server.base_url(), 500, 64, 2);
    let pushed = push(&redis, &scratch, &list);
    assert!(String::from_utf8_lossy(&pushed.stderr).contains("500 new job(s)"));
    // Pushed again: nothing new.
    let again = push(&redis, &scratch, &list);
    assert!(
        stderr_of(&again).contains("0 new job(s) of 500"),
        "{}",
        stderr_of(&again)
    );
    let output = scratch.output();
    let first = start_worker(&redis, &output, &["-s", "threads", "-j", "8"]);
    let second = start_worker(&redis, &output, &["-s", "processes", "-j", "4"]);
    finish(first);
    finish(second);
    assert_each_saved_once(&output, 500, 64);
    let status = status(&redis);
    assert_eq!(
        (
            status["total"].as_u64(),
            status["done"].as_u64(),
            status["pending"].as_u64()
        ),
        (Some(500), Some(500), Some(0)),
        "{status}"
    );
    // The fleet's outcome in one place: 500 saved, shared by both workers.
    let results = results(&redis);
    let saved: Vec<u64> = results
        .iter()
        .filter(|((status, _), _)| status == "saved")
        .map(|(_, count)| *count)
        .collect();
    assert_eq!(saved.iter().sum::<u64>(), 500, "{results:?}");
    assert_eq!(saved.len(), 2, "both workers worked: {results:?}");
}

#[test]
fn a_killed_workers_jobs_are_taken_over_none_lost_none_twice() {
    let scratch = Scratch::new();
    let redis = RedisServer::start(scratch.root.path(), false);
    let server = gallery();
    push(&redis, &scratch, &urls(&server.base_url(), 200, 2000, 20));
    let output = scratch.output();
    let flags = ["-s", "threads", "-j", "4", "--claim-idle", "1"];
    let mut doomed = start_worker(&redis, &output, &flags);
    wait_for_files(&output, 20);
    let survivor = start_worker(&redis, &output, &flags);
    thread::sleep(Duration::from_millis(100));
    doomed.kill().unwrap(); // SIGKILL
    doomed.wait().unwrap();
    let finished = finish(survivor);
    let summary = stderr_of(&finished);
    assert!(count_before(&summary, " taken over") > 0, "{summary}");
    assert_each_saved_once(&output, 200, 2000);
    let status = status(&redis);
    assert_eq!(
        (
            status["done"].as_u64(),
            status["pending"].as_u64(),
            status["dead"].as_u64()
        ),
        (Some(200), Some(0), Some(0)),
        "{status}"
    );
    // The killed worker, once its jobs were taken over, and the survivor,
    // which left holding nothing, are gone from the group.
    assert_eq!(status["consumers"], serde_json::json!([]), "{status}");
}

#[cfg(unix)]
fn signal(child: &Child, signal: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
}

/// The count before `label` in a worker's closing line (`3 taken over`).
fn count_before(stderr: &str, label: &str) -> u64 {
    let summary = stderr
        .lines()
        .find(|line| line.contains(" acknowledged ("))
        .unwrap_or_else(|| panic!("no closing line in {stderr}"));
    summary
        .split(label)
        .next()
        .and_then(|before| before.rsplit(' ').next())
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("no count {label} in {summary}"))
}

#[test]
#[cfg(unix)]
fn a_stopped_worker_hands_back_what_it_never_started() {
    let scratch = Scratch::new();
    let redis = RedisServer::start(scratch.root.path(), false);
    let server = gallery();
    push(&redis, &scratch, &urls(&server.base_url(), 40, 1000, 300));
    let output = scratch.output();
    // Reads 2 jobs per slot ahead, and queues as many: far more than it starts.
    let first = start_worker(
        &redis,
        &output,
        &["-s", "threads", "-j", "2", "--grace", "20"],
    );
    wait_for_files(&output, 3);
    signal(&first, nix::sys::signal::Signal::SIGINT);
    let first = first.wait_with_output().unwrap();
    let summary = stderr_of(&first);
    assert!(
        count_before(&summary, " never started and handed back") > 0,
        "{summary}"
    );
    let after_stop = status(&redis);
    // Nothing is left pending under its name: no --claim-idle to wait out,
    // and it is gone from the group.
    assert_eq!(after_stop["pending"].as_u64(), Some(0), "{after_stop}");
    assert_eq!(
        after_stop["consumers"],
        serde_json::json!([]),
        "{after_stop}"
    );
    let done = after_stop["done"].as_u64().unwrap();
    assert!(done < 40, "{after_stop}");
    assert_eq!(
        after_stop["waiting"].as_u64(),
        Some(40 - done),
        "{after_stop}"
    );
    // The next worker (waiting 60 s before taking over a silent worker's
    // jobs) reads every one at once: none is taken over.
    let second = finish(start_worker(&redis, &output, &["-s", "async", "-j", "8"]));
    assert_eq!(
        count_before(&stderr_of(&second), " taken over"),
        0,
        "{}",
        stderr_of(&second)
    );
    assert_each_saved_once(&output, 40, 1000);
    let status = status(&redis);
    assert_eq!(
        (
            status["done"].as_u64(),
            status["pending"].as_u64(),
            status["dead"].as_u64()
        ),
        (Some(40), Some(0), Some(0)),
        "{status}"
    );
}

#[test]
#[cfg(unix)]
fn a_waiting_worker_says_whose_jobs_it_waits_for() {
    let scratch = Scratch::new();
    let redis = RedisServer::start(scratch.root.path(), false);
    let server = gallery();
    push(&redis, &scratch, &urls(&server.base_url(), 8, 1000, 200));
    let output = scratch.output();
    let flags = ["-s", "threads", "-j", "2", "--claim-idle", "2"];
    let mut silent = start_worker(&redis, &output, &flags);
    wait_for_files(&output, 2);
    // Stopped, not dead: it holds its jobs and says nothing.
    signal(&silent, nix::sys::signal::Signal::SIGSTOP);
    let held: u64 = status(&redis)["pending"].as_u64().unwrap();
    assert!(held > 0);
    let waiting = finish(start_worker(&redis, &output, &flags));
    silent.kill().unwrap();
    silent.wait().unwrap();
    let said = stderr_of(&waiting);
    assert!(said.contains("nothing to read; waiting for"), "{said}");
    assert!(said.contains("--claim-idle"), "{said}");
    assert!(count_before(&said, " taken over") > 0, "{said}");
    // The killed worker's shared lock stays behind: it died holding it.
    let _ = std::fs::remove_file(output.join(".grab-lock"));
    assert_each_saved_once(&output, 8, 1000);
    let status = status(&redis);
    assert_eq!(status["pending"].as_u64(), Some(0), "{status}");
    assert_eq!(status["consumers"], serde_json::json!([]), "{status}");
}

#[test]
fn a_queue_no_push_made_is_an_error_naming_those_that_exist() {
    let scratch = Scratch::new();
    let redis = RedisServer::start(scratch.root.path(), false);
    let server = gallery();
    push(&redis, &scratch, &urls(&server.base_url(), 2, 10, 0));
    for command in ["work", "status"] {
        let output = grab(
            &[
                "queue",
                command,
                "--redis",
                &redis.address(),
                "--queue",
                "typo",
            ],
            None,
        );
        assert_eq!(output.status.code(), Some(2), "{}", stderr_of(&output));
        let said = stderr_of(&output);
        assert!(
            said.contains("no queue named \"typo\"") && said.contains("the queues there are test"),
            "{said}"
        );
    }
    // Nothing was made under the wrong name.
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("grab:typo:*")
        .query(&mut redis.connection())
        .unwrap();
    assert!(keys.is_empty(), "{keys:?}");
    // Its help lists only what applies to a worker.
    let help = grab(&["queue", "work", "--help"], None);
    let help = String::from_utf8_lossy(&help.stdout);
    for refused in [
        "[URLS]",
        "--input",
        "--output-document",
        "--shard",
        "--filter",
        "--force-directories",
        "--spread",
    ] {
        assert!(!help.contains(refused), "{refused} in {help}");
    }
    for applies in [
        "--claim-idle",
        "--strategy",
        "--jobs",
        "--output-dir",
        "--retries",
    ] {
        assert!(help.contains(applies), "{applies} not in {help}");
    }
}

#[test]
fn redis_errors_are_one_line_with_the_address_form() {
    let no_scheme = grab(&["queue", "status", "--redis", "127.0.0.1:6379"], None);
    assert_eq!(
        no_scheme.status.code(),
        Some(2),
        "{}",
        stderr_of(&no_scheme)
    );
    assert_eq!(
        stderr_of(&no_scheme).trim_end(),
        "grab: --redis 127.0.0.1:6379: not a Redis address (no scheme): give it as redis://HOST:PORT/DB, such as redis://127.0.0.1:6379/0"
    );
    let server = gallery();
    let http = server.base_url().replace("http://", "redis://");
    let not_redis = grab(&["queue", "status", "--redis", &http], None);
    assert_eq!(
        not_redis.status.code(),
        Some(2),
        "{}",
        stderr_of(&not_redis)
    );
    let said = stderr_of(&not_redis);
    assert_eq!(said.trim_end().lines().count(), 1, "{said}");
    assert!(
        said.contains("is not a Redis server") && said.contains("redis://HOST:PORT/DB"),
        "{said}"
    );

    // A Redis restarted without persistence has lost the queue.
    let scratch = Scratch::new();
    let mut redis = RedisServer::start(scratch.root.path(), false);
    push(&redis, &scratch, &urls(&server.base_url(), 100, 100, 50));
    let output = scratch.output();
    let worker = start_worker(&redis, &output, &["-s", "threads", "-j", "2"]);
    wait_for_files(&output, 4);
    redis.restart();
    let stopped = worker.wait_with_output().unwrap();
    let said = stderr_of(&stopped);
    assert_eq!(stopped.status.code(), Some(1), "{said}");
    assert!(
        said.contains(&format!(
            "the queue's jobs are gone from Redis at {}",
            redis.address()
        )),
        "{said}"
    );
    assert!(!said.contains("NOGROUP"), "{said}");
}

#[test]
fn a_dataset_workers_summary_covers_its_whole_run() {
    let scratch = Scratch::new();
    let redis = RedisServer::start(scratch.root.path(), false);
    let server = gallery();
    let base = server.base_url();
    let table: String = (0..23)
        .map(|number| format!("{base}/images/w{number}.jpg?w=12&h=12\n"))
        .collect();
    let table = scratch.write("table.txt", &table);
    let pushed = queue(
        &redis,
        &["push", "--dataset", &table, "--samples-per-shard", "5"],
    );
    assert_eq!(pushed.status.code(), Some(0), "{}", stderr_of(&pushed));
    let output = scratch.output();
    let worker = grab_command()
        .args([
            "queue",
            "dataset",
            "--redis",
            &redis.address(),
            "--queue",
            "test",
        ])
        .args([
            "-o",
            output.to_str().unwrap(),
            "--image-size",
            "8",
            "--json",
            "-q",
        ])
        .args(["--progress", "none"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let finished = finish(worker);
    let stats: serde_json::Value = serde_json::from_slice(&finished.stdout).unwrap();
    assert_eq!(
        (
            stats["shards_written"].as_u64(),
            stats["samples_fetched"].as_u64(),
            stats["count"].as_u64(),
            stats["shards"].as_u64()
        ),
        (Some(5), Some(23), Some(23), Some(5)),
        "{stats}"
    );
}

#[test]
fn a_url_that_always_fails_goes_to_the_dead_letter_stream() {
    let scratch = Scratch::new();
    let redis = RedisServer::start(scratch.root.path(), false);
    let server = gallery();
    let mut list = urls(&server.base_url(), 5, 10, 0);
    // Nothing listens on port 1.
    list.push("http://127.0.0.1:1/never.bin".to_string());
    push(&redis, &scratch, &list);
    let output = scratch.output();
    let worker = start_worker(
        &redis,
        &output,
        &[
            "--claim-idle",
            "0.2",
            "--max-deliveries",
            "3",
            "--retries",
            "0",
        ],
    );
    finish(worker);
    assert_each_saved_once(&output, 5, 10);
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg("grab:test:dead")
        .arg("-")
        .arg("+")
        .query(&mut redis.connection())
        .unwrap();
    assert_eq!(reply.ids.len(), 1);
    let dead = &reply.ids[0];
    assert_eq!(
        dead.get::<String>("url").as_deref(),
        Some("http://127.0.0.1:1/never.bin")
    );
    assert_eq!(dead.get::<u64>("deliveries"), Some(4));
    let error: String = dead.get("error").unwrap();
    assert!(error.contains("refused"), "{error}");
    let status = status(&redis);
    assert_eq!(
        (
            status["done"].as_u64(),
            status["dead"].as_u64(),
            status["pending"].as_u64()
        ),
        (Some(5), Some(1), Some(0)),
        "{status}"
    );
    assert_eq!(
        with_status(&results(&redis), "failed"),
        3,
        "one failed attempt per delivery"
    );
}

#[test]
fn workers_reconnect_after_redis_restarts() {
    let scratch = Scratch::new();
    let mut redis = RedisServer::start(scratch.root.path(), true);
    let server = gallery();
    push(&redis, &scratch, &urls(&server.base_url(), 150, 500, 20));
    let output = scratch.output();
    let flags = ["-s", "async", "-j", "4", "--claim-idle", "2"];
    let first = start_worker(&redis, &output, &flags);
    let second = start_worker(&redis, &output, &flags);
    wait_for_files(&output, 30);
    redis.restart();
    let first = finish(first);
    finish(second);
    assert!(
        stderr_of(&first).contains("lost Redis"),
        "{}",
        stderr_of(&first)
    );
    assert_each_saved_once(&output, 150, 500);
    let status = status(&redis);
    assert_eq!(
        (status["done"].as_u64(), status["pending"].as_u64()),
        (Some(150), Some(0)),
        "{status}"
    );
}

#[test]
fn a_wrong_address_or_a_server_that_is_not_redis_is_a_clear_error() {
    let closed = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let nobody = format!("redis://127.0.0.1:{port}/0");
    let output = grab(&["queue", "status", "--redis", &nobody], None);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr_of(&output).contains(&format!("cannot connect to Redis at {nobody}")),
        "{}",
        stderr_of(&output)
    );
    let server = gallery();
    let http = server.base_url().replace("http://", "redis://");
    let output = grab(&["queue", "status", "--redis", &http], None);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr_of(&output).contains("is not a Redis server"),
        "{}",
        stderr_of(&output)
    );
}

/// The shards' bytes, without grab's dot-files (workers leave the shared
/// lock file and work folder behind).
fn dataset_files(output: &Path) -> Vec<(String, Vec<u8>)> {
    super::dataset::shard_bytes(output)
        .into_iter()
        .filter(|(name, _)| !name.starts_with('.'))
        .collect()
}

#[test]
fn two_dataset_workers_build_the_shards_of_one_whole_run() {
    let scratch = Scratch::new();
    let redis = RedisServer::start(scratch.root.path(), false);
    let server = gallery();
    let base = server.base_url();
    // 23 rows, one failing: 5 shards of 5 (the last of 3).
    let table: String = (0..23)
        .map(|number| match number {
            7 => format!("{base}/missing/{number}.jpg\n"),
            _ => format!("{base}/images/d{number}.jpg?w={}&h=12\n", 8 + number),
        })
        .collect();
    let table = scratch.write("table.txt", &table);
    let build = [
        "--output-format",
        "webdataset",
        "--image-size",
        "16",
        "--progress",
        "none",
        "-q",
    ];
    let single = scratch.root.path().join("single");
    let mut arguments = vec![
        "dataset",
        &table,
        "-o",
        single.to_str().unwrap(),
        "--samples-per-shard",
        "5",
    ];
    arguments.extend(build);
    let run = grab(&arguments, None);
    assert!(run.status.success(), "{}", stderr_of(&run));

    let push = |expected_new: u64| {
        let pushed = queue(
            &redis,
            &[
                "push",
                "--dataset",
                &table,
                "--samples-per-shard",
                "5",
                "--json",
            ],
        );
        assert_eq!(pushed.status.code(), Some(0), "{}", stderr_of(&pushed));
        let counts: serde_json::Value = serde_json::from_slice(&pushed.stdout).unwrap();
        assert_eq!(
            (
                counts["read"].as_u64(),
                counts["new"].as_u64(),
                counts["rows"].as_u64()
            ),
            (Some(5), Some(expected_new), Some(23)),
            "{counts}"
        );
    };
    push(5);
    push(0);
    let output = scratch.output();
    let start = |strategy: &str| {
        grab_command()
            .args([
                "queue",
                "dataset",
                "--redis",
                &redis.address(),
                "--queue",
                "test",
            ])
            .args(["-o", output.to_str().unwrap(), "-s", strategy, "-j", "4"])
            .args(build)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let first = start("threads");
    let second = start("async");
    finish(first);
    finish(second);

    let expected = dataset_files(&single);
    let names: Vec<&str> = expected.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names.len(),
        10,
        "a tar and a parquet file per shard: {names:?}"
    );
    assert_eq!(dataset_files(&output), expected);
    let stats = |folder: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(folder.join("stats.json")).unwrap()).unwrap()
    };
    let (whole, fleet) = (stats(&single), stats(&output));
    for field in ["count", "successes", "failed_to_download", "shards"] {
        assert_eq!(whole[field], fleet[field], "{field}: {whole} {fleet}");
    }
    assert_eq!(
        (fleet["count"].as_u64(), fleet["successes"].as_u64()),
        (Some(23), Some(22))
    );
    let status = status(&redis);
    assert_eq!(
        (
            status["total"].as_u64(),
            status["done"].as_u64(),
            status["pending"].as_u64()
        ),
        (Some(5), Some(5), Some(0)),
        "{status}"
    );
    assert_eq!(with_status(&results(&redis), "saved"), 5);

    // A URL worker refuses a queue of shards.
    let wrong = start_worker(&redis, &scratch.root.path().join("urls"), &[]);
    let wrong = wrong.wait_with_output().unwrap();
    assert_eq!(wrong.status.code(), Some(1));
    assert!(
        stderr_of(&wrong).contains("holds dataset jobs"),
        "{}",
        stderr_of(&wrong)
    );
}
