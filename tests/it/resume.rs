//! A retry resumes, and limits hold however a body is framed (issue 11, items 3
//! and 6), for every strategy, against the fault server: a transfer cut at 60%
//! finishes from where it was cut, a failed attempt keeps what a resume can
//! use, a part that is already whole is finished on a 416, and bodies whose
//! framing disagrees with their Content-Length follow the HTTP rules.

use std::fs;

use super::faults::{FaultServer, assert_clean, body_of, get};
use super::support::{Scratch, files_in, for_each_strategy, grab, stderr_of};

/// The first byte a request asked for with `Range: bytes=N-`, if it asked.
fn range_start(range: Option<&str>) -> Option<u64> {
    range?
        .strip_prefix("bytes=")?
        .strip_suffix('-')?
        .parse()
        .ok()
}

/// The requests the server saw for `path`, in order: (Range start, If-Range).
fn requests_for(server: &FaultServer, path: &str) -> Vec<(Option<u64>, Option<String>)> {
    server
        .seen()
        .into_iter()
        .filter(|seen| seen.path == path)
        .map(|seen| (range_start(seen.range.as_deref()), seen.if_range))
        .collect()
}

fn a_retry_resumes_a_cut_transfer(strategy: &str) {
    let server = FaultServer::start();
    let scratch = Scratch::new();
    let (closed, reset) = (
        server.url("/cut/close/closed"),
        server.url("/cut/reset/reset"),
    );
    let output = get(strategy, &scratch, &[&closed, &reset]);
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    for id in ["closed", "reset"] {
        assert_eq!(
            fs::read(scratch.output().join(format!("{id}.bin"))).unwrap(),
            body_of(id, 200_000),
            "{id}"
        );
    }
    // A clean close after 60%: the retry asks for exactly the rest.
    let requests = requests_for(&server, "/cut/close/closed");
    assert_eq!(
        requests,
        [
            (None, None),
            (Some(120_000), Some("\"closed\"".to_string()))
        ],
        "{stderr}"
    );
    // A reset may lose what was in flight, never more than was sent.
    let requests = requests_for(&server, "/cut/reset/reset");
    assert_eq!(requests.len(), 2, "{requests:?}");
    let start = requests[1].0.expect("the retry asked for a range");
    assert!(start > 0 && start <= 120_000, "resumed from {start}");
    assert_eq!(requests[1].1.as_deref(), Some("\"reset\""));
    assert_eq!(stderr.matches("(2 attempts)").count(), 2, "{stderr}");
    assert_clean(&scratch);
}

fn a_failed_attempt_keeps_its_prefix_for_continue(strategy: &str) {
    let server = FaultServer::start();
    let scratch = Scratch::new();
    let url = server.url("/cut/close/kept");
    let output = get(strategy, &scratch, &[&url, "--retries", "0"]);
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("body cut short"), "{stderr}");
    // Nothing under the final name; the prefix stays as a part.
    assert_eq!(files_in(&scratch.output()), ["kept.bin.part"]);
    let part = scratch.output().join("kept.bin.part");
    assert_eq!(fs::metadata(&part).unwrap().len(), 120_000);
    let reports = tempfile::tempdir().unwrap();
    let report = reports.path().join("report.ndjson");
    let report_arg = report.to_str().unwrap();
    let output = get(
        strategy,
        &scratch,
        &[
            &url,
            "--continue",
            "--json",
            "--report",
            report_arg,
            "--report-format",
            "ndjson",
        ],
    );
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(
        fs::read(scratch.output().join("kept.bin")).unwrap(),
        body_of("kept", 200_000)
    );
    assert_eq!(
        requests_for(&server, "/cut/close/kept").last().unwrap().0,
        Some(120_000)
    );
    // The file says it was resumed, and every figure counts the 80,000 bytes
    // this run fetched, not the 200,000 the file holds.
    assert!(
        stderr.contains("(resumed at 117.2 KiB: 78.1 KiB fetched)"),
        "{stderr}"
    );
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["bytes"], 80_000, "{summary}");
    assert_eq!(summary["resumed"], 1, "{summary}");
    let report = fs::read_to_string(&report).unwrap();
    let record: serde_json::Value = serde_json::from_str(report.lines().next().unwrap()).unwrap();
    assert_eq!(
        (
            &record["bytes"],
            &record["fetched"],
            &record["resumed_from"]
        ),
        (&200_000.into(), &80_000.into(), &120_000.into()),
        "{record}"
    );
    assert_clean(&scratch);
}

