//! Live progress, heartbeat, reports and output hygiene of `grab get`, and
//! `grab dataset`'s heartbeat, drawn by the same ticker.

use std::fs;
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use super::faults::FaultServer;
use super::support::{
    STRATEGIES, Scratch, gallery as start_gallery, grab, grab_command, stderr_of,
};

fn get(strategy: &str, scratch: &Scratch, more: &[&str]) -> std::process::Output {
    let output = scratch.output_arg();
    let mut arguments = vec!["get", "-s", strategy, "-o", &output];
    arguments.extend_from_slice(more);
    grab(&arguments, None)
}

#[test]
fn reports_hold_one_record_per_url_in_every_format() {
    let server = start_gallery();
    let base = server.base_url();
    let urls = [
        format!("{base}/files/a.bin?size=1234"),
        format!("{base}/files/b.bin?size=10"),
        format!("{base}/images/missing.gif"),
    ];
    for strategy in STRATEGIES {
        for extension in ["json", "ndjson", "csv"] {
            let scratch = Scratch::new();
            let report = scratch.root.path().join(format!("report.{extension}"));
            let report_arg = report.display().to_string();
            let output = get(
                strategy,
                &scratch,
                &[
                    &urls[0],
                    &urls[1],
                    &urls[2],
                    "-j",
                    "4",
                    "--report",
                    &report_arg,
                ],
            );
            assert_eq!(output.status.code(), Some(1), "{}", stderr_of(&output));
            let text = fs::read_to_string(&report).unwrap();
            // (url, outcome, bytes, worker) per record.
            let mut records: Vec<(String, String, u64, String)> = match extension {
                "csv" => {
                    let mut reader = csv::Reader::from_reader(text.as_bytes());
                    reader
                        .deserialize::<std::collections::HashMap<String, String>>()
                        .map(|row| {
                            let row = row.unwrap();
                            (
                                row["url"].clone(),
                                row["outcome"].clone(),
                                row["bytes"].parse().unwrap(),
                                row["worker"].clone(),
                            )
                        })
                        .collect()
                }
                _ => {
                    let values: Vec<serde_json::Value> = if extension == "json" {
                        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
                        assert_eq!(json["summary"]["saved"], 2, "{text}");
                        assert_eq!(
                            json["summary"]["failures"][0]["reason"],
                            "HTTP 404 Not Found"
                        );
                        json["records"].as_array().unwrap().clone()
                    } else {
                        text.lines()
                            .map(|line| serde_json::from_str(line).unwrap())
                            .collect()
                    };
                    values
                        .iter()
                        .map(|value| {
                            let text =
                                |key: &str| value[key].as_str().unwrap_or_default().to_string();
                            (
                                text("url"),
                                text("outcome"),
                                value["bytes"].as_u64().unwrap(),
                                text("worker"),
                            )
                        })
                        .collect()
                }
            };
            records.sort();
            let outcomes: Vec<(&str, &str, u64)> = records
                .iter()
                .map(|(url, outcome, bytes, _)| (url.as_str(), outcome.as_str(), *bytes))
                .collect();
            assert_eq!(
                outcomes,
                [
                    (urls[0].as_str(), "saved", 1234),
                    (urls[1].as_str(), "saved", 10),
                    (urls[2].as_str(), "failed", 0)
                ],
                "{strategy} {extension}"
            );
            let prefix = match strategy {
                "sequential" => "main",
                "threads" => "thread-",
                "processes" => "process-",
                _ => "task-",
            };
            assert!(
                records.iter().all(|record| record.3.starts_with(prefix)),
                "{strategy}: {records:?}"
            );
        }
    }
}

