//! Names and layout in `grab get`, for every strategy: folder URLs, wget's
//! directory options, the input line rules and `-O`.

use std::fs;
use std::io::Read;
use std::process::Stdio;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use super::faults::{FaultServer, body_of, get};
use super::support::{
    Scratch, files_in, files_under, for_each_strategy, gallery, grab, grab_command, stderr_of,
};

/// A URL ending in `/` is saved as its index: `index.html` for a page, else the
/// Content-Type's extension. Both share the base name `index.html`, so the second
/// in the input is numbered, whichever answers first.
fn folder_urls_are_saved_as_their_index(strategy: &str) {
    let faults = FaultServer::start();
    let server = gallery();
    let scratch = Scratch::new();
    let page = faults.url("/html/");
    let root = format!("{}/", server.base_url());
    let output = get(strategy, &scratch, &[&page, &root]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert_eq!(files_in(&scratch.output()), ["index-1.json", "index.html"]);
    assert_eq!(
        fs::read(scratch.output().join("index.html")).unwrap(),
        b"<html>a page</html>"
    );
}

/// The input's forms: a TAB before a name, spaces inside a URL, aria2's `out=`
/// (and its other options, warned about), and an invalid line quoted whole.
fn input_lines_with_tabs_spaces_and_aria2_options(strategy: &str) {
    let server = gallery();
    let base = server.base_url();
    let scratch = Scratch::new();
    let list = format!(
        "{base}/files/my photo.bin?size=5\n{base}/files/b.bin?size=6\tnamed b.bin\n\
         {base}/files/c.bin?size=7\n  out=from-aria2.bin\n  dir=/elsewhere\n\
         not a url\there\n"
    );
    let list_path = scratch.write("list.txt", &list);
    let output = get(strategy, &scratch, &["-i", &list_path]);
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    // `photo.bin` is not taken as a name: the URL with its space is fetched.
    assert_eq!(
        files_in(&scratch.output()),
        ["from-aria2.bin", "my photo.bin", "named b.bin"]
    );
    assert_eq!(
        fs::read(scratch.output().join("my photo.bin"))
            .unwrap()
            .len(),
        5
    );
    assert_eq!(
        fs::read(scratch.output().join("named b.bin"))
            .unwrap()
            .len(),
        6
    );
    assert!(
        stderr.contains(&format!(
            "{list_path}:5: aria2 option dir=/elsewhere ignored: grab reads only out= and checksum= under a URL"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{list_path}:6: not a valid URL (relative URL without a base): \"not a url\" taken as the URL and \"here\" as the name, from the line \"not a url\\there\""
        )),
        "{stderr}"
    );
}

/// `-O FILE` replaces FILE with the one URL and leaves nothing else beside it;
/// `-O -` writes it to stdout.
fn output_document_to_a_file_or_stdout(strategy: &str) {
    let server = gallery();
    let url = format!("{}/files/doc?size=3000", server.base_url());
    let scratch = Scratch::new();
    let target = scratch.write("chosen.bin", "old contents");
    let output = grab(&["get", "-s", strategy, "-O", &target, &url], None);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let saved = fs::read(&target).unwrap();
    assert_eq!(saved.len(), 3000);
    // The hidden folder it was downloaded in is gone; nothing else was written.
    scratch.assert_nothing_outside(&["chosen.bin"]);
    let output = grab(&["get", "-s", strategy, "-O", "-", &url], None);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert_eq!(output.stdout, saved);
}

/// `-O -` streams: the first half of a body the server then stalls on reaches
/// stdout while the server still holds the rest (a copy made after the download
/// would show nothing for 20 s). A reader that goes away (`| head -c 100`) stops
/// the download at its next write: quietly, with no retry.
#[test]
fn output_to_stdout_streams_and_stops_when_its_reader_goes() {
    let server = FaultServer::start();
    let stalled = server.url("/stall/streamed");
    let mut child = grab_command()
        .args(["get", "-O", "-", &stalled, "--timeout", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (sender, received) = mpsc::channel();
    thread::spawn(move || {
        let mut first = vec![0; 25_000];
        let _ = sender.send(stdout.read_exact(&mut first).map(|_| first));
    });
    let first = received
        .recv_timeout(Duration::from_secs(15))
        .expect("nothing on stdout while the server stalls: the body was not streamed");
    assert_eq!(first.unwrap(), body_of("streamed", 50_000)[..25_000]);
    let _ = child.kill();
    let _ = child.wait();

    // About a second of body at 200 KB/s: the reader takes 100 bytes and goes.
    let slow = server.url("/slow/closed.bin");
    let mut child = grab_command()
        .args(["get", "-O", "-", &slow])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut head = [0; 100];
    stdout.read_exact(&mut head).unwrap();
    drop(stdout);
    let output = child.wait_with_output().unwrap();
    let stderr = stderr_of(&output);
    assert_eq!(head[..], body_of("closed.bin-v0", 200_000)[..100]);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.trim().is_empty(), "not quiet: {stderr}");
    assert_eq!(
        server.hits("/slow/closed.bin"),
        1,
        "retried after the reader went"
    );
}

/// How often the server was asked for anything under `/tree/`.
fn tree_requests(server: &FaultServer) -> usize {
    server
        .seen()
        .iter()
        .filter(|seen| seen.path.starts_with("/tree/"))
        .count()
}

/// `-x` saves under `HOST:PORT` and the URL's folders, numbering a second
/// `c.jpg` beside the first in its own folder only; a re-run skips them all,
/// `--force` fetches them again over the same names; `-nH --cut-dirs 2`
/// leaves out the host and two folders.
fn force_directories_make_host_and_path_folders(strategy: &str) {
    let server = FaultServer::start();
    // The port after a `+`, as wget writes it for Windows, which refuses `:`.
    let host = server.base.trim_start_matches("http://").replace(':', "+");
    let urls = [
        server.url("/tree/a/b/c.jpg"),
        server.url("/tree/a/b/c.jpg?v=2"),
        server.url("/tree/x/c.jpg"),
    ];
    let mut arguments: Vec<&str> = urls.iter().map(String::as_str).collect();
    arguments.push("-x");
    let scratch = Scratch::new();
    let output = get(strategy, &scratch, &arguments);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let expected = [
        format!("{host}/tree/a/b/c-1.jpg"),
        format!("{host}/tree/a/b/c.jpg"),
        format!("{host}/tree/x/c.jpg"),
    ];
    assert_eq!(files_under(&scratch.output()), expected);
    // Names follow input order: the first line has the plain name.
    assert_eq!(
        fs::read(scratch.output().join(&expected[1])).unwrap(),
        body_of(&urls[0].replace(&server.base, ""), 50_000)
    );
    scratch.assert_nothing_outside(&[]);
    let asked = tree_requests(&server);
    let again = get(strategy, &scratch, &arguments);
    let stderr = stderr_of(&again);
    assert_eq!(again.status.code(), Some(0), "{stderr}");
    assert_eq!(
        tree_requests(&server),
        asked,
        "a re-run fetched again: {stderr}"
    );
    assert_eq!(files_under(&scratch.output()), expected);
    arguments.push("--force");
    let forced = get(strategy, &scratch, &arguments);
    assert_eq!(forced.status.code(), Some(0), "{}", stderr_of(&forced));
    assert_eq!(tree_requests(&server), asked + 3);
    assert_eq!(files_under(&scratch.output()), expected);

    let cut = Scratch::new();
    arguments.pop();
    arguments.extend(["-nH", "--cut-dirs", "2"]);
    let output = get(strategy, &cut, &arguments);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert_eq!(
        files_under(&cut.output()),
        ["b/c-1.jpg", "b/c.jpg", "c.jpg"]
    );
}

/// Folders from hostile URL paths are sanitised like file names: climbing
/// segments are resolved or become characters, `%2f` never separates, control
/// characters are replaced; everything lands inside -o. A symbolic link
/// planted in -o where a folder goes is refused, not followed.
fn hostile_paths_stay_inside_the_output_folder(strategy: &str) {
    let server = FaultServer::start();
    let scratch = Scratch::new();
    let urls = [
        server.url("/tree/a/%2e%2e/b/c.jpg"),
        server.url("/tree/..%2f..%2fetc/passwd"),
        server.url("/tree/%2e%2e%2f%2e%2e%2fx/y.jpg"),
        server.url("/tree/%00%0a/./z.jpg"),
        server.url("/tree/a/..%5c..%5cw/v.jpg"),
    ];
    let mut arguments: Vec<&str> = urls.iter().map(String::as_str).collect();
    arguments.push("-x");
    arguments.push("-nH");
    let output = get(strategy, &scratch, &arguments);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert_eq!(
        files_under(&scratch.output()),
        [
            "tree/_.._etc/passwd.bin",
            "tree/_.._x/y.jpg",
            "tree/__/z.jpg",
            "tree/a/_.._w/v.jpg",
            "tree/b/c.jpg",
        ]
    );
    scratch.assert_nothing_outside(&[]);
    // Making a symbolic link takes a privilege on Windows.
    #[cfg(unix)]
    a_planted_link_is_refused(strategy, &arguments);
}

#[cfg(unix)]
fn a_planted_link_is_refused(strategy: &str, arguments: &[&str]) {
    let planted = Scratch::new();
    let elsewhere = planted.root.path().join("elsewhere");
    fs::create_dir_all(&elsewhere).unwrap();
    fs::create_dir_all(planted.output()).unwrap();
    std::os::unix::fs::symlink(&elsewhere, planted.output().join("tree")).unwrap();
    let output = get(strategy, &planted, arguments);
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("not a folder"), "{stderr}");
    assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0);
}

