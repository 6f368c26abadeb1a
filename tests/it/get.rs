//! `grab get`, the same cases for every strategy.

use std::fs;
use std::time::{Duration, Instant};

use grab::gallery::{self, Format};

use super::support::{STRATEGIES, Scratch, files_in, gallery as start_gallery, grab, stderr_of};

/// Runs `grab get` with a strategy, an output folder and more arguments.
fn get(
    strategy: &str,
    scratch: &Scratch,
    more: &[&str],
    stdin: Option<&str>,
) -> std::process::Output {
    let output = scratch.output_arg();
    let mut arguments = vec!["get", "-s", strategy, "-j", "4", "-o", &output];
    arguments.extend_from_slice(more);
    grab(&arguments, stdin)
}

fn file_bytes(name: &str, size: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; size];
    gallery::Generator::new(gallery::seed_of(name)).fill(&mut bytes);
    bytes
}

fn batch_saved_byte_identical(strategy: &str) {
    let server = start_gallery();
    let base = server.base_url();
    let scratch = Scratch::new();
    let list = format!(
        "# a comment, then a blank line\n\n{base}/images/a.jpg?w=64&h=48\n{base}/images/b.png?w=33&h=17&delay_ms=20\n\
         {base}/images/c.jpg\n{base}/files/d.bin?size=70000\n{base}/files/blob?size=10\n{base}/files/e.bin?size=0\n"
    );
    let list_path = scratch.write("list.txt", &list);
    let output = get(strategy, &scratch, &["-i", &list_path], None);
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let directory = scratch.output();
    assert_eq!(
        files_in(&directory),
        ["a.jpg", "b.png", "blob.bin", "c.jpg", "d.bin", "e.bin"]
    );
    let read = |name: &str| fs::read(directory.join(name)).unwrap();
    assert_eq!(
        read("a.jpg"),
        gallery::encode("a.jpg", 64, 48, Format::Jpeg).to_vec()
    );
    assert_eq!(
        read("b.png"),
        gallery::encode("b.png", 33, 17, Format::Png).to_vec()
    );
    assert_eq!(
        read("c.jpg"),
        gallery::encode("c.jpg", 640, 480, Format::Jpeg).to_vec()
    );
    assert_eq!(read("d.bin"), file_bytes("d.bin", 70_000));
    // No extension in the URL: it comes from the Content-Type.
    assert_eq!(read("blob.bin"), file_bytes("blob", 10));
    assert_eq!(read("e.bin"), Vec::<u8>::new());
    assert!(stderr.contains("downloaded 6 of 6 files"), "{stderr}");
    assert_eq!(
        stderr
            .lines()
            .filter(|line| line.starts_with("saved "))
            .count(),
        6,
        "{stderr}"
    );
    scratch.assert_no_part_files();
    scratch.assert_nothing_outside(&["list.txt"]);
}

fn name_collision(strategy: &str) {
    let server = start_gallery();
    let base = server.base_url();
    let scratch = Scratch::new();
    fs::create_dir_all(scratch.output()).unwrap();
    fs::write(scratch.output().join("a.png"), b"already here").unwrap();
    let first = format!("{base}/images/a.png?w=10&h=10");
    let second = format!("{base}/images/a.png?w=20&h=20");
    let output = get(strategy, &scratch, &[&first, &second], None);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let directory = scratch.output();
    assert_eq!(files_in(&directory), ["a-1.png", "a-2.png", "a.png"]);
    assert_eq!(fs::read(directory.join("a.png")).unwrap(), b"already here");
    // The file already there is skipped; the rest keep the input's order.
    assert_eq!(
        fs::read(directory.join("a-1.png")).unwrap(),
        gallery::encode("a.png", 10, 10, Format::Png).to_vec()
    );
    assert_eq!(
        fs::read(directory.join("a-2.png")).unwrap(),
        gallery::encode("a.png", 20, 20, Format::Png).to_vec()
    );
}