fn a_stale_part_without_continue_is_started_over_under_its_name(strategy: &str) {
    let server = FaultServer::start();
    let scratch = Scratch::new();
    let url = server.url("/slow/stale.bin");
    leave_part(&scratch, &url, "stale.bin", &[7; 1_000], "\"stale.bin-v0\"");
    let output = get(strategy, &scratch, &[&url]);
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    // Said when the part is met, before the run's end, naming it and `-c`.
    let said = stderr
        .find("starting over stale.bin.part, an unfinished download from an earlier run")
        .unwrap_or_else(|| panic!("no notice at the start: {stderr}"));
    let ended = stderr.find("downloaded 1 of 1").expect(&stderr);
    assert!(said < ended, "{stderr}");
    assert!(
        stderr
            .contains("started over 1 unfinished .part file from an earlier run: -c (--continue)"),
        "{stderr}"
    );
    // The plain name, whole; no numbered twin and no part left behind.
    let body = fs::read(scratch.output().join("stale.bin")).unwrap();
    assert_ne!(&body[..1_000], &[7; 1_000][..]);
    assert!(!scratch.output().join("stale-1.bin").exists());
    assert_clean(&scratch);
}

fn with_nothing_left_the_summary_says_so(strategy: &str) {
    let server = FaultServer::start();
    let scratch = Scratch::new();
    let urls = [server.url("/slow/one.bin"), server.url("/slow/two.bin")];
    let arguments: Vec<&str> = urls.iter().map(String::as_str).collect();
    let first = get(strategy, &scratch, &arguments);
    assert_eq!(first.status.code(), Some(0), "{}", stderr_of(&first));
    let again = get(strategy, &scratch, &arguments);
    let stderr = stderr_of(&again);
    assert_eq!(again.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("nothing to download: 2 already complete"),
        "{stderr}"
    );
    assert_clean(&scratch);
}