/// `-c` resumes a part left in a subfolder of -x, from where it ends.
fn continue_resumes_a_part_in_a_subfolder(strategy: &str) {
    let server = FaultServer::start();
    // The port after a `+`, as wget writes it for Windows, which refuses `:`.
    let host = server.base.trim_start_matches("http://").replace(':', "+");
    let scratch = Scratch::new();
    let url = server.url("/cut/close/kept");
    let output = get(strategy, &scratch, &[&url, "-x", "--retries", "0"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr_of(&output));
    let part = format!("{host}/cut/close/kept.bin.part");
    assert_eq!(files_under(&scratch.output()), [part.as_str()]);
    assert_eq!(
        fs::metadata(scratch.output().join(&part)).unwrap().len(),
        120_000
    );
    let output = get(strategy, &scratch, &[&url, "-x", "--continue"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let name = format!("{host}/cut/close/kept.bin");
    assert_eq!(files_under(&scratch.output()), [name.as_str()]);
    assert_eq!(
        fs::read(scratch.output().join(&name)).unwrap(),
        body_of("kept", 200_000)
    );
    let last = server.seen().pop().unwrap();
    assert_eq!(last.range.as_deref(), Some("bytes=120000-"));
}

/// `--spread 2` puts each file two hash folders down, a name's numbered
/// alternatives beside it; a re-run finds them all complete.
fn spread_puts_files_in_hash_folders_and_a_rerun_finds_them(strategy: &str) {
    let server = FaultServer::start();
    let scratch = Scratch::new();
    let urls = [
        server.url("/tree/a/c.jpg"),
        server.url("/tree/b/c.jpg"),
        server.url("/tree/d.jpg"),
    ];
    let mut arguments: Vec<&str> = urls.iter().map(String::as_str).collect();
    arguments.extend(["--spread", "2"]);
    let output = get(strategy, &scratch, &arguments);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let files = files_under(&scratch.output());
    assert_eq!(files.len(), 3, "{files:?}");
    let folder_of = |name: &str| {
        let path = files
            .iter()
            .find(|path| path.ends_with(&format!("/{name}")))
            .unwrap_or_else(|| panic!("no {name} in {files:?}"));
        let parts: Vec<&str> = path.split('/').collect();
        assert_eq!(parts.len(), 3, "{path}");
        assert!(
            parts[..2]
                .iter()
                .all(|part| part.len() == 2 && part.chars().all(|c| c.is_ascii_hexdigit())),
            "{path}"
        );
        format!("{}/{}", parts[0], parts[1])
    };
    assert_eq!(folder_of("c.jpg"), folder_of("c-1.jpg"));
    assert_ne!(folder_of("c.jpg"), folder_of("d.jpg"));
    let asked = tree_requests(&server);
    let again = get(strategy, &scratch, &arguments);
    assert_eq!(again.status.code(), Some(0), "{}", stderr_of(&again));
    assert_eq!(tree_requests(&server), asked);
    assert_eq!(files_under(&scratch.output()), files);
}

/// Two thousand URLs sharing a hundred names, one of them a file the folder
/// has already: each gets the alternative its place in the list decides
/// (`f3-7.bin` for the eighth URL wanting `f3.bin`, past `f7.bin` for those
/// wanting it), whichever strategy ran them and in whatever order they
/// finished: the names the planner's ranks give. Each URL's size is its own,
/// so a file's length says which URL it holds.
fn colliding_names_follow_the_list_order(strategy: &str) {
    const COUNT: usize = 2_000;
    const BASES: usize = 100;
    let server = gallery();
    let base = server.base_url();
    let scratch = Scratch::new();
    fs::create_dir_all(scratch.output()).unwrap();
    fs::write(scratch.output().join("f7.bin"), b"old").unwrap();
    let list: String = (0..COUNT)
        .map(|index| format!("{base}/files/f{}.bin?size={}\n", index % BASES, index + 1))
        .collect();
    let list_path = scratch.write("list.txt", &list);
    let output = get(strategy, &scratch, &["-i", &list_path]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let mut expected = vec!["f7.bin".to_string()];
    for index in 0..COUNT {
        let (name, rank) = (index % BASES, index / BASES);
        let number = rank + usize::from(name == 7);
        let file = match number {
            0 => format!("f{name}.bin"),
            number => format!("f{name}-{number}.bin"),
        };
        let length = fs::metadata(scratch.output().join(&file))
            .unwrap_or_else(|error| panic!("{file}: {error}"))
            .len();
        assert_eq!(length, index as u64 + 1, "{file} holds another URL's body");
        expected.push(file);
    }
    expected.sort();
    assert_eq!(files_in(&scratch.output()), expected);
}

for_each_strategy!(
    folder_urls_are_saved_as_their_index,
    input_lines_with_tabs_spaces_and_aria2_options,
    output_document_to_a_file_or_stdout,
    force_directories_make_host_and_path_folders,
    hostile_paths_stay_inside_the_output_folder,
    continue_resumes_a_part_in_a_subfolder,
    spread_puts_files_in_hash_folders_and_a_rerun_finds_them,
    colliding_names_follow_the_list_order
);

#[test]
fn layout_flags_that_do_not_combine_are_usage_errors() {
    for (arguments, expected) in [
        (&["get", "-nH", "http://127.0.0.1:9/a"][..], "add -x"),
        (
            &["get", "--cut-dirs", "1", "http://127.0.0.1:9/a"],
            "add -x",
        ),
        (&["queue", "work", "-x"], "do not apply to queue workers"),
    ] {
        let output = grab(arguments, None);
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(2), "{arguments:?}: {stderr}");
        assert!(stderr.contains(expected), "{arguments:?}: {stderr}");
    }
}

#[test]
fn output_document_takes_one_url_and_dash_o_with_a_file_name_hints_at_it() {
    let output = grab(
        &[
            "get",
            "-O",
            "x.bin",
            "http://127.0.0.1:9/a",
            "http://127.0.0.1:9/b",
        ],
        None,
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr_of(&output).contains("-O saves exactly one URL, 2 given"),
        "{}",
        stderr_of(&output)
    );
    let output = grab(&["get", "-O", "x.bin", "-i", "list.txt"], None);
    assert_eq!(output.status.code(), Some(2), "{}", stderr_of(&output));
    let server = gallery();
    let scratch = Scratch::new();
    let target = scratch.root.path().join("photo.jpg");
    let url = format!("{}/images/cat.jpg?w=8&h=8", server.base_url());
    let output = grab(&["get", "-o", &target.display().to_string(), &url], None);
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "-o names the folder to save into; to save the file as {0}, use -O {0}",
            target.display()
        )),
        "{stderr}"
    );
    // Still a folder, as asked.
    assert!(target.join("cat.jpg").is_file());
}

