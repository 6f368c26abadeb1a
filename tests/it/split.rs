//! `--split N` (issue 25, item 1), for every strategy, against a range server
//! written here that logs each request's Range and connection and counts the
//! bodies in flight: a split file is byte-identical and came over several
//! connections at once; a download killed mid-way resumes with `-c` only the
//! ranges its part lacks; a server without ranges gets one plain request; a
//! dead first URL leaves its pieces to the mirror; `--min-split-size` keeps a
//! small file in one request; a file whose pieces complete out of order is
//! hashed right (the manifest's SHA-256, `--checksum`), and a wrong checksum
//! leaves nothing; `--max-time` ends a split download and keeps its part for `-c`.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::support::{Scratch, files_in, for_each_strategy, grab, grab_command, stderr_of};

const MIB: usize = 1024 * 1024;
const ETAG: &str = "\"split-v1\"";

/// A file's bytes that no shift of itself repeats (xorshift).
fn body(size: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// One request the server answered.
#[derive(Debug, Clone)]
struct Seen {
    connection: usize,
    range: Option<String>,
    status: u16,
    /// The first byte of the body sent, and how many were sent.
    start: u64,
    sent: u64,
}

struct Shared {
    body: Vec<u8>,
    ranges: bool,
    /// Says `Accept-Ranges: bytes` but answers every Range with the whole
    /// file (a 200), as some servers do.
    ignores_ranges: AtomicBool,
    /// Each response sends at most this many body bytes, then waits while
    /// `stalled` (0: no limit).
    stall_after: u64,
    stalled: AtomicBool,
    /// A response from byte `hold_from` sends its body only once other
    /// ranged responses have sent `hold_until` bytes (0: at once), so the
    /// pieces after it complete before it.
    hold_from: u64,
    hold_until: u64,
    /// Whether a held response gave up waiting.
    hold_gave_up: AtomicBool,
    seen: Mutex<Vec<Seen>>,
    connections: AtomicUsize,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
}

/// The range server: every path is the one file, with a strong ETag, with
/// or without ranges; bodies go out in 32 KiB writes a millisecond apart, so
/// a download lasts long enough for its connections to overlap.
struct RangeServer {
    shared: Arc<Shared>,
    port: u16,
}

impl RangeServer {
    fn start(body: Vec<u8>, ranges: bool, stall_after: u64) -> RangeServer {
        Self::start_holding(body, ranges, stall_after, (0, 0))
    }

    /// A range server whose responses from byte `hold_from` wait until
    /// ranged ones sent `hold_until` bytes.
    fn start_holding(
        body: Vec<u8>,
        ranges: bool,
        stall_after: u64,
        (hold_from, hold_until): (u64, u64),
    ) -> RangeServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            body,
            ranges,
            ignores_ranges: AtomicBool::new(false),
            stall_after,
            stalled: AtomicBool::new(stall_after > 0),
            hold_from,
            hold_until,
            hold_gave_up: AtomicBool::new(false),
            seen: Mutex::new(Vec::new()),
            connections: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            most_in_flight: AtomicUsize::new(0),
        });
        let accepting = shared.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let shared = accepting.clone();
                let connection = shared.connections.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || serve(&shared, stream, connection));
            }
        });
        RangeServer { shared, port }
    }

    /// A server that offers ranges and ignores every Range asked for.
    fn start_ignoring_ranges(body: Vec<u8>) -> RangeServer {
        let server = Self::start(body, true, 0);
        server.shared.ignores_ranges.store(true, Ordering::SeqCst);
        server
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// Lets stalled responses go on (to find their client gone).
    fn release(&self) {
        self.shared.stalled.store(false, Ordering::SeqCst);
    }
}

/// `bytes=A-B` or `bytes=A-` as (A, B inclusive).
fn parse_range(value: &str, total: u64) -> Option<(u64, u64)> {
    let (start, end) = value.trim().strip_prefix("bytes=")?.split_once('-')?;
    let start: u64 = start.parse().ok()?;
    let end = match end.trim() {
        "" => total - 1,
        end => end.parse::<u64>().ok()?.min(total - 1),
    };
    (start <= end).then_some((start, end))
}