#[test]
fn ndjson_records_are_written_as_files_finish() {
    let server = FaultServer::start();
    let scratch = Scratch::new();
    let report = scratch.root.path().join("live.ndjson");
    let output_dir = scratch.output_arg();
    let mut child = grab_command()
        .args([
            "get",
            "-s",
            "async",
            "-j",
            "1",
            "-o",
            &output_dir,
            "--report",
        ])
        .arg(&report)
        .args([server.url("/flaky/0/quick"), server.url("/slow/long.bin")])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let lines = fs::read_to_string(&report)
            .unwrap_or_default()
            .lines()
            .count();
        if lines >= 1 {
            break;
        }
        assert!(Instant::now() < deadline, "no record was written");
        thread::sleep(Duration::from_millis(10));
    }
    // The first record is on disk while the second download still runs.
    assert!(
        child.try_wait().unwrap().is_none(),
        "the batch ended before the first record was seen"
    );
    assert!(child.wait().unwrap().success());
    assert_eq!(fs::read_to_string(&report).unwrap().lines().count(), 2);
}

#[test]
fn dataset_runs_beat_too_and_short_ones_do_not() {
    let server = start_gallery();
    let base = server.base_url();
    let scratch = Scratch::new();
    let table = scratch.write(
        "urls.txt",
        &format!("{base}/images/beat-a.jpg?w=64&h=64&delay_ms=600\n{base}/images/beat-b.jpg?w=64&h=64&delay_ms=600\n"),
    );
    let output_folder = scratch.output_arg();
    let arguments = [
        "dataset",
        &table,
        "-o",
        &output_folder,
        "--progress",
        "lines",
        "--heartbeat",
        "0.2",
    ];
    let output = grab(&arguments, None);
    let stderr = stderr_of(&output);
    assert!(output.status.success(), "{stderr}");
    let beats: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains(" samples, ") && line.contains("/s, "))
        .collect();
    assert!(!beats.is_empty(), "no heartbeat in\n{stderr}");
    assert!(
        beats
            .iter()
            .all(|line| line.ends_with("table read") || line.ends_with("rows read")),
        "{beats:?}"
    );

    let quick_table = scratch.write("quick.txt", &format!("{base}/images/quick.jpg?w=64&h=64\n"));
    let quick_output = Scratch::new().output_arg();
    let quick = grab(
        &[
            "dataset",
            &quick_table,
            "-o",
            &quick_output,
            "--progress",
            "lines",
            "--heartbeat",
            "5",
        ],
        None,
    );
    assert!(quick.status.success(), "{}", stderr_of(&quick));
    assert!(
        !stderr_of(&quick).contains(" samples, "),
        "a short run printed a heartbeat: {}",
        stderr_of(&quick)
    );
}

#[test]
fn heartbeat_only_on_runs_longer_than_its_interval() {
    let server = FaultServer::start();
    for strategy in STRATEGIES {
        let scratch = Scratch::new();
        let slow = server.url(&format!("/slow/beat-{strategy}.bin"));
        // stderr is a pipe here: lines, not a bar, by default.
        let output = get(strategy, &scratch, &[&slow, "--heartbeat", "0.2"]);
        let stderr = stderr_of(&output);
        assert!(output.status.success(), "{stderr}");
        let beats: Vec<&str> = stderr
            .lines()
            .filter(|line| line.starts_with('[') && line.contains(" in flight"))
            .collect();
        assert!(!beats.is_empty(), "{strategy}: no heartbeat in\n{stderr}");
        assert!(
            beats.iter().any(|line| line.contains("1 in flight")),
            "{strategy}: {beats:?}"
        );
        // One file of known size in flight and none done: the very first beat
        // has a byte rate and an ETA from bytes.
        assert!(
            !beats[0].contains(" 0 B/s") && beats[0].contains(", ETA "),
            "{strategy}: {beats:?}"
        );
        let quick = get(strategy, &Scratch::new(), &[&server.url("/flaky/0/brief")]);
        assert!(
            !stderr_of(&quick).contains(" in flight"),
            "{strategy}: a short run printed a heartbeat"
        );
    }
}