/// Three URLs of one base name, whose extension comes from the Content-Type: the
/// first answers last, the second first. Names follow the input's order.
fn names_follow_input_order_not_arrival(strategy: &str) {
    let server = start_gallery();
    let base = server.base_url();
    let scratch = Scratch::new();
    let list = format!(
        "{base}/files/blob?size=10&delay_ms=800\n{base}/files/blob?size=20\n{base}/files/blob?size=30&delay_ms=400\n"
    );
    let list_path = scratch.write("list.txt", &list);
    let output = get(strategy, &scratch, &["-i", &list_path], None);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let directory = scratch.output();
    assert_eq!(
        files_in(&directory),
        ["blob-1.bin", "blob-2.bin", "blob.bin"]
    );
    for (name, size) in [("blob.bin", 10), ("blob-1.bin", 20), ("blob-2.bin", 30)] {
        assert_eq!(
            fs::read(directory.join(name)).unwrap(),
            file_bytes("blob", size),
            "{name}"
        );
    }
}

fn not_found_is_not_saved(strategy: &str) {
    let server = start_gallery();
    let base = server.base_url();
    let scratch = Scratch::new();
    let missing = format!("{base}/images/missing.gif");
    let output = get(
        strategy,
        &scratch,
        &[&missing, &format!("{base}/images/ok.png?w=5&h=5")],
        None,
    );
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(files_in(&scratch.output()), ["ok.png"]);
    let failure = stderr
        .lines()
        .find(|line| line.starts_with("failed "))
        .expect("a failure line");
    assert!(
        failure.contains(&missing) && failure.contains("HTTP 404 Not Found"),
        "{failure}"
    );
    assert!(
        stderr.contains("downloaded 1 of 2 files, 1 failed"),
        "{stderr}"
    );
}

fn invalid_line_reported_rest_downloads(strategy: &str) {
    let server = start_gallery();
    let base = server.base_url();
    let scratch = Scratch::new();
    let list = format!(
        "{base}/images/one.png?w=4&h=4\nnot a url at all\nftp://example.com/x.png\n{base}/images/two.png?w=4&h=4\n"
    );
    let list_path = scratch.write("urls.txt", &list);
    let output = get(strategy, &scratch, &["-i", &list_path], None);
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("{list_path}:2: not a valid URL")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{list_path}:3: not an http or https URL")),
        "{stderr}"
    );
    assert_eq!(files_in(&scratch.output()), ["one.png", "two.png"]);
    assert!(stderr.contains("2 invalid input lines"), "{stderr}");
}

fn arguments_file_and_stdin_together(strategy: &str) {
    let server = start_gallery();
    let base = server.base_url();
    let scratch = Scratch::new();
    let list_path = scratch.write(
        "list.txt",
        &format!("{base}/images/from-file.png?w=3&h=3\n{base}/images/dup.png?w=3&h=3\n"),
    );
    let stdin = format!(
        "{base}/images/from-stdin.png?w=3&h=3\tchosen.png\n{base}/images/dup.png?w=3&h=3\n"
    );
    let argument = format!("{base}/images/from-argument.png?w=3&h=3");
    let output = get(
        strategy,
        &scratch,
        &[&argument, "-i", &list_path, "-i", "-"],
        Some(&stdin),
    );
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    // The same URL twice is downloaded once.
    assert_eq!(
        files_in(&scratch.output()),
        [
            "chosen.png",
            "dup.png",
            "from-argument.png",
            "from-file.png"
        ]
    );
    assert!(stderr.contains("1 duplicate URL skipped"), "{stderr}");
}

fn hostile_names_stay_inside(strategy: &str) {
    let server = start_gallery();
    let base = server.base_url();
    let scratch = Scratch::new();
    let urls = [
        format!("{base}/images/..%2F..%2Fescape.png?w=2&h=2"),
        format!("{base}/images/%2e%2e.png?w=2&h=2"),
        format!("{base}/files/..%5C..%5Cwin?size=3"),
    ];
    let list_path = scratch.write(
        "list.txt",
        &format!(
            "{}\n{}\n{}\n{base}/files/x.bin?size=1\t../../named.bin\n",
            urls[0], urls[1], urls[2]
        ),
    );
    let output = get(strategy, &scratch, &["-i", &list_path], None);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let names = files_in(&scratch.output());
    assert_eq!(names.len(), 4, "{names:?}");
    for name in &names {
        assert!(!name.starts_with('.') && !name.contains('/'), "{name}");
    }
    scratch.assert_nothing_outside(&["list.txt"]);
}