fn serve(shared: &Shared, stream: TcpStream, connection: usize) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let (mut range, mut if_range) = (None, None);
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                match name.trim().to_ascii_lowercase().as_str() {
                    "range" => range = Some(value.trim().to_string()),
                    "if-range" => if_range = Some(value.trim().to_string()),
                    _ => {}
                }
            }
        }
        let total = shared.body.len() as u64;
        let asked = range
            .as_deref()
            .filter(|_| shared.ranges && !shared.ignores_ranges.load(Ordering::SeqCst))
            .filter(|_| if_range.as_deref().is_none_or(|tag| tag == ETAG))
            .and_then(|range| parse_range(range, total));
        let (status, start, end) = match asked {
            Some((start, end)) => (206, start, end),
            None => (200, 0, total - 1),
        };
        let mut head = format!(
            "HTTP/1.1 {status} {}\r\nContent-Type: application/octet-stream\r\n\
             Content-Length: {}\r\nETag: {ETAG}\r\n",
            if status == 206 {
                "Partial Content"
            } else {
                "OK"
            },
            end - start + 1
        );
        if shared.ranges {
            head.push_str("Accept-Ranges: bytes\r\n");
        }
        if status == 206 {
            head.push_str(&format!("Content-Range: bytes {start}-{end}/{total}\r\n"));
        }
        head.push_str("\r\n");
        let index = {
            let mut seen = shared.seen.lock().unwrap();
            seen.push(Seen {
                connection,
                range: range.clone(),
                status,
                start,
                sent: 0,
            });
            seen.len() - 1
        };
        if writer.write_all(head.as_bytes()).is_err() {
            return;
        }
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.most_in_flight.fetch_max(now, Ordering::SeqCst);
        let sent = send_body(shared, &mut writer, start, end + 1, index);
        shared.in_flight.fetch_sub(1, Ordering::SeqCst);
        if !sent {
            return;
        }
    }
}

