//! A real headless Chromium, for the tests that look at a page as a person
//! would: [`Page::open`] loads a URL and waits until it has loaded, then
//! [`Page::evaluate`] runs JavaScript in it and [`Page::screenshot`] keeps a
//! picture of it under `target/test-artefacts/`.
//!
//! Chromium is driven over its DevTools protocol on a pipe
//! (`--remote-debugging-pipe`: commands on the child's descriptor 3, answers on
//! its descriptor 4, each a JSON message ended by a NUL byte). Rather than a
//! port, which needs its number read back from a file and a websocket client, or
//! a crate such as `headless_chrome`, which brings its own websocket stack and
//! can download a browser: a pipe has no port to find, nothing to poll for, no
//! dependency but `libc` for the two `dup2`s, and Chromium exits when it closes.
//!
//! A missing `chromium` fails the test with a message saying to run `./test`,
//! which installs it; it never passes silently.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// How long Chromium may take to answer one command or load a page before the
/// test fails: a bound on a hang, not a measure of speed.
const PATIENCE: Duration = Duration::from_secs(120);

/// The viewport: wide enough for the pages under test to lay out as on a desktop.
const VIEWPORT: (u32, u32) = (1100, 900);

/// Flags for Chromium run as root in a container with no network: no sandbox
/// (it refuses root otherwise), no GPU, and none of the background requests
/// (updates, sync, QUIC probes) that would flood a closed network.
const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
    "--remote-debugging-pipe",
];

/// `chromium` on `PATH`, or a failure that says how to install it.
fn chromium() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|folder| folder.join("chromium"))
            .find(|candidate| candidate.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "chromium is not installed, and this test opens pages in it: run ./test, which \
             installs it (on Debian: apt-get install chromium)"
        )
    })
}

/// Where tests keep what a person may want to look at after the run:
/// `target/test-artefacts/NAME`.
pub fn artefact(name: &str) -> PathBuf {
    // CARGO_TARGET_TMPDIR is target/tmp, wherever the target folder is.
    let folder = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target/tmp has a parent")
        .join("test-artefacts");
    std::fs::create_dir_all(&folder).unwrap();
    folder.join(name)
}

/// One page in its own Chromium, with a new empty profile; both go when it drops.
pub struct Page {
    child: Child,
    commands: std::io::PipeWriter,
    /// Every message Chromium writes, answers and events, read on a thread so
    /// that a wait can time out.
    messages: mpsc::Receiver<Value>,
    session: String,
    next_id: u64,
    /// Holds the profile and Chromium's stderr, which failures quote.
    scratch: tempfile::TempDir,
}

