//! Names and layout in `grab get`, for every strategy: folder URLs, wget's
//! directory options, the input line rules and `-O`.

use std::fs;

use super::faults::{FaultServer, get};
use super::support::{Scratch, files_in, for_each_strategy, gallery, stderr_of};

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

for_each_strategy!(folder_urls_are_saved_as_their_index);