/// Sends `[start, end)` of the body; false when the client went away.
fn send_body(shared: &Shared, writer: &mut TcpStream, start: u64, end: u64, index: usize) -> bool {
    const CHUNK: u64 = 32 * 1024;
    if start == shared.hold_from && shared.hold_until > 0 {
        let waited = Instant::now();
        while ranged_bytes_sent(shared) < shared.hold_until {
            if waited.elapsed() > Duration::from_secs(20) {
                shared.hold_gave_up.store(true, Ordering::SeqCst);
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let mut position = start;
    while position < end {
        let mut next = (position + CHUNK).min(end);
        if shared.stall_after > 0 {
            let limit = start + shared.stall_after;
            if position >= limit {
                while shared.stalled.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(20));
                }
            } else {
                next = next.min(limit);
            }
        }
        if writer
            .write_all(&shared.body[position as usize..next as usize])
            .is_err()
        {
            return false;
        }
        shared.seen.lock().unwrap()[index].sent += next - position;
        position = next;
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

/// Body bytes sent so far by responses to requests with a Range.
fn ranged_bytes_sent(shared: &Shared) -> u64 {
    let seen = shared.seen.lock().unwrap();
    seen.iter()
        .filter(|seen| seen.range.is_some())
        .map(|seen| seen.sent)
        .sum()
}

/// The SHA-256 the manifest in `folder` records for `name` saved.
fn manifest_sha256(folder: &std::path::Path, name: &str) -> Option<String> {
    let manifest = std::fs::read_to_string(folder.join(grab::fs::MANIFEST_NAME)).unwrap();
    manifest
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter(|entry| entry["event"] == "saved" && entry["name"] == name)
        .filter_map(|entry| entry["sha256"].as_str().map(str::to_string))
        .next_back()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// `grab get -s STRATEGY -o OUT ARGUMENTS...`, waited for.
fn get(strategy: &str, scratch: &Scratch, more: &[&str]) -> std::process::Output {
    let output = scratch.output_arg();
    let mut arguments = vec!["get", "-s", strategy, "-o", &output, "--retry-wait", "0.05"];
    arguments.extend_from_slice(more);
    grab(&arguments, None)
}

/// The files in `scratch`'s output folder but the folder lock, which a killed
/// or failed run leaves for the next to take over.
fn files_but_the_lock(scratch: &Scratch) -> Vec<String> {
    files_in(&scratch.output())
        .into_iter()
        .filter(|name| name != ".grab-lock")
        .collect()
}

/// Four pieces of at least 256 KiB: a 4 MiB file splits four ways.
const FOUR_PIECES: [&str; 4] = ["--split", "4", "--min-split-size", "256k"];

/// [`get`] of `url` in [`FOUR_PIECES`], with `more` options.
fn get_in_four(
    strategy: &str,
    scratch: &Scratch,
    url: &str,
    more: &[&str],
) -> std::process::Output {
    let mut arguments = vec![url];
    arguments.extend_from_slice(&FOUR_PIECES);
    arguments.extend_from_slice(more);
    get(strategy, scratch, &arguments)
}

/// The ranges asked for: requests with a Range header.
fn ranged(seen: &[Seen]) -> Vec<&Seen> {
    seen.iter().filter(|seen| seen.range.is_some()).collect()
}

fn a_split_file_is_whole_and_came_over_several_connections(strategy: &str) {
    let file = body(8 * MIB);
    let server = RangeServer::start(file.clone(), true, 0);
    let scratch = Scratch::new();
    let output = get(
        strategy,
        &scratch,
        &[&server.url("/big.bin"), "--split", "8"],
    );
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        std::fs::read(scratch.output().join("big.bin")).unwrap() == file,
        "byte-identical"
    );
    // Only the file: no part, no record of ranges.
    assert_eq!(files_in(&scratch.output()), ["big.bin"]);
    let seen = server.seen();
    let pieces = ranged(&seen);
    assert!(pieces.len() >= 2, "{seen:?}");
    assert!(pieces.iter().all(|piece| piece.status == 206), "{seen:?}");
    let connections: std::collections::HashSet<usize> =
        seen.iter().map(|seen| seen.connection).collect();
    assert!(connections.len() >= 2, "{seen:?}");
    assert!(
        server.shared.most_in_flight.load(Ordering::SeqCst) >= 2,
        "at least two bodies in flight at once: {seen:?}"
    );
    // The first request asked for the whole file; it taught the validator.
    assert_eq!(seen[0].range, None);
}

fn a_killed_split_download_resumes_only_the_missing_ranges(strategy: &str) {
    let total = 4 * MIB;
    let file = body(total);
    let stall = 128 * 1024;
    let server = RangeServer::start(file.clone(), true, stall);
    let scratch = Scratch::new();
    let url = server.url("/killed.bin");
    let output = scratch.output_arg();
    let mut child = grab_command()
        .args(["get", "-s", strategy, "-o", &output, &url])
        .args(FOUR_PIECES)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Four connections, each stalled after its first 128 KiB.
    let waited = Instant::now();
    loop {
        let seen = server.seen();
        if seen.len() >= 4 && seen.iter().all(|seen| seen.sent == stall) {
            break;
        }
        assert!(
            waited.elapsed() < Duration::from_secs(30),
            "never stalled: {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Long enough for the record of ranges to be saved (every second).
    std::thread::sleep(Duration::from_millis(1500));
    child.kill().unwrap();
    child.wait().unwrap();
    let first_run = server.seen();
    // The killed run's lock stays too; the next run takes it over.
    let names = files_but_the_lock(&scratch);
    assert_eq!(
        names,
        ["killed.bin.part", "killed.bin.part.ranges"],
        "{first_run:?}"
    );
    server.release();

    resumes_whole(strategy, &scratch, &url, "killed.bin", &file);
    let second_run: Vec<Seen> = server.seen()[first_run.len()..].to_vec();
    assert!(!second_run.is_empty());
    // Every request of the second run asked for a range, and none begins
    // inside bytes the first run received.
    for request in &second_run {
        let range = request.range.as_deref().expect("a resume asks for ranges");
        let start = parse_range(range, total as u64).unwrap().0;
        for earlier in &first_run {
            assert!(
                !(earlier.start..earlier.start + earlier.sent).contains(&start),
                "{range} again, after {earlier:?}; second run: {second_run:?}"
            );
        }
    }
    assert_eq!(
        second_run[0].range.as_deref(),
        Some(format!("bytes={stall}-").as_str()),
        "the first request resumes the complete prefix"
    );
}

fn a_server_without_ranges_gets_one_plain_request(strategy: &str) {
    let file = body(4 * MIB);
    let server = RangeServer::start(file.clone(), false, 0);
    let scratch = Scratch::new();
    let output = get(
        strategy,
        &scratch,
        &[&server.url("/plain.bin"), "--split", "8"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert!(std::fs::read(scratch.output().join("plain.bin")).unwrap() == file);
    let seen = server.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].range, None);
}

/// A server that offers ranges but answers them with the whole file: the
/// download falls back to one connection, as aria2's does, and is whole.
fn a_server_that_ignores_ranges_gets_the_file_on_one_connection(strategy: &str) {
    let file = body(4 * MIB);
    let server = RangeServer::start_ignoring_ranges(file.clone());
    let scratch = Scratch::new();
    // No retry is needed for it: the fall-back is the same attempt.
    let output = get_in_four(
        strategy,
        &scratch,
        &server.url("/liar.bin"),
        &["--retries", "0"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert!(std::fs::read(scratch.output().join("liar.bin")).unwrap() == file);
    // The last request was a plain one, read to its end.
    let seen = server.seen();
    let last = seen.last().unwrap();
    assert_eq!(
        (last.range.as_deref(), last.status),
        (None, 200),
        "{seen:?}"
    );
    assert_eq!(files_but_the_lock(&scratch), ["liar.bin"]);
}

fn a_dead_first_url_leaves_its_pieces_to_the_mirror(strategy: &str) {
    let file = body(4 * MIB);
    let server = RangeServer::start(file.clone(), true, 0);
    let scratch = Scratch::new();
    // Port 9 (discard) refuses connections.
    let list = format!(
        "http://127.0.0.1:9/first.bin\t{}\n",
        server.url("/mirror.bin")
    );
    let list_path = scratch.write("list.txt", &list);
    let output = get(
        strategy,
        &scratch,
        &["-i", &list_path, "--split", "4", "--retries", "0"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert!(std::fs::read(scratch.output().join("first.bin")).unwrap() == file);
    assert_eq!(files_in(&scratch.output()), ["first.bin"]);
    let seen = server.seen();
    // Pieces of 1M at least: after the first response's, one or more.
    assert!(
        !ranged(&seen).is_empty(),
        "the mirror served pieces: {seen:?}"
    );
}

fn min_split_size_keeps_a_small_file_in_one_request(strategy: &str) {
    let file = body(MIB + MIB / 2);
    let server = RangeServer::start(file.clone(), true, 0);
    let scratch = Scratch::new();
    // Under twice the default 1M: one request.
    let output = get(
        strategy,
        &scratch,
        &[&server.url("/small.bin"), "--split", "8"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert!(std::fs::read(scratch.output().join("small.bin")).unwrap() == file);
    assert_eq!(server.seen().len(), 1, "{:?}", server.seen());
    // With pieces of 256 KiB allowed, the same file is split.
    let output = get(
        strategy,
        &scratch,
        &[
            &server.url("/smaller-pieces.bin"),
            "--split",
            "8",
            "--min-split-size",
            "256k",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert!(std::fs::read(scratch.output().join("smaller-pieces.bin")).unwrap() == file);
    assert!(ranged(&server.seen()).len() >= 2, "{:?}", server.seen());
}

fn a_file_whose_pieces_complete_out_of_order_is_hashed_right(strategy: &str) {
    use sha2::{Digest, Sha256};
    let total = 4 * MIB;
    let file = body(total);
    // Pieces of 512 KiB, then 256 KiB. The one from 1 MiB holds its body
    // until the pieces after it are in (but the second half of its own, which
    // a free connection takes): the complete prefix reaches 1 MiB and is
    // hashed while later pieces are in and the part has a hole at 1 MiB,
    // then the rest is hashed once the hole is filled.
    let hold = (MIB as u64, (total - MIB) as u64);
    let server = RangeServer::start_holding(file.clone(), true, 0, hold);
    let sha256 = hex(&Sha256::digest(&file));
    let url = server.url("/late.bin");
    // The download in four pieces, checked against `checksum`.
    let fetch = |checksum: &str| {
        let scratch = Scratch::new();
        let output = get_in_four(strategy, &scratch, &url, &["--checksum", checksum]);
        (scratch, output)
    };
    let (scratch, output) = fetch(&format!("sha-256={sha256}"));
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        !server.shared.hold_gave_up.load(Ordering::SeqCst),
        "the other pieces never came: {:?}",
        server.seen()
    );
    assert!(
        std::fs::read(scratch.output().join("late.bin")).unwrap() == file,
        "byte-identical"
    );
    assert_eq!(
        manifest_sha256(&scratch.output(), "late.bin"),
        Some(sha256.clone())
    );
    let seen = server.seen();
    assert!(ranged(&seen).len() >= 4, "{seen:?}");

    // The same download against a wrong digest fails and leaves nothing
    // under its name, nor a part.
    let (scratch, output) = fetch(&format!(
        "sha-256={}",
        hex(&Sha256::digest(b"another file"))
    ));
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("sha-256 checksum mismatch"), "{stderr}");
    let left: Vec<String> = files_in(&scratch.output())
        .into_iter()
        .filter(|name| !name.starts_with('.'))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

fn max_time_ends_a_split_download_and_keeps_its_part(strategy: &str) {
    let total = 4 * MIB;
    let file = body(total);
    // Every response stalls after its first 128 KiB until released.
    let server = RangeServer::start(file.clone(), true, 128 * 1024);
    let scratch = Scratch::new();
    let url = server.url("/timed.bin");
    let began = Instant::now();
    let output = get_in_four(
        strategy,
        &scratch,
        &url,
        &["--max-time", "1", "--retries", "0"],
    );
    let stderr = stderr_of(&output);
    // Not a measure of speed: a download the limit failed to end would
    // wait for the stalled server for ever.
    assert!(began.elapsed() < Duration::from_secs(30), "{stderr}");
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--max-time"), "{stderr}");
    let names = files_but_the_lock(&scratch);
    assert_eq!(
        names,
        ["timed.bin.part", "timed.bin.part.ranges"],
        "{stderr}"
    );
    let first_run = server.seen();
    assert!(ranged(&first_run).len() >= 2, "{first_run:?}");

    server.release();
    resumes_whole(strategy, &scratch, &url, "timed.bin", &file);
}

/// `-c` in [`FOUR_PIECES`] completes `name` in `scratch`: the
/// file byte-identical to `file`, its SHA-256 (the kept prefix's digests
/// carried on from the first response into the pieces') checked by
/// `--checksum` and recorded, and nothing else left beside it.
fn resumes_whole(strategy: &str, scratch: &Scratch, url: &str, name: &str, file: &[u8]) {
    use sha2::{Digest, Sha256};
    let sha256 = hex(&Sha256::digest(file));
    let checksum = format!("sha-256={sha256}");
    let output = get_in_four(strategy, scratch, url, &["-c", "--checksum", &checksum]);
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        std::fs::read(scratch.output().join(name)).unwrap() == file,
        "byte-identical"
    );
    assert_eq!(manifest_sha256(&scratch.output(), name), Some(sha256));
    assert_eq!(files_in(&scratch.output()), [name]);
}

for_each_strategy!(
    a_split_file_is_whole_and_came_over_several_connections,
    a_killed_split_download_resumes_only_the_missing_ranges,
    a_server_without_ranges_gets_one_plain_request,
    a_server_that_ignores_ranges_gets_the_file_on_one_connection,
    a_dead_first_url_leaves_its_pieces_to_the_mirror,
    min_split_size_keeps_a_small_file_in_one_request,
    a_file_whose_pieces_complete_out_of_order_is_hashed_right,
    max_time_ends_a_split_download_and_keeps_its_part,
);
