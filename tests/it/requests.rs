//! The request options of `grab get` (issue 12), for every strategy, against
//! local servers: time and speed limits, headers and the User-Agent, sizes
//! with suffixes, `--accept` extension lists, rate limits.

use std::fs;
use std::time::{Duration, Instant};

use super::faults::{FaultServer, assert_clean, body_of, get};
use super::support::{Scratch, files_in, for_each_strategy, stderr_of};

fn a_trickle_is_cut_by_max_time(strategy: &str) {
    let server = FaultServer::start();
    let scratch = Scratch::new();
    let url = server.url("/trickle/slow");
    // One byte every 200 ms never trips --timeout; --max-time cuts it.
    let output = get(
        strategy,
        &scratch,
        &[&url, "--max-time", "1", "--retries", "0"],
    );
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("failed {url}"))
            && stderr.contains("took longer than --max-time (1 s)"),
        "{stderr}"
    );
    // No validator: nothing a resume could use is kept.
    assert!(files_in(&scratch.output()).is_empty());
    assert_clean(&scratch);
}

fn a_trickle_is_cut_by_speed_limit(strategy: &str) {
    let server = FaultServer::start();
    let scratch = Scratch::new();
    let url = server.url("/trickle/slow");
    let arguments = [
        &url,
        "--speed-limit",
        "1k",
        "--speed-time",
        "1",
        "--retries",
        "1",
    ];
    let output = get(strategy, &scratch, &arguments);
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("slower than --speed-limit (1024 bytes/s) for 1 s"),
        "{stderr}"
    );
    // Retried like a timeout.
    assert_eq!(server.hits("/trickle/slow"), 2);
    assert!(files_in(&scratch.output()).is_empty());
    assert_clean(&scratch);
}

fn a_stalled_body_is_cut_by_speed_time_not_timeout(strategy: &str) {
    let server = FaultServer::start();
    let scratch = Scratch::new();
    // Half the body, then 20 s of silence; --timeout stays at its 30 s.
    let url = server.url("/stall/stalled");
    let arguments = [
        &url,
        "--speed-limit",
        "1k",
        "--speed-time",
        "1",
        "--retries",
        "0",
    ];
    let output = get(strategy, &scratch, &arguments);
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("slower than --speed-limit (1024 bytes/s) for 1 s"),
        "{stderr}"
    );
    assert!(files_in(&scratch.output()).is_empty());
    assert_clean(&scratch);
}

fn headers_and_user_agent_reach_the_server(strategy: &str) {
    let server = FaultServer::start();
    let scratch = Scratch::new();
    let (direct, moved) = (
        server.url("/png/direct.png"),
        server.url("/redirect-host/moved.png"),
    );
    let arguments = [
        &direct,
        &moved,
        "-H",
        "X-Token: abc",
        "-H",
        "Authorization: Bearer secret",
        "-A",
        "tester/2",
    ];
    let output = get(strategy, &scratch, &arguments);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert_eq!(files_in(&scratch.output()), ["direct.png", "moved.png"]);
    let seen = server.seen();
    let on = |path: &str| {
        seen.iter()
            .find(|seen| seen.path == path)
            .unwrap_or_else(|| panic!("no request for {path}: {seen:?}"))
            .headers
            .clone()
    };
    for path in [
        "/png/direct.png",
        "/redirect-host/moved.png",
        "/png/moved.png",
    ] {
        let headers = on(path);
        assert_eq!(
            headers.get("x-token").map(String::as_str),
            Some("abc"),
            "{path}"
        );
        assert_eq!(
            headers.get("user-agent").map(String::as_str),
            Some("tester/2")
        );
    }
    assert_eq!(
        on("/png/direct.png")
            .get("authorization")
            .map(String::as_str),
        Some("Bearer secret")
    );
    // The redirect led to another host name: credentials stay behind, as in curl.
    assert_eq!(on("/png/moved.png").get("authorization"), None);
    // Without -A, grab names itself.
    let again = Scratch::new();
    let output = get(strategy, &again, &[&server.url("/png/plain.png")]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let expected = format!("grab/{}", env!("CARGO_PKG_VERSION"));
    assert_eq!(
        on_last(&server, "/png/plain.png").get("user-agent"),
        Some(&expected)
    );
    assert_clean(&scratch);
}

fn on_last(server: &FaultServer, path: &str) -> std::collections::HashMap<String, String> {
    server
        .seen()
        .into_iter()
        .rev()
        .find(|seen| seen.path == path)
        .expect("a request")
        .headers
}

fn sizes_and_extension_lists(strategy: &str) {
    let server = FaultServer::start();
    let scratch = Scratch::new();
    let (large, small, disguised, image) = (
        server.url("/chunked/300000/large"),
        server.url("/chunked/50000/small"),
        server.url("/html-as-jpeg/photo.jpg"),
        server.url("/png/fine.png"),
    );
    let output = get(
        strategy,
        &scratch,
        &[&large, &small, "--max-size", "100k", "--accept", "bin"],
    );
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("larger than the limit of 102400 bytes"),
        "100k is 102400 bytes, as in curl: {stderr}"
    );
    assert!(
        stderr.contains("note: --accept bin read as application/octet-stream"),
        "{stderr}"
    );
    assert_eq!(
        fs::read(scratch.output().join("small.bin")).unwrap(),
        body_of("small", 50_000)
    );
    let output = get(
        strategy,
        &scratch,
        &[&disguised, &image, "--accept", "jpg,png"],
    );
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("note: --accept jpg,png read as image/jpeg, image/png"),
        "{stderr}"
    );
    assert!(
        stderr.contains("text/html (by its first bytes)"),
        "{stderr}"
    );
    assert_eq!(files_in(&scratch.output()), ["fine.png", "small.bin"]);
    assert_clean(&scratch);
}