#[test]
fn quiet_prints_only_failures_and_the_summary() {
    let server = start_gallery();
    let base = server.base_url();
    let scratch = Scratch::new();
    let missing = format!("{base}/images/nothing.gif");
    let output = get(
        "threads",
        &scratch,
        &[
            &format!("{base}/files/a.bin?size=5&delay_ms=400"),
            &missing,
            "-q",
            "--heartbeat",
            "0.1",
        ],
    );
    let stderr = stderr_of(&output);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    assert!(
        lines[0].starts_with("failed ") && lines[0].contains(&missing),
        "{stderr}"
    );
    assert!(
        lines[1].starts_with("downloaded 1 of 2 files, 1 failed"),
        "{stderr}"
    );
    assert!(lines[2].contains("HTTP 404"), "{stderr}");
}

/// Runs grab on a pseudo-terminal (util-linux `script`) and returns what it drew.
pub(crate) fn on_a_terminal(arguments: &str, no_color: bool) -> String {
    let mut command = std::process::Command::new("script");
    command.args([
        "-qec",
        &format!("{} {arguments}", env!("CARGO_BIN_EXE_grab")),
        "/dev/null",
    ]);
    command.env_remove("NO_COLOR");
    if no_color {
        command.env("NO_COLOR", "1");
    }
    let output = command
        .stdin(Stdio::null())
        .output()
        .expect("script(1) from util-linux");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn colours_only_on_a_terminal_and_never_with_no_color() {
    let server = start_gallery();
    let scratch = Scratch::new();
    let url = format!("{}/files/c.bin?size=3", server.base_url());
    let arguments = format!("get --progress none -o {} {url}", scratch.output_arg());
    let coloured = on_a_terminal(&arguments, false);
    assert!(coloured.contains("\x1b[32msaved"), "{coloured:?}");
    fs::remove_dir_all(scratch.output()).unwrap();
    let plain = on_a_terminal(&arguments, true);
    assert!(
        plain.contains("saved") && !plain.contains("\x1b[32m"),
        "{plain:?}"
    );
    // Off a terminal: no colour whatever the environment says.
    fs::remove_dir_all(scratch.output()).unwrap();
    let piped = get("async", &scratch, &[&url]);
    assert!(!stderr_of(&piped).contains('\x1b'));
}

#[test]
fn bar_on_a_terminal_is_cleared_before_the_summary() {
    let server = start_gallery();
    let scratch = Scratch::new();
    let list: String = (1..=6)
        .map(|number| {
            format!(
                "{}/files/t{number}.bin?size=1000&delay_ms=300\n",
                server.base_url()
            )
        })
        .collect();
    let list_path = scratch.write("list.txt", &list);
    let screen = on_a_terminal(
        &format!(
            "get -s threads -j 2 -o {} -i {list_path}",
            scratch.output_arg()
        ),
        true,
    );
    assert!(screen.contains(" files "), "no bar was drawn: {screen:?}");
    // The bar's lines are erased (ESC [2K, with cursor moves between them), and
    // then comes the summary, whole.
    let mut after_bar = screen.rsplit("\x1b[2K").next().unwrap();
    while let Some(rest) = after_bar.strip_prefix("\x1b[") {
        after_bar = rest
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .get(1..)
            .unwrap_or("");
    }
    assert!(
        after_bar.starts_with("downloaded 6 of 6 files"),
        "{screen:?}"
    );
    assert_eq!(after_bar.trim_end().lines().count(), 1, "{screen:?}");
}

#[test]
fn no_torn_lines_when_64_downloads_finish_at_once() {
    let server = start_gallery();
    for strategy in ["threads", "async", "processes"] {
        let scratch = Scratch::new();
        let list: String = (1..=64)
            .map(|number| {
                format!(
                    "{}/files/same-{number}.bin?size=2000&delay_ms=300\n",
                    server.base_url()
                )
            })
            .collect();
        let list_path = scratch.write("list.txt", &list);
        let output = get(
            strategy,
            &scratch,
            &["-j", "64", "-i", &list_path, "--progress", "none"],
        );
        let stderr = stderr_of(&output);
        assert!(output.status.success(), "{stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 65, "{strategy}: {stderr}");
        for line in &lines[..64] {
            let fields: Vec<&str> = line.split("  ").collect();
            assert!(
                fields.len() == 4
                    && fields[0] == "saved"
                    && fields[1].starts_with("same-")
                    && fields[2] == "2.0 KiB"
                    && fields[3].ends_with(" s"),
                "{strategy}: torn line {line:?}"
            );
        }
        assert!(
            lines[64].starts_with("downloaded 64 of 64 files"),
            "{strategy}: {stderr}"
        );
    }
}

/// A list file of `count` URLs of small files that each take `delay_ms`.
fn slow_list(scratch: &Scratch, base: &str, count: usize, delay_ms: u64) -> String {
    let path = scratch.root.path().join("urls.txt");
    let urls: String = (0..count)
        .map(|number| format!("{base}/files/f{number}.bin?size=5&delay_ms={delay_ms}\n"))
        .collect();
    // A comment and a blank line are not URLs and are not counted.
    fs::write(&path, format!("# the list\n\n{urls}")).unwrap();
    path.display().to_string()
}

#[test]
fn the_view_counts_a_list_file_whole_from_the_start_with_rate_and_eta() {
    let server = start_gallery();
    let scratch = Scratch::new();
    let list = slow_list(&scratch, &server.base_url(), 30, 100);
    // One at a time: the reader runs only a queue's length ahead, so a total
    // of 30 in the first heartbeat comes from counting the file ahead.
    let output = get(
        "threads",
        &scratch,
        &["-i", &list, "-j", "1", "--heartbeat", "0.3"],
    );
    let stderr = stderr_of(&output);
    assert!(output.status.success(), "{stderr}");
    let first = stderr
        .lines()
        .find(|line| line.starts_with('[') && line.contains(" in flight"))
        .unwrap_or_else(|| panic!("no heartbeat in\n{stderr}"));
    assert!(first.contains(" of 30 done,"), "{first}");
    assert!(first.contains(" files/s"), "{first}");
    assert!(first.contains(", ETA "), "{first}");
}

#[test]
fn after_ctrl_c_the_summary_accounts_for_every_url_of_the_list() {
    let server = start_gallery();
    let scratch = Scratch::new();
    let list = slow_list(&scratch, &server.base_url(), 30, 150);
    for strategy in STRATEGIES {
        let scratch = Scratch::new();
        let output_dir = scratch.output_arg();
        let child = grab_command()
            .args(["get", "-s", strategy, "-j", "1", "-o", &output_dir])
            .args(["-i", &list, "--grace", "10"])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        thread::sleep(Duration::from_millis(700));
        super::faults::ctrl_c(&child);
        let output = child.wait_with_output().unwrap();
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(130), "{strategy}: {stderr}");
        let summary = stderr
            .lines()
            .find(|line| line.starts_with("downloaded "))
            .unwrap_or_else(|| panic!("{strategy}: no summary in\n{stderr}"));
        // `downloaded K of K files, interrupted: N never started; ...`
        let number_after = |label: &str| -> u64 {
            let start = summary.find(label).unwrap_or_else(|| panic!("{summary}")) + label.len();
            summary[start..]
                .split(|character: char| !character.is_ascii_digit())
                .next()
                .unwrap()
                .parse()
                .unwrap_or_else(|_| panic!("{summary}"))
        };
        let saved = number_after("downloaded ");
        let never_started = number_after("interrupted: ");
        assert!(
            summary.contains(&format!(
                "downloaded {saved} of {saved} files, interrupted: {never_started} never started;"
            )),
            "{strategy}: {summary}"
        );
        assert!((1..30).contains(&saved), "{strategy}: {summary}");
        assert_eq!(saved + never_started, 30, "{strategy}: {summary}");
        assert_eq!(
            fs::read_dir(scratch.output())
                .unwrap()
                .filter(|entry| entry
                    .as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with('f'))
                .count() as u64,
            saved,
            "{strategy}: files on disk"
        );
    }
}
