//! Logins (issue 25, item 5), for every strategy, against the fault server:
//! cookies a login redirect sets reach the page behind it, cookie files are
//! loaded and saved in the Netscape format, and `.netrc` credentials go as
//! Basic auth to their host only.

use std::fs;

use super::faults::{FaultServer, body_of, get};
use super::support::{Scratch, files_in, for_each_strategy, stderr_of};

/// The session cookie grab was given: the page opens only with it.
const SESSION: &str = "127.0.0.1\tFALSE\t/members\tFALSE\t0\tsession\topened\n";

fn a_login_redirect_opens_the_page(strategy: &str) {
    let server = FaultServer::start();
    let scratch = Scratch::new();
    // An -H Cookie shares the one Cookie header with the jar's.
    let output = get(
        strategy,
        &scratch,
        &[&server.url("/login/page.bin"), "-H", "Cookie: given=1"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert_eq!(files_in(&scratch.output()), ["page.bin"]);
    assert!(fs::read(scratch.output().join("page.bin")).unwrap() == body_of("page.bin", 50_000));
    let seen = server.seen();
    let page = seen
        .iter()
        .find(|seen| seen.path == "/members/page.bin")
        .unwrap_or_else(|| panic!("no request for the page: {seen:?}"));
    let cookie = page.headers.get("cookie").cloned().unwrap_or_default();
    // Both that match /members go; the one for /other does not.
    assert!(
        cookie.contains("given=1")
            && cookie.contains("session=opened")
            && cookie.contains("remember=yes"),
        "{cookie}"
    );
    assert!(!cookie.contains("elsewhere"), "{cookie}");
    // Without the jar the page is refused: the cookie is what opened it.
    let direct = Scratch::new();
    let output = get(
        strategy,
        &direct,
        &[&server.url("/members/page.bin"), "--retries", "0"],
    );
    assert_eq!(output.status.code(), Some(1), "{}", stderr_of(&output));
}

fn a_cookie_file_is_loaded(strategy: &str) {
    let server = FaultServer::start();
    let scratch = Scratch::new();
    let cookies = scratch.write(
        "cookies.txt",
        &format!("# Netscape HTTP Cookie File\n{SESSION}"),
    );
    let urls: Vec<String> = (0..4)
        .map(|n| server.url(&format!("/members/f{n}.bin")))
        .collect();
    let mut arguments: Vec<&str> = urls.iter().map(String::as_str).collect();
    arguments.extend(["--load-cookies", &cookies, "--retries", "0"]);
    let output = get(strategy, &scratch, &arguments);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert_eq!(
        files_in(&scratch.output()),
        ["f0.bin", "f1.bin", "f2.bin", "f3.bin"]
    );
    scratch.assert_no_part_files();
}

fn a_netrc_entry_goes_to_its_host_only(strategy: &str) {
    let server = FaultServer::start();
    let scratch = Scratch::new();
    // The `default` entry would fit localhost: it must not go there either.
    let netrc = scratch.write(
        "netrc",
        "machine 127.0.0.1\n  login ann\n  password s3cret\ndefault login anonymous password guest\n",
    );
    let (direct, moved) = (
        server.url("/png/direct.png"),
        server.url("/redirect-host/moved.png"),
    );
    let output = get(
        strategy,
        &scratch,
        &[&direct, &moved, "--netrc-file", &netrc],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert_eq!(files_in(&scratch.output()), ["direct.png", "moved.png"]);
    let seen = server.seen();
    let authorization = |path: &str| {
        seen.iter()
            .find(|seen| seen.path == path)
            .unwrap_or_else(|| panic!("no request for {path}: {seen:?}"))
            .headers
            .get("authorization")
            .cloned()
    };
    // ann:s3cret
    let basic = Some("Basic YW5uOnMzY3JldA==".to_string());
    assert_eq!(authorization("/png/direct.png"), basic);
    assert_eq!(authorization("/redirect-host/moved.png"), basic);
    // The redirect led to localhost, another host.
    assert_eq!(authorization("/png/moved.png"), None);
}

fn cookies_are_saved(strategy: &str) {
    let server = FaultServer::start();
    let scratch = Scratch::new();
    let saved = scratch.root.path().join("saved.txt");
    let saved_arg = saved.display().to_string();
    let login = server.url("/login/page.bin");
    let output = get(strategy, &scratch, &[&login, "--save-cookies", &saved_arg]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let text = fs::read_to_string(&saved).unwrap();
    assert!(text.starts_with("# Netscape HTTP Cookie File"), "{text}");
    assert!(text.contains("127.0.0.1\tFALSE\t/\tFALSE\t"), "{text}");
    assert!(text.contains("\tremember\tyes\n"), "{text}");
    // A session cookie is saved only when asked.
    assert!(!text.contains("session"), "{text}");
    let again = Scratch::new();
    let output = get(
        strategy,
        &again,
        &[
            &login,
            "--save-cookies",
            &saved_arg,
            "--keep-session-cookies",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let text = fs::read_to_string(&saved).unwrap();
    assert!(text.contains(&format!("#HttpOnly_{SESSION}")), "{text}");
    // What was saved opens the page in a later run.
    let later = Scratch::new();
    let output = get(
        strategy,
        &later,
        &[
            &server.url("/members/later.bin"),
            "--load-cookies",
            &saved_arg,
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert_eq!(files_in(&later.output()), ["later.bin"]);
}

for_each_strategy!(
    a_login_redirect_opens_the_page,
    a_cookie_file_is_loaded,
    a_netrc_entry_goes_to_its_host_only,
);

// With -s processes the cookies set in worker processes stay there (each
// keeps its own jar), so saving is checked for the strategies that keep one
// jar: the blocking and the asynchronous driver.
mod saving {
    #[test]
    fn sequential() {
        super::cookies_are_saved("sequential")
    }
    #[test]
    fn asynchronous() {
        super::cookies_are_saved("async")
    }
}

#[test]
fn a_missing_cookie_file_is_a_usage_error() {
    let scratch = Scratch::new();
    let missing = scratch.root.path().join("none.txt").display().to_string();
    let output = get(
        "sequential",
        &scratch,
        &["http://127.0.0.1:9/x", "--load-cookies", &missing],
    );
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("cannot read the cookie file") && stderr.contains("none.txt"),
        "{stderr}"
    );
}