impl Page {
    /// Starts Chromium, opens `url` and waits until the page and everything it
    /// loads (images included) have loaded.
    pub fn open(url: &str) -> Page {
        let chromium = chromium();
        let scratch = tempfile::tempdir().unwrap();
        let profile = scratch.path().join("profile");
        let log = std::fs::File::create(scratch.path().join("stderr.log")).unwrap();
        let (commands_read, commands) = std::io::pipe().unwrap();
        let (answers, answers_write) = std::io::pipe().unwrap();
        let (commands_fd, answers_fd) = (commands_read.as_raw_fd(), answers_write.as_raw_fd());
        let mut command = Command::new(&chromium);
        command
            .args(FLAGS)
            .arg(format!("--window-size={},{}", VIEWPORT.0, VIEWPORT.1))
            .arg(format!("--user-data-dir={}", profile.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        // SAFETY: only async-signal-safe calls (fcntl, dup2) between fork and exec.
        unsafe {
            command.pre_exec(move || {
                // Both ends are first copied above 4, so that placing one on 3 or 4
                // cannot overwrite the other; the copies close at exec, and dup2
                // leaves 3 and 4 open across it.
                let commands = libc::fcntl(commands_fd, libc::F_DUPFD_CLOEXEC, 10);
                let answers = libc::fcntl(answers_fd, libc::F_DUPFD_CLOEXEC, 10);
                if commands < 0
                    || answers < 0
                    || libc::dup2(commands, 3) < 0
                    || libc::dup2(answers, 4) < 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {}: {error}", chromium.display()));
        // Only Chromium holds these ends now, so its exit ends the reads.
        drop((commands_read, answers_write));
        let (sender, messages) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(answers);
            let mut message = Vec::new();
            while reader
                .read_until(0, &mut message)
                .is_ok_and(|read| read > 0)
            {
                if message.last() == Some(&0) {
                    message.pop();
                }
                if let Ok(value) = serde_json::from_slice(&message)
                    && sender.send(value).is_err()
                {
                    break;
                }
                message.clear();
            }
        });
        let mut page = Page {
            child,
            commands,
            messages,
            session: String::new(),
            next_id: 0,
            scratch,
        };
        let target = page.call("Target.createTarget", json!({"url": "about:blank"}));
        let attached = page.call(
            "Target.attachToTarget",
            json!({"targetId": target["targetId"], "flatten": true}),
        );
        page.session = attached["sessionId"].as_str().unwrap().to_string();
        page.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": VIEWPORT.0, "height": VIEWPORT.1, "deviceScaleFactor": 1, "mobile": false}),
        );
        let navigated = page.call("Page.navigate", json!({"url": url}));
        if let Some(error) = navigated["errorText"].as_str() {
            panic!("chromium could not open {url}: {error}");
        }
        page.wait_until_loaded(url);
        page
    }

    /// Polls until the new document has fired its load event. Asking in the
    /// page rather than waiting for the event avoids a race with the blank
    /// page's own load; while the document changes an evaluation can fail, and
    /// is asked again.
    fn wait_until_loaded(&mut self, url: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let loaded = self.try_call(
                "Runtime.evaluate",
                json!({
                    "expression": "document.readyState === 'complete' && location.href !== 'about:blank'",
                    "returnByValue": true,
                }),
            );
            if loaded.is_ok_and(|answer| answer["result"]["value"] == true) {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "{url} did not finish loading within {PATIENCE:?}{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Evaluates `expression` in the page and returns its value as JSON; a
    /// promise is awaited. A JavaScript exception fails the test.
    pub fn evaluate(&mut self, expression: &str) -> Value {
        let answer = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        );
        if let Some(exception) = answer.get("exceptionDetails") {
            panic!("{expression} threw: {exception}");
        }
        answer["result"]["value"].clone()
    }

    /// The whole page, not only the viewport, one image pixel per CSS pixel,
    /// kept as `target/test-artefacts/NAME` (its path printed) and returned.
    pub fn screenshot(&mut self, name: &str) -> image::RgbaImage {
        use base64::Engine as _;
        let metrics = self.call("Page.getLayoutMetrics", json!({}));
        let size = &metrics["cssContentSize"];
        let shot = self.call(
            "Page.captureScreenshot",
            json!({
                "format": "png",
                "captureBeyondViewport": true,
                "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
            }),
        );
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        let path = artefact(name);
        std::fs::write(&path, &png).unwrap();
        println!("screenshot: {}", path.display());
        image::load_from_memory(&png).unwrap().to_rgba8()
    }

    /// Sends a command (to the page's session once there is one) and waits for
    /// its answer; a protocol error fails the test.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.try_call(method, params)
            .unwrap_or_else(|error| panic!("chromium refused {method}: {error}{}", self.log()))
    }

    fn try_call(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            message["sessionId"] = self.session.clone().into();
        }
        let mut bytes = serde_json::to_vec(&message).unwrap();
        bytes.push(0);
        if let Err(error) = self.commands.write_all(&bytes) {
            panic!("chromium stopped reading commands ({error}){}", self.log());
        }
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.messages.recv_timeout(left) {
                // Events and other answers are not waited for here.
                Ok(answer) if answer["id"] != id => continue,
                Ok(mut answer) => {
                    return match answer.get_mut("error") {
                        Some(error) => Err(error.take()),
                        None => Ok(answer["result"].take()),
                    };
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!(
                        "chromium did not answer {method} within {PATIENCE:?}{}",
                        self.log()
                    )
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    panic!("chromium exited while asked {method}{}", self.log())
                }
            }
        }
    }

    /// The end of Chromium's stderr, for failure messages.
    fn log(&self) -> String {
        let text =
            std::fs::read_to_string(self.scratch.path().join("stderr.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        format!("\nchromium's stderr ends:\n{tail}")
    }
}

impl Drop for Page {
    /// Asks Chromium to close, which ends its helper processes too; kills it
    /// only if it has not gone within a while.
    fn drop(&mut self) {
        let close = json!({"id": self.next_id + 1, "method": "Browser.close"});
        let mut bytes = serde_json::to_vec(&close).unwrap();
        bytes.push(0);
        let _ = self.commands.write_all(&bytes);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