/// Generates one test per strategy for each case.
macro_rules! for_each_strategy {
    ($($strategy:ident => $name:literal),* $(,)?) => {$(
        mod $strategy {
            #[test]
            fn batch_saved_byte_identical() { super::batch_saved_byte_identical($name) }
            #[test]
            fn name_collision() { super::name_collision($name) }
            #[test]
            fn names_follow_input_order_not_arrival() { super::names_follow_input_order_not_arrival($name) }
            #[test]
            fn not_found_is_not_saved() { super::not_found_is_not_saved($name) }
            #[test]
            fn invalid_line_reported_rest_downloads() { super::invalid_line_reported_rest_downloads($name) }
            #[test]
            fn arguments_file_and_stdin_together() { super::arguments_file_and_stdin_together($name) }
            #[test]
            fn hostile_names_stay_inside() { super::hostile_names_stay_inside($name) }
        }
    )*};
}

for_each_strategy!(sequential => "sequential", threads => "threads", processes => "processes", asynchronous => "async");

#[test]
fn unreadable_input_is_a_usage_error() {
    let scratch = Scratch::new();
    let output = get("async", &scratch, &["-i", "/nonexistent/list.txt"], None);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr_of(&output).contains("/nonexistent/list.txt"));
    let output = grab(&["get", "--no-such-flag"], None);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn connection_refused_is_reported_with_its_url() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/x.png", listener.local_addr().unwrap());
    drop(listener);
    for strategy in STRATEGIES {
        let scratch = Scratch::new();
        let output = get(strategy, &scratch, &[&url], None);
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(1), "{strategy}: {stderr}");
        assert!(
            stderr.contains(&url) && stderr.contains("connection refused"),
            "{strategy}: {stderr}"
        );
    }
}

