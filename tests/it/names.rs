//! Names and layout in `grab get`, for every strategy: folder URLs, wget's
//! directory options, the input line rules and `-O`.

use std::fs;

use super::faults::{FaultServer, get};
use super::support::{Scratch, files_in, for_each_strategy, gallery, grab, stderr_of};

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
            "{list_path}:5: aria2 option dir=/elsewhere ignored: grab reads only out= under a URL"
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

for_each_strategy!(
    folder_urls_are_saved_as_their_index,
    input_lines_with_tabs_spaces_and_aria2_options,
    output_document_to_a_file_or_stdout
);

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