fn without_a_usable_validator_a_retry_starts_over(strategy: &str) {
    let server = FaultServer::start();
    let scratch = Scratch::new();
    // A weak ETag cannot go in If-Range; `Accept-Ranges: none` refuses ranges.
    let (weak, refused) = (
        server.url("/cut/weak/weak"),
        server.url("/cut/none/refused"),
    );
    let output = get(strategy, &scratch, &[&weak, &refused]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    for (id, path) in [("weak", "/cut/weak/weak"), ("refused", "/cut/none/refused")] {
        assert_eq!(
            fs::read(scratch.output().join(format!("{id}.bin"))).unwrap(),
            body_of(id, 200_000),
            "{id}"
        );
        assert_eq!(requests_for(&server, path), [(None, None), (None, None)]);
    }
    assert_clean(&scratch);
}

/// A part in the output folder with a `started` entry in the manifest, as a run
/// killed mid-download leaves them.
fn leave_part(scratch: &Scratch, url: &str, name: &str, bytes: &[u8], etag: &str) {
    fs::create_dir_all(scratch.output()).unwrap();
    fs::write(scratch.output().join(format!("{name}.part")), bytes).unwrap();
    let entry = serde_json::json!({"event": "started", "url": url, "name": name, "etag": etag});
    fs::write(
        scratch.output().join(grab::fs::MANIFEST_NAME),
        format!("{entry}\n"),
    )
    .unwrap();
}

fn a_416_on_a_whole_part_finishes_the_file(strategy: &str) {
    let server = FaultServer::start();
    let scratch = Scratch::new();
    let url = server.url("/slow/whole.bin");
    let body = body_of("whole.bin-v0", 200_000);
    // Killed between the last byte and the rename.
    leave_part(&scratch, &url, "whole.bin", &body, "\"whole.bin-v0\"");
    let output = get(strategy, &scratch, &[&url, "--continue"]);
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(fs::read(scratch.output().join("whole.bin")).unwrap(), body);
    assert_eq!(
        requests_for(&server, "/slow/whole.bin"),
        [(Some(200_000), Some("\"whole.bin-v0\"".to_string()))],
        "one request, answered 416, and the part was whole"
    );
    assert_clean(&scratch);
}

fn a_part_longer_than_the_file_starts_over(strategy: &str) {
    let server = FaultServer::start();
    let scratch = Scratch::new();
    let url = server.url("/slow/longer.bin");
    // The 416 names another size than the part's: the part is not this file.
    leave_part(
        &scratch,
        &url,
        "longer.bin",
        &[7u8; 250_000],
        "\"longer.bin-v0\"",
    );
    let output = get(strategy, &scratch, &[&url, "--continue"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert_eq!(
        fs::read(scratch.output().join("longer.bin")).unwrap(),
        body_of("longer.bin-v0", 200_000)
    );
    assert_eq!(
        requests_for(&server, "/slow/longer.bin"),
        [
            (Some(250_000), Some("\"longer.bin-v0\"".to_string())),
            (None, None)
        ]
    );
    assert_clean(&scratch);
}

fn a_chunked_body_past_max_size_is_cut_and_removed(strategy: &str) {
    let server = FaultServer::start();
    let scratch = Scratch::new();
    let (large, small) = (
        server.url("/chunked/300000/large"),
        server.url("/chunked/50000/small"),
    );
    let output = get(
        strategy,
        &scratch,
        &[&large, &small, "--max-size", "100000"],
    );
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("failed {large}"))
            && stderr.contains("larger than the limit of 100000 bytes"),
        "{stderr}"
    );
    // A limit is final: one request, nothing kept.
    assert_eq!(server.hits("/chunked/300000/large"), 1);
    assert_eq!(files_in(&scratch.output()), ["small.bin"]);
    assert_eq!(
        fs::read(scratch.output().join("small.bin")).unwrap(),
        body_of("small", 50_000)
    );
    assert_clean(&scratch);
}

fn framing_decides_where_a_body_ends(strategy: &str) {
    let server = FaultServer::start();
    let scratch = Scratch::new();
    let (chunked, long) = (
        server.url("/chunked-and-length/both"),
        server.url("/long/long"),
    );
    let output = get(strategy, &scratch, &[&chunked, &long]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    // Chunks win over a Content-Length beside them.
    assert_eq!(
        fs::read(scratch.output().join("both.bin")).unwrap(),
        body_of("both", 5_000)
    );
    // Bytes past the Content-Length are not part of the message.
    assert_eq!(
        fs::read(scratch.output().join("long.bin")).unwrap(),
        body_of("long", 2_000)[..1_000]
    );
    assert_clean(&scratch);
}

/// `-O FILE`: a download cut short leaves FILE as it was, and its part in
/// the hidden folder beside it, where the same command with -c resumes it.
fn a_cut_download_to_a_named_file_leaves_it_and_resumes(strategy: &str) {
    let server = FaultServer::start();
    let scratch = Scratch::new();
    let url = server.url("/cut/close/kept");
    let target = scratch.write("target.bin", "precious");
    let arguments = ["get", "-s", strategy, "-O", &target, "--retries", "0", &url];
    let output = grab(&arguments, None);
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(fs::read_to_string(&target).unwrap(), "precious");
    assert_eq!(
        files_in(scratch.root.path()),
        [".grab-O-target.bin", "target.bin"]
    );
    let output = grab(&[&arguments[..], &["-c"]].concat(), None);
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(fs::read(&target).unwrap(), body_of("kept", 200_000));
    assert_eq!(
        requests_for(&server, "/cut/close/kept").last().unwrap().0,
        Some(120_000)
    );
    assert_eq!(files_in(scratch.root.path()), ["target.bin"]);
}

for_each_strategy!(
    a_cut_download_to_a_named_file_leaves_it_and_resumes,
    a_retry_resumes_a_cut_transfer,
    a_failed_attempt_keeps_its_prefix_for_continue,
    a_stale_part_without_continue_is_started_over_under_its_name,
    with_nothing_left_the_summary_says_so,
    without_a_usable_validator_a_retry_starts_over,
    a_416_on_a_whole_part_finishes_the_file,
    a_part_longer_than_the_file_starts_over,
    a_chunked_body_past_max_size_is_cut_and_removed,
    framing_decides_where_a_body_ends,
);