/// Lower bounds only: a rate limit can make a run slower, never faster, and
/// how much faster the machine is must not matter.
fn limit_rate_holds_per_transfer_and_in_total(strategy: &str) {
    let server = FaultServer::start();
    let scratch = Scratch::new();
    // 200 KiB at 100 KiB/s: at least 2 s; asked at least 1.5 s.
    let one = server.url("/chunked/204800/one");
    let started = Instant::now();
    let output = get(
        strategy,
        &scratch,
        &[&one, "--limit-rate-per-transfer", "100k"],
    );
    let elapsed = started.elapsed();
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert!(elapsed >= Duration::from_millis(1500), "{elapsed:?}");
    assert_eq!(
        fs::read(scratch.output().join("one.bin")).unwrap(),
        body_of("one", 204_800)
    );
    // Two of 100 KiB at once under a total of 100 KiB/s: at least 2 s again,
    // where a limit per transfer would let them finish in 1 s.
    let (first, second) = (
        server.url("/chunked/102400/first"),
        server.url("/chunked/102400/second"),
    );
    let started = Instant::now();
    let output = get(
        strategy,
        &scratch,
        &[&first, &second, "--limit-rate", "100k"],
    );
    let elapsed = started.elapsed();
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert!(elapsed >= Duration::from_millis(1500), "{elapsed:?}");
    for id in ["first", "second"] {
        assert_eq!(
            fs::read(scratch.output().join(format!("{id}.bin"))).unwrap(),
            body_of(id, 102_400)
        );
    }
    assert_clean(&scratch);
}

/// `--compressed`: gzip and zstd asked for and saved decoded; without the
/// flag nothing is asked and the plain body comes; `--max-size` counts the
/// decoded bytes, so a small compressed body that decodes large is refused.
fn compressed_bodies_are_saved_decoded(strategy: &str) {
    let server = FaultServer::start();
    for encoding in ["gzip", "zstd"] {
        let scratch = Scratch::new();
        let url = server.url(&format!("/encoded/{encoding}/body-{encoding}.bin"));
        let output = get(strategy, &scratch, &[&url, "--compressed"]);
        assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
        let saved = fs::read(scratch.output().join(format!("body-{encoding}.bin"))).unwrap();
        assert!(
            saved == body_of(&format!("body-{encoding}.bin"), 100_000),
            "{encoding}"
        );
        let asked = server.seen().last().unwrap().headers.clone();
        assert_eq!(
            asked.get("accept-encoding").map(String::as_str),
            Some("zstd, br, gzip")
        );
        assert_clean(&scratch);

        let limited = Scratch::new();
        let output = get(
            strategy,
            &limited,
            &[&url, "--compressed", "--max-size", "50k", "--retries", "0"],
        );
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("larger than the limit"), "{stderr}");
        let left = files_in(&limited.output());
        assert!(
            !left.iter().any(|name| name.starts_with("body-")),
            "{left:?}"
        );
    }
    let plain = Scratch::new();
    let output = get(strategy, &plain, &[&server.url("/encoded/gzip/plain.bin")]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let asked = server.seen().last().unwrap().headers.clone();
    assert_eq!(asked.get("accept-encoding"), None);
    assert!(fs::read(plain.output().join("plain.bin")).unwrap() == body_of("plain.bin", 100_000));
}

for_each_strategy!(
    compressed_bodies_are_saved_decoded,
    limit_rate_holds_per_transfer_and_in_total,
    a_trickle_is_cut_by_max_time,
    a_trickle_is_cut_by_speed_limit,
    a_stalled_body_is_cut_by_speed_time_not_timeout,
    headers_and_user_agent_reach_the_server,
    sizes_and_extension_lists,
);

#[test]
fn unknown_extensions_and_bad_sizes_are_usage_errors() {
    let scratch = Scratch::new();
    let output_dir = scratch.output_arg();
    for (arguments, expected) in [
        (&["--accept", "exe"][..], "--accept exe: not a MIME type"),
        (&["--max-size", "10X"], "expected a size such as"),
        (&["-H", "Range: bytes=5-"], "grab sets Range itself"),
    ] {
        let mut line = vec!["get", "-o", &output_dir, "http://127.0.0.1:9/x"];
        line.extend_from_slice(arguments);
        let output = super::support::grab(&line, None);
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(2), "{arguments:?}: {stderr}");
        assert!(stderr.contains(expected), "{stderr}");
    }
    scratch.assert_nothing_outside(&[]);
}