/// `-O -` puts the file on stdout and `--json` the summary: together they
/// would mix both, so the pair is a usage error that writes nothing there.
#[test]
fn output_document_to_stdout_and_json_summary_are_refused_together() {
    let server = gallery();
    let url = format!("{}/files/doc?size=300", server.base_url());
    let output = grab(&["get", "-O", "-", "--json", &url], None);
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("-O -") && stderr.contains("--json"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());
    // To a file, the summary has stdout to itself.
    let scratch = Scratch::new();
    let target = scratch.root.path().join("doc.bin").display().to_string();
    let output = grab(&["get", "-O", &target, "--json", &url], None);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["saved"], 1);
}

/// A UTF-8 byte-order mark (Notepad's, Excel's) at the start of a list, read
/// with `-i FILE` or from stdin, is not part of the first URL.
#[test]
fn a_byte_order_mark_before_the_first_url_is_ignored() {
    let server = gallery();
    let base = server.base_url();
    let list = format!("\u{FEFF}{base}/files/first.bin?size=5\n{base}/files/second.bin?size=6\n");
    let scratch = Scratch::new();
    let list_path = scratch.write("list.txt", &list);
    let output_dir = scratch.output_arg();
    let output = grab(&["get", "-o", &output_dir, "-i", &list_path], None);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert_eq!(files_in(&scratch.output()), ["first.bin", "second.bin"]);
    let scratch = Scratch::new();
    let output_dir = scratch.output_arg();
    let output = grab(&["get", "-o", &output_dir, "-i", "-"], Some(&list));
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert_eq!(files_in(&scratch.output()), ["first.bin", "second.bin"]);
}

/// `host:port/path` without a scheme is `http://`, as curl and wget take it,
/// as an argument and in a list; an argument that is a file here is a list
/// meant for `-i`, and the error says so.
#[test]
fn a_url_without_a_scheme_is_http_and_a_file_argument_suggests_dash_i() {
    let server = gallery();
    let host = server.base_url().trim_start_matches("http://").to_string();
    let scratch = Scratch::new();
    let list_path = scratch.write("urls.txt", &format!("{host}/files/listed.bin?size=6\n"));
    let output_dir = scratch.output_arg();
    let argument = format!("{host}/files/plain.bin?size=5");
    let output = grab(
        &["get", "-o", &output_dir, &argument, "-i", &list_path],
        None,
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert_eq!(files_in(&scratch.output()), ["listed.bin", "plain.bin"]);
    let output = grab(&["get", "-o", &output_dir, &list_path], None);
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{list_path} is a file, not a URL: to read the URLs in it, use -i {list_path}"
        )),
        "{stderr}"
    );
}