#[test]
fn processes_survive_a_worker_killed_mid_job() {
    let server = start_gallery();
    let base = server.base_url();
    let scratch = Scratch::new();
    let list: String = (1..=6)
        .map(|number| format!("{base}/files/slow-{number}.bin?size=1000&delay_ms=1200\n"))
        .collect();
    let list_path = scratch.write("list.txt", &list);
    let output_dir = scratch.output_arg();
    let child = super::support::grab_command()
        .args([
            "get",
            "-s",
            "processes",
            "-j",
            "2",
            "-o",
            &output_dir,
            "-i",
            &list_path,
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until both workers run, give them time to be mid-request, then kill one.
    let deadline = Instant::now() + Duration::from_secs(20);
    let workers = loop {
        let workers = grab::compare::children(child.id());
        if workers.len() == 2 || Instant::now() > deadline {
            break workers;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(workers.len(), 2, "the workers did not start");
    std::thread::sleep(Duration::from_millis(400));
    let killed = std::process::Command::new("kill")
        .args(["-9", &workers[0].to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let output = child.wait_with_output().unwrap();
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(stderr.matches("died during").count(), 1, "{stderr}");
    let names = files_in(&scratch.output());
    assert_eq!(names.len(), 6, "{names:?}");
    for number in 1..=6 {
        let name = format!("slow-{number}.bin");
        assert_eq!(
            fs::read(scratch.output().join(&name)).unwrap(),
            file_bytes(&name, 1000)
        );
    }
    scratch.assert_no_part_files();
}

#[test]
fn a_run_that_cannot_go_on_exits_1_and_a_usage_error_2() {
    let scratch = Scratch::new();
    let file = scratch.write("a-file", "not a folder");
    let inside = format!("{file}/out");
    // The output folder cannot be made: the command line was fine.
    let output = grab(&["get", "-o", &inside, "http://127.0.0.1:9/x"], None);
    assert_eq!(output.status.code(), Some(1), "{}", stderr_of(&output));
    assert!(stderr_of(&output).contains("cannot create output folder"));
    let output = grab(&["filter", "-f", "blur", "-o", &inside, &file], None);
    assert_eq!(output.status.code(), Some(1), "{}", stderr_of(&output));
    // Usage errors stay 2.
    let output = grab(&["get", "-i", &format!("{file}-missing")], None);
    assert_eq!(output.status.code(), Some(2), "{}", stderr_of(&output));
    let output = grab(&["get", "--jobs", "0", "http://127.0.0.1:9/x"], None);
    assert_eq!(output.status.code(), Some(2), "{}", stderr_of(&output));
}

/// Flags as curl and wget users type them: curl's `--retry N` and `-C -`,
/// wget's `-P DIR` work; wget's `-t N` (tries, the first included) gets a
/// hint with the number grab's `--retries` takes; an unknown flag is told
/// where the flags are listed, not only to quote it after `--`.
#[test]
fn curl_and_wget_flags_work_or_are_translated() {
    let server = start_gallery();
    let url = format!("{}/files/a.bin?size=10", server.base_url());
    let scratch = Scratch::new();
    let output_dir = scratch.output_arg();
    let output = grab(
        &["get", "--retry", "0", "-C", "-", "-P", &output_dir, &url],
        None,
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert_eq!(files_in(&scratch.output()), ["a.bin"]);
    let output = grab(&["get", "-t", "3", &url], None);
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("use --retries 2"), "{stderr}");
    let output = grab(&["get", "-Z", &url], None);
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("'grab get --help' lists them"), "{stderr}");
}

/// Errors name the right thing: `-o` on a file says it is a file, `-i` on a
/// folder is a usage error like a missing file, an empty `--accept` prints no
/// empty note, and 50 bad lines print 10 errors and a count of the rest
/// (every one still in `--report`).
#[test]
fn errors_name_the_right_thing_and_bad_lines_do_not_flood() {
    let server = start_gallery();
    let url = format!("{}/files/a.bin?size=10", server.base_url());
    let scratch = Scratch::new();
    let file = scratch.write("afile", "");
    let output = grab(&["get", "-o", &file, &url], None);
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot create output folder {file}: it is a file, not a folder"
        )),
        "{stderr}"
    );
    let folder = scratch.root.path().display().to_string();
    let output = grab(
        &["get", "-o", &scratch.output_arg(), "-i", &folder, &url],
        None,
    );
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot read input file {folder}: it is a folder")),
        "{stderr}"
    );
    assert!(!scratch.output().exists(), "nothing ran");
    let output = grab(
        &["get", "-o", &scratch.output_arg(), "--accept", "", &url],
        None,
    );
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("--accept"), "{stderr}");

    let scratch = Scratch::new();
    let mut list: String = (1..=50)
        .map(|number| format!("bad line {number}\n"))
        .collect();
    list += &format!("{url}\n");
    let list_path = scratch.write("list.txt", &list);
    let report = scratch.root.path().join("report.ndjson");
    let report_arg = report.display().to_string();
    let output = get(
        "async",
        &scratch,
        &["-i", &list_path, "--report", &report_arg],
        None,
    );
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.matches("not a valid URL").count(), 10, "{stderr}");
    assert!(
        stderr.contains(&format!("{list_path}:10: not a valid URL")),
        "{stderr}"
    );
    assert!(
        stderr
            .contains("40 more invalid input lines not shown (the --report file lists every one)"),
        "{stderr}"
    );
    assert!(stderr.contains("50 invalid input lines"), "{stderr}");
    let records: Vec<serde_json::Value> = fs::read_to_string(&report)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let invalid: Vec<&serde_json::Value> = records
        .iter()
        .filter(|record| record["outcome"] == "invalid")
        .collect();
    assert_eq!(invalid.len(), 50);
    assert!(
        invalid[49]["error"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{list_path}:50: not a valid URL")),
        "{:?}",
        invalid[49]
    );
    assert_eq!(records.len(), 51);
    assert_eq!(files_in(&scratch.output()), ["a.bin"]);
}
