//! Where a file comes from and what it is checked and dated by, for every
//! strategy: aria2's TAB-separated mirrors (tried in order when a source
//! fails, the name always the first URL's),
//! `--checksum` and aria2's `checksum=` lines (a file whose digest matches is
//! saved, one that does not fails and leaves nothing under its name, nor a
//! part to resume), and the server's Last-Modified as its time, as wget.

use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};

use super::faults::{FaultServer, body_of};
use super::support::{Scratch, files_under, for_each_strategy, gallery, grab, stderr_of};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The file the gallery serves at `/files/NAME?size=SIZE`, fetched once
/// without a checksum to learn its bytes.
fn served(base: &str, name: &str, size: usize) -> Vec<u8> {
    let scratch = Scratch::new();
    let url = format!("{base}/files/{name}?size={size}");
    let output = grab(&["get", &url, "-o", &scratch.output_arg()], None);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    std::fs::read(scratch.output().join(name)).unwrap()
}

fn a_checksum_decides_whether_a_file_is_kept(strategy: &str) {
    let server = gallery();
    let base = server.base_url();
    let body = served(&base, "c.bin", 300_000);
    let url = format!("{base}/files/c.bin?size=300000");
    let run = |checksum: &str| {
        let scratch = Scratch::new();
        let output_dir = scratch.output_arg();
        let output = grab(
            &[
                "get",
                "-s",
                strategy,
                "-o",
                &output_dir,
                "--checksum",
                checksum,
                &url,
            ],
            None,
        );
        (output, scratch)
    };
    let right = format!("sha-256={}", hex(&Sha256::digest(&body)));
    let (output, scratch) = run(&right);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert_eq!(std::fs::read(scratch.output().join("c.bin")).unwrap(), body);

    let wrong = format!("sha-256={}", hex(&Sha256::digest(b"something else")));
    let (output, scratch) = run(&wrong);
    assert_eq!(output.status.code(), Some(1), "{}", stderr_of(&output));
    assert!(
        stderr_of(&output).contains("sha-256 checksum mismatch"),
        "{}",
        stderr_of(&output)
    );
    let left: Vec<String> = files_under(&scratch.output())
        .into_iter()
        .filter(|name| !name.starts_with('.'))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

fn checksum_lines_under_urls_check_each_algorithm(strategy: &str) {
    let server = gallery();
    let base = server.base_url();
    let files = [
        ("m.bin", 1_000),
        ("s1.bin", 70_000),
        ("s5.bin", 5),
        ("bad.bin", 2_000),
    ];
    let bodies: Vec<Vec<u8>> = files
        .iter()
        .map(|(name, size)| served(&base, name, *size))
        .collect();
    let lines = [
        format!("md5={}", hex(&Md5::digest(&bodies[0]))),
        format!("sha-1={}", hex(&Sha1::digest(&bodies[1]))),
        format!("sha-512={}", hex(&Sha512::digest(&bodies[2]))),
        // The right digest of another file: bad.bin must fail.
        format!("md5={}", hex(&Md5::digest(&bodies[0]))),
    ];
    let list: String = files
        .iter()
        .zip(&lines)
        .map(|((name, size), line)| format!("{base}/files/{name}?size={size}\n  checksum={line}\n"))
        .collect();
    let scratch = Scratch::new();
    let list_path = scratch.write("list.txt", &list);
    let output = grab(
        &[
            "get",
            "-s",
            strategy,
            "-o",
            &scratch.output_arg(),
            "-i",
            &list_path,
        ],
        None,
    );
    assert_eq!(output.status.code(), Some(1), "{}", stderr_of(&output));
    for ((name, _), body) in files.iter().zip(&bodies).take(3) {
        assert_eq!(
            &std::fs::read(scratch.output().join(name)).unwrap(),
            body,
            "{name}"
        );
    }
    assert!(!scratch.output().join("bad.bin").exists());
    assert!(stderr_of(&output).contains("md5 checksum mismatch"));
}

fn files_take_the_servers_time_unless_told_not_to(strategy: &str) {
    let server = gallery();
    let url = format!("{}/files/t.bin?size=100000", server.base_url());
    let served = httpdate::parse_http_date(grab::server::LAST_MODIFIED).unwrap();
    for (flags, server_time) in [
        (&[][..], true),
        (&["--no-use-server-timestamps"][..], false),
    ] {
        let scratch = Scratch::new();
        let output_dir = scratch.output_arg();
        let mut arguments = vec!["get", "-s", strategy, "-o", &output_dir, &url];
        arguments.extend_from_slice(flags);
        let output = grab(&arguments, None);
        assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
        let modified = std::fs::metadata(scratch.output().join("t.bin"))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(modified == served, server_time, "{flags:?}");
    }
}

fn a_mirror_serves_what_a_dead_first_url_cannot(strategy: &str) {
    let server = gallery();
    let base = server.base_url();
    let body = served(&base, "m2.bin", 4_000);
    // Port 9 (discard) refuses; the gallery answers 404 for an unknown route.
    let list = format!(
        "http://127.0.0.1:9/files/first.bin\t{base}/files/m2.bin?size=4000\n\
         {base}/nothing/here.bin\t{base}/files/m2.bin?size=4000\tnamed.bin\n"
    );
    let scratch = Scratch::new();
    let list_path = scratch.write("list.txt", &list);
    let output = grab(
        &[
            "get",
            "-s",
            strategy,
            "--retries",
            "0",
            "-o",
            &scratch.output_arg(),
            "-i",
            &list_path,
        ],
        None,
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert_eq!(
        std::fs::read(scratch.output().join("first.bin")).unwrap(),
        body
    );
    assert_eq!(
        std::fs::read(scratch.output().join("named.bin")).unwrap(),
        body
    );
}

/// `-N`: a file already complete is asked for again with the validators its
/// copy came with; a 304 keeps it untouched, and once the server's copy
/// changes, the new one replaces it under the same name.
fn timestamping_keeps_what_is_unchanged_and_replaces_what_changed(strategy: &str) {
    let server = FaultServer::start();
    let scratch = Scratch::new();
    let url = server.url("/validated/sync.bin");
    let output_dir = scratch.output_arg();
    let run = |more: &[&str]| {
        let mut arguments = vec!["get", "-s", strategy, "-o", &output_dir, "--json", &url];
        arguments.extend_from_slice(more);
        let output = grab(&arguments, None);
        assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
        serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap()
    };
    let file = scratch.output().join("sync.bin");
    assert_eq!(run(&[])["saved"], 1);
    let unchanged = run(&["-N"]);
    assert_eq!(
        (&unchanged["saved"], &unchanged["skipped"]),
        (&0.into(), &1.into()),
        "{unchanged}"
    );
    assert_eq!(unchanged["bytes"], 0, "a 304 has no body: {unchanged}");
    let asked = server.seen().last().unwrap().headers.clone();
    assert_eq!(
        asked.get("if-none-match").map(String::as_str),
        Some("\"sync.bin-v0\"")
    );
    assert_eq!(
        asked.get("if-modified-since").map(String::as_str),
        Some("Sun, 01 Nov 2026 00:00:00 GMT")
    );
    assert_eq!(std::fs::read(&file).unwrap(), body_of("sync.bin-v0", 5_000));

    server.change_files();
    let changed = run(&["-N"]);
    assert_eq!(changed["saved"], 1, "{changed}");
    assert_eq!(std::fs::read(&file).unwrap(), body_of("sync.bin-v1", 5_000));
    assert_eq!(files_under(&scratch.output()), ["sync.bin"]);
    // The manifest took the new copy's validators: the next -N is a 304 again.
    assert_eq!(run(&["-N"])["skipped"], 1);
    let asked = server.seen().last().unwrap().headers.clone();
    assert_eq!(
        asked.get("if-none-match").map(String::as_str),
        Some("\"sync.bin-v1\"")
    );
}

for_each_strategy!(
    a_mirror_serves_what_a_dead_first_url_cannot,
    timestamping_keeps_what_is_unchanged_and_replaces_what_changed,
    a_checksum_decides_whether_a_file_is_kept,
    checksum_lines_under_urls_check_each_algorithm,
    files_take_the_servers_time_unless_told_not_to,
);

#[test]
fn a_checksum_that_cannot_be_read_is_refused_before_any_download() {
    let scratch = Scratch::new();
    let output = grab(
        &["get", "http://127.0.0.1:9/x", "--checksum", "sha-256=abc"],
        None,
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr_of(&output));
    assert!(stderr_of(&output).contains("64 hex digits"));
    // For one URL only: a list carries its own checksum= lines.
    let list = scratch.write("list.txt", "http://127.0.0.1:9/x\n");
    let digest = "0".repeat(64);
    let output = grab(
        &[
            "get",
            "-i",
            &list,
            "--checksum",
            &format!("sha-256={digest}"),
        ],
        None,
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr_of(&output));
}
