//! Faults and hostile input, for every strategy: a raw TCP server on 127.0.0.1:0 that
//! misbehaves on purpose (resets, stalls, fails then recovers, lies about length,
//! loops redirects, suggests hostile names, ignores Range, serves HTML as images,
//! changes a file between runs). The promise under test: a fault costs a retry,
//! never a corrupt file, a lost file, or a file outside the output folder.

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use grab::gallery::{Generator, seed_of};

use super::support::{Scratch, files_in, grab, grab_command, stderr_of};

/// The body the fault server sends for an id (and version).
pub fn body_of(id: &str, size: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; size];
    Generator::new(seed_of(id)).fill(&mut bytes);
    bytes
}

const SIZE: usize = 50_000;

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    #[allow(dead_code)] // Shown when an assertion prints the log.
    pub path: String,
    pub range: Option<String>,
    pub if_range: Option<String>,
    /// Every header, by lower-case name.
    pub headers: HashMap<String, String>,
}

#[derive(Default)]
struct State {
    hits: Mutex<HashMap<String, u32>>,
    seen: Mutex<Vec<Seen>>,
    /// The version of `/changing/...` files; bumping it changes their bytes and ETag.
    version: AtomicU32,
    /// `/busy/...` requests being answered now, and the most seen at once.
    busy_now: AtomicU32,
    busy_most: AtomicU32,
}

pub struct FaultServer {
    pub base: String,
    state: Arc<State>,
    stop: Arc<AtomicBool>,
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop.
        let _ = TcpStream::connect(self.base.trim_start_matches("http://"));
    }
}

impl FaultServer {
    pub fn start() -> FaultServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(State::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (accept_state, accept_stop) = (state.clone(), stop.clone());
        thread::spawn(move || {
            for stream in listener.incoming() {
                if accept_stop.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let state = accept_state.clone();
                thread::spawn(move || {
                    let _ = serve(stream, &state);
                });
            }
        });
        FaultServer { base, state, stop }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    pub fn hits(&self, path: &str) -> u32 {
        self.state
            .hits
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// The most `/busy/...` requests the server answered at once.
    pub fn most_at_once(&self) -> u32 {
        self.state.busy_most.load(Ordering::Relaxed)
    }

    pub fn change_files(&self) {
        self.state.version.fetch_add(1, Ordering::Relaxed);
    }
}

fn respond(
    stream: &mut TcpStream,
    status: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {status}\r\nconnection: close\r\n");
    for (name, value) in headers {
        head += &format!("{name}: {value}\r\n");
    }
    head += "\r\n";
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)
}

fn ok_body(stream: &mut TcpStream, id: &str, content_type: &str) -> std::io::Result<()> {
    let body = body_of(id, SIZE);
    respond(
        stream,
        "200 OK",
        &[
            ("content-type", content_type.into()),
            ("content-length", SIZE.to_string()),
        ],
        &body,
    )
}

fn serve(mut stream: TcpStream, state: &State) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut headers = HashMap::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    let path = target.split('?').next().unwrap_or("").to_string();
    let hit = {
        let mut hits = state.hits.lock().unwrap();
        let count = hits.entry(path.clone()).or_insert(0);
        *count += 1;
        *count
    };
    state.seen.lock().unwrap().push(Seen {
        path: path.clone(),
        range: headers.get("range").cloned(),
        if_range: headers.get("if-range").cloned(),
        headers: headers.clone(),
    });
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let octets = "application/octet-stream";
    match parts.as_slice() {
        // The connection is reset halfway through the body, the first time.
        ["reset", id] => {
            if hit > 1 {
                return ok_body(&mut stream, id, octets);
            }
            let body = body_of(id, SIZE);
            respond(
                &mut stream,
                "200 OK",
                &[("content-length", SIZE.to_string())],
                &body[..SIZE / 2],
            )?;
            stream.flush()?;
            socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO))?;
            Ok(())
        }
        // Half the body, then silence, the first time.
        ["stall", id] => {
            if hit > 1 {
                return ok_body(&mut stream, id, octets);
            }
            let body = body_of(id, SIZE);
            respond(
                &mut stream,
                "200 OK",
                &[("content-length", SIZE.to_string())],
                &body[..SIZE / 2],
            )?;
            stream.flush()?;
            thread::sleep(Duration::from_secs(20));
            Ok(())
        }
        // 503 the first `failures` times.
        ["flaky", failures, id] => {
            if hit <= failures.parse::<u32>().unwrap() {
                return respond(
                    &mut stream,
                    "503 Service Unavailable",
                    &[("retry-after", "0".into()), ("content-length", "4".into())],
                    b"busy",
                );
            }
            ok_body(&mut stream, id, octets)
        }
        // Fewer bytes than Content-Length, then a clean close, the first time.
        ["short", id] => {
            if hit > 1 {
                return ok_body(&mut stream, id, octets);
            }
            let body = body_of(id, SIZE);
            respond(
                &mut stream,
                "200 OK",
                &[("content-length", SIZE.to_string())],
                &body[..SIZE - 1000],
            )
        }
        // Counts how many are answered at once, holding each for a moment.
        ["busy", id] => {
            let now = state.busy_now.fetch_add(1, Ordering::SeqCst) + 1;
            state.busy_most.fetch_max(now, Ordering::SeqCst);
            thread::sleep(Duration::from_millis(150));
            state.busy_now.fetch_sub(1, Ordering::SeqCst);
            ok_body(&mut stream, id, octets)
        }
        ["loop", name] => {
            let next = if *name == "a" { "/loop/b" } else { "/loop/a" };
            respond(
                &mut stream,
                "302 Found",
                &[("location", next.into()), ("content-length", "0".into())],
                b"",
            )
        }
        // `download.php?id=N`'s case: one base name, a name each by its header.
        ["named", name, _] => {
            let body = body_of(name, 100);
            respond(
                &mut stream,
                "200 OK",
                &[
                    (
                        "content-disposition",
                        format!("attachment; filename=\"{name}\""),
                    ),
                    ("content-length", "100".into()),
                ],
                &body,
            )
        }
        ["disposition", variant] => {
            let header = match *variant {
                "dots" => "attachment; filename=\"../../escaped.bin\"".to_string(),
                "absolute" => "attachment; filename=\"/etc/passwd\"".to_string(),
                "backslash" => "attachment; filename=\"..\\\\..\\\\windows.bin\"".to_string(),
                "encoded" => "attachment; filename*=UTF-8''..%2F..%2Fencoded.bin".to_string(),
                "nul" => "attachment; filename*=UTF-8''a%00b%0A.bin".to_string(),
                "only-dots" => "attachment; filename=\"..\"".to_string(),
                "spaced" => "attachment; filename=\"../../evil name.txt\"".to_string(),
                _ => "attachment; filename=\"fallback.bin\"; filename*=UTF-8''%E2%82%AC.bin"
                    .to_string(),
            };
            let body = body_of(variant, 100);
            respond(
                &mut stream,
                "200 OK",
                &[
                    ("content-disposition", header),
                    ("content-length", "100".into()),
                ],
                &body,
            )
        }
        // An error page in disguise: HTML served as a JPEG.
        ["html-as-jpeg", _] => {
            let body = b"<!DOCTYPE html><html><body>Not found, but 200</body></html>";
            respond(
                &mut stream,
                "200 OK",
                &[
                    ("content-type", "image/jpeg".into()),
                    ("content-length", body.len().to_string()),
                ],
                body,
            )
        }
        // The same, flushed a byte at a time: judged the same as sent whole.
        ["html-trickle", _] => {
            let body = b"<!DOCTYPE html><html><body>Not found, but 200</body></html>";
            stream.set_nodelay(true)?;
            respond(
                &mut stream,
                "200 OK",
                &[
                    ("content-type", "image/jpeg".into()),
                    ("content-length", body.len().to_string()),
                ],
                b"",
            )?;
            for byte in body {
                stream.write_all(&[*byte])?;
                stream.flush()?;
                thread::sleep(Duration::from_millis(2));
            }
            Ok(())
        }
        // A redirect to the same server under another host name.
        ["redirect-host", name] => {
            let port = stream.local_addr()?.port();
            respond(
                &mut stream,
                "302 Found",
                &[
                    ("location", format!("http://localhost:{port}/png/{name}")),
                    ("content-length", "0".into()),
                ],
                b"",
            )
        }
        // A login: a session cookie for /members, a lasting one for the whole
        // site, one for a path the redirect does not go to, then on to the page.
        ["login", name] => respond(
            &mut stream,
            "302 Found",
            &[
                (
                    "set-cookie",
                    "session=opened; Path=/members; HttpOnly".into(),
                ),
                ("set-cookie", "remember=yes; Max-Age=3600; Path=/".into()),
                ("set-cookie", "elsewhere=no; Path=/other".into()),
                ("location", format!("/members/{name}")),
                ("content-length", "0".into()),
            ],
            b"",
        ),
        // A page only a logged-in request gets.
        ["members", id] => {
            let cookie = headers.get("cookie").cloned().unwrap_or_default();
            match cookie.split("; ").any(|pair| pair == "session=opened") {
                true => ok_body(&mut stream, id, octets),
                false => respond(
                    &mut stream,
                    "403 Forbidden",
                    &[("content-length", "0".into())],
                    b"",
                ),
            }
        }
        // A redirect to a scheme grab does not fetch.
        ["redirect-scheme", scheme] => {
            let location = match *scheme {
                "file" => "file:///etc/passwd".to_string(),
                "relative" => "../png/moved.png".to_string(),
                other => format!("{other}://127.0.0.1/x"),
            };
            respond(
                &mut stream,
                "302 Found",
                &[("location", location), ("content-length", "0".into())],
                b"",
            )
        }
        ["html", _] => {
            let body = b"<html>a page</html>";
            respond(
                &mut stream,
                "200 OK",
                &[
                    ("content-type", "text/html".into()),
                    ("content-length", body.len().to_string()),
                ],
                body,
            )
        }
        // 100 KB, compressed as the request's Accept-Encoding allows (gzip or
        // zstd, as the path names), else plain.
        ["encoded", encoding, id] => {
            let body = body_of(id, 100_000);
            let accepted = headers
                .get("accept-encoding")
                .is_some_and(|value| value.split(',').any(|item| item.trim() == *encoding));
            let (sent, encoded_as) = match (accepted, *encoding) {
                (true, "gzip") => {
                    let mut encoder =
                        flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                    encoder.write_all(&body)?;
                    (encoder.finish()?, Some("gzip"))
                }
                (true, "zstd") => (zstd::encode_all(&body[..], 3)?, Some("zstd")),
                _ => (body, None),
            };
            let mut response_headers = vec![("content-length", sent.len().to_string())];
            if let Some(encoding) = encoded_as {
                response_headers.push(("content-encoding", encoding.to_string()));
            }
            respond(&mut stream, "200 OK", &response_headers, &sent)
        }
        // A file with validators that answers a matching If-None-Match with
        // 304 and no body, as a server behind wget's or grab's -N does; its
        // bytes, ETag and date change with `change_files`.
        ["validated", id] => {
            let version = state.version.load(Ordering::Relaxed);
            let etag = format!("\"{id}-v{version}\"");
            let last_modified = format!("Sun, 01 Nov 2026 00:0{}:00 GMT", version % 10);
            if headers.get("if-none-match") == Some(&etag) {
                return respond(
                    &mut stream,
                    "304 Not Modified",
                    &[("etag", etag), ("last-modified", last_modified)],
                    b"",
                );
            }
            let body = body_of(&format!("{id}-v{version}"), 5_000);
            respond(
                &mut stream,
                "200 OK",
                &[
                    ("content-length", body.len().to_string()),
                    ("etag", etag),
                    ("last-modified", last_modified),
                ],
                &body,
            )
        }
        ["png", name] => {
            let body = grab::gallery::encode(name, 8, 8, grab::gallery::Format::Png);
            respond(
                &mut stream,
                "200 OK",
                &[
                    ("content-type", "image/png".into()),
                    ("content-length", body.len().to_string()),
                ],
                &body,
            )
        }
        // Ranges and validators, streamed slowly so a test can interrupt it.
        ["slow", id] | ["norange", id] | ["changing", id] | ["careless", id] => {
            let version = if parts[0] == "changing" || parts[0] == "careless" {
                state.version.load(Ordering::Relaxed)
            } else {
                0
            };
            let key = format!("{id}-v{version}");
            let body = body_of(&key, 200_000);
            let etag = format!("\"{key}\"");
            // `careless` answers a range whatever If-Range says, as a broken
            // server or cache might: only the ETag tells the file changed.
            let honour_range = parts[0] == "careless"
                || (parts[0] != "norange"
                    && headers.get("if-range").is_none_or(|value| *value == etag));
            let start = headers
                .get("range")
                .filter(|_| honour_range)
                .and_then(|value| {
                    value
                        .strip_prefix("bytes=")?
                        .strip_suffix('-')?
                        .parse::<usize>()
                        .ok()
                });
            if start.is_some_and(|start| start >= body.len()) {
                // Nothing past the end: 416 with the size, as the RFC asks.
                return respond(
                    &mut stream,
                    "416 Range Not Satisfiable",
                    &[
                        ("content-range", format!("bytes */{}", body.len())),
                        ("content-length", "0".into()),
                    ],
                    b"",
                );
            }
            let (status, slice) = match start {
                Some(start) => ("206 Partial Content", &body[start..]),
                None => ("200 OK", &body[..]),
            };
            let mut response_headers =
                vec![("content-length", slice.len().to_string()), ("etag", etag)];
            if let Some(start) = start {
                response_headers.push((
                    "content-range",
                    format!("bytes {start}-{}/{}", body.len() - 1, body.len()),
                ));
            }
            respond(&mut stream, status, &response_headers, b"")?;
            // About 200 KB/s: slow enough to interrupt, fast enough to finish.
            for piece in slice.chunks(2_000) {
                stream.write_all(piece)?;
                thread::sleep(Duration::from_millis(10));
            }
            Ok(())
        }
        // 200 KB with a validator, honouring ranges; the first answer is cut
        // at 60%: `close` ends it cleanly (a short body), `reset` with a reset.
        // `weak` gives only a weak ETag and `none` refuses ranges, so neither
        // can be resumed.
        ["cut", how, id] => {
            let body = body_of(id, 200_000);
            let etag = match *how {
                "weak" => format!("W/\"{id}\""),
                _ => format!("\"{id}\""),
            };
            let start = headers
                .get("range")
                .filter(|_| *how != "none")
                .filter(|_| headers.get("if-range").is_none_or(|value| *value == etag))
                .and_then(|value| {
                    value
                        .strip_prefix("bytes=")?
                        .strip_suffix('-')?
                        .parse::<usize>()
                        .ok()
                })
                .filter(|&start| start < body.len());
            let mut response_headers = vec![
                ("content-type", octets.to_string()),
                (
                    "content-length",
                    (body.len() - start.unwrap_or(0)).to_string(),
                ),
                ("etag", etag),
            ];
            if *how == "none" {
                response_headers.push(("accept-ranges", "none".into()));
            }
            let status = match start {
                Some(start) => {
                    response_headers.push((
                        "content-range",
                        format!("bytes {start}-{}/{}", body.len() - 1, body.len()),
                    ));
                    "206 Partial Content"
                }
                None => "200 OK",
            };
            let start = start.unwrap_or(0);
            let end = if hit == 1 {
                body.len() * 6 / 10
            } else {
                body.len()
            };
            respond(&mut stream, status, &response_headers, &body[start..end])?;
            stream.flush()?;
            if hit == 1 && *how == "reset" {
                // Let the bytes reach the client before the reset discards them.
                thread::sleep(Duration::from_millis(200));
                socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO))?;
            }
            Ok(())
        }
        // A chunked body of SIZE bytes, without Content-Length.
        ["chunked", size, id] => {
            let body = body_of(id, size.parse().unwrap());
            let mut head = String::from(
                "HTTP/1.1 200 OK\r\nconnection: close\r\ntransfer-encoding: chunked\r\n",
            );
            head += "content-type: application/octet-stream\r\n\r\n";
            stream.write_all(head.as_bytes())?;
            for piece in body.chunks(4_000) {
                stream.write_all(format!("{:x}\r\n", piece.len()).as_bytes())?;
                stream.write_all(piece)?;
                stream.write_all(b"\r\n")?;
            }
            stream.write_all(b"0\r\n\r\n")
        }
        // Chunked, with a Content-Length that disagrees: the chunks count
        // (RFC 9112, section 6.3).
        ["chunked-and-length", id] => {
            let body = body_of(id, 5_000);
            let head = "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 10\r\n\
                        transfer-encoding: chunked\r\ncontent-type: application/octet-stream\r\n\r\n";
            stream.write_all(head.as_bytes())?;
            stream.write_all(format!("{:x}\r\n", body.len()).as_bytes())?;
            stream.write_all(&body)?;
            stream.write_all(b"\r\n0\r\n\r\n")
        }
        // More bytes than Content-Length: the message is the first 1,000.
        ["long", id] => {
            let body = body_of(id, 2_000);
            respond(
                &mut stream,
                "200 OK",
                &[
                    ("content-type", octets.into()),
                    ("content-length", "1000".into()),
                ],
                &body,
            )
        }
        // One byte every 200 ms, for a minute at most: never idle long enough
        // for --timeout, far too slow to finish.
        ["trickle", id] => {
            let body = body_of(id, 100_000);
            stream.set_nodelay(true)?;
            respond(
                &mut stream,
                "200 OK",
                &[
                    ("content-type", octets.into()),
                    ("content-length", body.len().to_string()),
                ],
                b"",
            )?;
            for byte in body.iter().take(300) {
                stream.write_all(&[*byte])?;
                thread::sleep(Duration::from_millis(200));
            }
            Ok(())
        }
        // Any path under `/tree/`, as deep as it goes: 50 KB of its own (by
        // the whole target, query included), for the folders of -x.
        ["tree", .., _] => ok_body(&mut stream, &target, octets),
        _ => respond(
            &mut stream,
            "404 Not Found",
            &[("content-length", "0".into())],
            b"",
        ),
    }
}

// ---- the cases, for every strategy ----

pub fn get(strategy: &str, scratch: &Scratch, more: &[&str]) -> std::process::Output {
    let output = scratch.output_arg();
    let mut arguments = vec![
        "get",
        "-s",
        strategy,
        "-j",
        "4",
        "-o",
        &output,
        "--retry-wait",
        "0.05",
    ];
    arguments.extend_from_slice(more);
    grab(&arguments, None)
}

/// Like [`get`], with `-j` chosen by the caller.
fn get_with_jobs(strategy: &str, scratch: &Scratch, more: &[&str]) -> std::process::Output {
    let output = scratch.output_arg();
    let mut arguments = vec!["get", "-s", strategy, "-o", &output];
    arguments.extend_from_slice(more);
    grab(&arguments, None)
}

/// After any run: nothing outside the folder, no part file left, and every file
/// under a final name complete (checked by the caller against its source).
pub fn assert_clean(scratch: &Scratch) {
    scratch.assert_nothing_outside(&[]);
    scratch.assert_no_part_files();
}

fn faults_cost_a_retry(strategy: &str) {
    let server = FaultServer::start();
    let scratch = Scratch::new();
    let urls = ["/reset/r1", "/stall/s1", "/flaky/2/f1", "/short/h1"].map(|path| server.url(path));
    let mut arguments: Vec<&str> = urls.iter().map(String::as_str).collect();
    arguments.extend(["--timeout", "0.5"]);
    let output = get(strategy, &scratch, &arguments);
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    // No extension in the URLs: `.bin` from the Content-Type.
    for id in ["r1", "s1", "f1", "h1"] {
        assert_eq!(
            fs::read(scratch.output().join(format!("{id}.bin"))).unwrap(),
            body_of(id, SIZE),
            "{id}"
        );
    }
    assert!(
        stderr.contains("(3 attempts)"),
        "the flaky URL took three: {stderr}"
    );
    assert!(stderr.matches("(2 attempts)").count() == 3, "{stderr}");
    assert_clean(&scratch);
}

fn persistent_failures_are_reported_not_saved(strategy: &str) {
    let server = FaultServer::start();
    let scratch = Scratch::new();
    let flaky = server.url("/flaky/9/f2");
    let looping = server.url("/loop/a");
    let output = get(strategy, &scratch, &[&flaky, &looping, "--retries", "1"]);
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("failed {flaky}"))
            && stderr.contains("HTTP 503 Service Unavailable"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("failed {looping}")) && stderr.contains("too many redirects"),
        "{stderr}"
    );
    assert_eq!(server.hits("/flaky/9/f2"), 2, "one retry only");
    assert!(files_in(&scratch.output()).is_empty());
    assert_clean(&scratch);
}

fn hostile_disposition_names_stay_inside(strategy: &str) {
    let server = FaultServer::start();
    let scratch = Scratch::new();
    let variants = [
        "dots",
        "absolute",
        "backslash",
        "encoded",
        "nul",
        "only-dots",
        "spaced",
        "extended",
    ];
    let urls: Vec<String> = variants
        .iter()
        .map(|variant| server.url(&format!("/disposition/{variant}")))
        .collect();
    // URLs of one base name (`get`) take their headers' names as they are:
    // their rank among the URLs named `get` numbers no other name.
    let named: Vec<String> = ["a.txt", "b.txt", "c.txt"]
        .iter()
        .map(|name| server.url(&format!("/named/{name}/get")))
        .collect();
    let mut arguments: Vec<&str> = urls.iter().chain(&named).map(String::as_str).collect();
    arguments.push("--content-disposition");
    let output = get(strategy, &scratch, &arguments);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let mut names = files_in(&scratch.output());
    names.sort();
    // The last part of a name with folders, as curl and wget save it.
    let mut expected = vec![
        "a.txt",
        "b.txt",
        "c.txt",
        "escaped.bin",
        "passwd",
        "windows.bin",
        "encoded.bin",
        "a_b_.bin",
        "only-dots",
        "evil name.txt",
        "€.bin",
    ];
    expected.sort();
    assert_eq!(names, expected);
    assert_clean(&scratch);
}

fn accept_refuses_html_in_disguise(strategy: &str) {
    let server = FaultServer::start();
    let scratch = Scratch::new();
    let disguised = server.url("/html-as-jpeg/photo.jpg");
    let trickled = server.url("/html-trickle/slow.jpg");
    let page = server.url("/html/page");
    let image = server.url("/png/fine.png");
    let output = get(
        strategy,
        &scratch,
        &[&disguised, &trickled, &page, &image, "--accept", "image/*"],
    );
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(files_in(&scratch.output()), ["fine.png"]);
    assert_eq!(
        stderr
            .matches("not an accepted type: text/html (by its first bytes)")
            .count(),
        2,
        "{stderr}"
    );
    assert!(
        stderr.contains("not an accepted type: text/html"),
        "{stderr}"
    );
    assert_clean(&scratch);
}

fn max_size_abandons_large_responses(strategy: &str) {
    let server = FaultServer::start();
    let scratch = Scratch::new();
    // Refused on its Content-Length, before a byte is written.
    let large = server.url("/slow/big");
    let output = get(strategy, &scratch, &[&large, "--max-size", "1000"]);
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("larger than the limit of 1000 bytes"),
        "{stderr}"
    );
    assert!(files_in(&scratch.output()).is_empty());
    assert_clean(&scratch);
}

/// Starts `grab get` on a slow file and kills it (-9) once part of the file is on
/// disk; returns the part file's size.
fn interrupted_run(strategy: &str, scratch: &Scratch, url: &str, name: &str) -> u64 {
    let output_dir = scratch.output_arg();
    let mut child = grab_command()
        .args(["get", "-s", strategy, "-o", &output_dir, url])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let part = scratch.output().join(format!("{name}.part"));
    wait_for_bytes(&part, 20_000);
    child.kill().unwrap();
    child.wait().unwrap();
    // Give a worker process a moment to follow its parent.
    thread::sleep(Duration::from_millis(100));
    let size = part.metadata().unwrap().len();
    assert!(size > 0 && size < 200_000, "part of {size} bytes");
    assert!(
        !scratch.output().join(name).exists(),
        "no final name before the end"
    );
    size
}

fn resume_after_kill_continues_the_part(strategy: &str) {
    let server = FaultServer::start();
    let scratch = Scratch::new();
    let url = server.url("/slow/resumed.bin");
    let kept = interrupted_run(strategy, &scratch, &url, "resumed.bin");
    let output = get(strategy, &scratch, &[&url, "--continue"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert_eq!(
        fs::read(scratch.output().join("resumed.bin")).unwrap(),
        body_of("resumed.bin-v0", 200_000)
    );
    let last = server.seen().last().cloned().unwrap();
    let asked = last.range.expect("the second run asked for a range");
    let start: u64 = asked
        .trim_start_matches("bytes=")
        .trim_end_matches('-')
        .parse()
        .unwrap();
    // The part may have grown a little after it was measured, before the kill landed.
    assert!(
        start >= kept && start < 200_000,
        "resumed from {start}, kept {kept}"
    );
    assert_eq!(last.if_range.as_deref(), Some("\"resumed.bin-v0\""));
    assert_clean(&scratch);
}

/// An interrupted download of `route`'s file, the file changed on the server,
/// then `--continue`: the whole new file, never old bytes plus new.
fn a_changed_file_is_never_spliced(strategy: &str, route: &str) {
    let server = FaultServer::start();
    let scratch = Scratch::new();
    let url = server.url(&format!("/{route}/doc.bin"));
    interrupted_run(strategy, &scratch, &url, "doc.bin");
    server.change_files();
    let output = get(strategy, &scratch, &[&url, "--continue"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert_eq!(
        fs::read(scratch.output().join("doc.bin")).unwrap(),
        body_of("doc.bin-v1", 200_000)
    );
    assert_clean(&scratch);
}

fn changed_file_is_never_spliced(strategy: &str) {
    // The If-Range no longer matches: the server sends the whole new file.
    a_changed_file_is_never_spliced(strategy, "changing");
}

fn a_range_of_another_version_is_never_spliced(strategy: &str) {
    // The server answers the range anyway: its 206 carries another ETag than
    // the one recorded, is refused, and the retry starts over.
    a_changed_file_is_never_spliced(strategy, "careless");
}

fn ignored_range_restarts_cleanly(strategy: &str) {
    let server = FaultServer::start();
    let scratch = Scratch::new();
    let url = server.url("/norange/whole.bin");
    interrupted_run(strategy, &scratch, &url, "whole.bin");
    let output = get(strategy, &scratch, &[&url, "--continue"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert_eq!(
        fs::read(scratch.output().join("whole.bin")).unwrap(),
        body_of("whole.bin-v0", 200_000)
    );
    assert_clean(&scratch);
}

fn rerun_skips_complete_files_and_force_downloads_again(strategy: &str) {
    let server = FaultServer::start();
    let scratch = Scratch::new();
    let urls = [server.url("/flaky/0/one"), server.url("/flaky/0/two")];
    let first = get(strategy, &scratch, &[&urls[0], &urls[1]]);
    assert_eq!(first.status.code(), Some(0), "{}", stderr_of(&first));
    let again = get(strategy, &scratch, &[&urls[0], &urls[1]]);
    let stderr = stderr_of(&again);
    assert_eq!(again.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("nothing to download: 2 already complete;"),
        "{stderr}"
    );
    assert_eq!(server.hits("/flaky/0/one"), 1, "not fetched again");
    // A file changed on disk no longer counts as complete: fetched again, and the
    // changed file is left alone.
    fs::write(scratch.output().join("one.bin"), b"edited").unwrap();
    let after_edit = get(strategy, &scratch, &[&urls[0], &urls[1]]);
    assert_eq!(
        after_edit.status.code(),
        Some(0),
        "{}",
        stderr_of(&after_edit)
    );
    assert_eq!(server.hits("/flaky/0/one"), 2);
    assert_eq!(
        fs::read(scratch.output().join("one-1.bin")).unwrap(),
        body_of("one", SIZE)
    );
    assert_eq!(
        fs::read(scratch.output().join("one.bin")).unwrap(),
        b"edited"
    );
    let forced = get(strategy, &scratch, &[&urls[1], "--force"]);
    assert_eq!(forced.status.code(), Some(0), "{}", stderr_of(&forced));
    assert_eq!(server.hits("/flaky/0/two"), 2);
    assert_eq!(
        files_in(&scratch.output()),
        ["one-1.bin", "one.bin", "two.bin"]
    );
    assert_eq!(
        fs::read(scratch.output().join("two.bin")).unwrap(),
        body_of("two", SIZE)
    );
    assert_clean(&scratch);
}

/// Starts `grab get` with more arguments, waits until the first part file has
/// some bytes, then sends SIGINT, as Ctrl-C would.
fn interrupt_when_started(
    strategy: &str,
    scratch: &Scratch,
    arguments: &[&str],
    part: &str,
) -> std::process::Output {
    let output_dir = scratch.output_arg();
    let child = grab_command()
        .args(["get", "-s", strategy, "-j", "1", "-o", &output_dir])
        .args(arguments)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let part = scratch.output().join(part);
    wait_for_bytes(&part, 20_000);
    ctrl_c(&child);
    child.wait_with_output().unwrap()
}

fn ctrl_c_lets_downloads_in_flight_finish(strategy: &str) {
    let server = FaultServer::start();
    let scratch = Scratch::new();
    let (first, second) = (
        server.url("/slow/first.bin"),
        server.url("/slow/second.bin"),
    );
    let output = interrupt_when_started(
        strategy,
        &scratch,
        &[&first, &second, "--grace", "10"],
        "first.bin.part",
    );
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted: no new downloads"), "{stderr}");
    // The one in flight finished; the next was never started, and the summary
    // says so.
    assert!(
        stderr.contains("downloaded 1 of 1 files, interrupted: 1 never started;"),
        "{stderr}"
    );
    assert_eq!(
        fs::read(scratch.output().join("first.bin")).unwrap(),
        body_of("first.bin-v0", 200_000)
    );
    assert_eq!(server.hits("/slow/second.bin"), 0);
    assert_clean(&scratch);
}

fn second_ctrl_c_still_finishes_the_report(strategy: &str) {
    let server = FaultServer::start();
    let scratch = Scratch::new();
    let report = scratch.root.path().join("report.json");
    let report_arg = report.display().to_string();
    let (first, slow) = (server.url("/png/first.png"), server.url("/slow/cut.bin"));
    let output_dir = scratch.output_arg();
    let child = grab_command()
        .args(["get", "-s", strategy, "-j", "1", "-o", &output_dir])
        .args([&first, &slow, "--grace", "30", "--report", &report_arg])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let part = scratch.output().join("cut.bin.part");
    wait_for_bytes(&part, 20_000);
    for _ in 0..2 {
        ctrl_c(&child);
        thread::sleep(Duration::from_millis(30));
    }
    let output = child.wait_with_output().unwrap();
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("second Ctrl-C"), "{stderr}");
    // Long before the grace period: the slow file is left for --continue.
    assert!(!scratch.output().join("cut.bin").exists());
    // The report is whole JSON, with every record so far and the summary.
    let text = fs::read_to_string(&report).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&text).expect(&text);
    let records = parsed["records"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{text}");
    assert_eq!(records[0]["outcome"], "saved");
    assert_eq!(records[0]["file"], "first.png");
    assert_eq!(parsed["summary"]["interrupted"], true);
    assert_eq!(parsed["summary"]["saved"], 1);
    assert_eq!(parsed["summary"]["stopped_in_flight"], 1, "{text}");
    assert_eq!(parsed["summary"]["parts_left"], 1, "{text}");
    assert_eq!(parsed["summary"]["never_started"], 0, "{text}");
    // Every byte received counts, the stopped file's too, not only the saved one's.
    let saved = fs::metadata(scratch.output().join("first.png"))
        .unwrap()
        .len();
    let bytes = parsed["summary"]["bytes"].as_u64().unwrap();
    assert!(
        bytes >= saved + 20_000,
        "{bytes} bytes for {saved} saved: {text}"
    );
    assert!(
        stderr.contains(
            "downloaded 1 of 1 files, interrupted: 1 stopped in flight (1 left as .part: resume with -c);"
        ),
        "{stderr}"
    );
}

fn ctrl_c_after_grace_leaves_parts_to_continue(strategy: &str) {
    let server = FaultServer::start();
    let scratch = Scratch::new();
    let url = server.url("/slow/cut.bin");
    let output = interrupt_when_started(
        strategy,
        &scratch,
        &[&url, "--grace", "0.1"],
        "cut.bin.part",
    );
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("grace period over"), "{stderr}");
    assert!(
        stderr.contains("1 stopped in flight (1 left as .part: resume with -c)"),
        "{stderr}"
    );
    assert!(
        !scratch.output().join("cut.bin").exists(),
        "no partial file under the final name"
    );
    assert!(
        scratch.output().join("cut.bin.part").exists(),
        "the part stays for --continue"
    );
    // A worker process of the stopped batch must not go on writing the part.
    thread::sleep(Duration::from_millis(200));
    let continued = get(strategy, &scratch, &[&url, "--continue"]);
    assert_eq!(
        continued.status.code(),
        Some(0),
        "{}",
        stderr_of(&continued)
    );
    assert_eq!(
        fs::read(scratch.output().join("cut.bin")).unwrap(),
        body_of("cut.bin-v0", 200_000)
    );
    assert!(
        server.seen().last().unwrap().range.is_some(),
        "resumed, not restarted"
    );
    assert_clean(&scratch);
}

fn per_host_caps_connections_to_one_host(strategy: &str) {
    let server = FaultServer::start();
    let scratch = Scratch::new();
    let urls: Vec<String> = (1..=8)
        .map(|number| server.url(&format!("/busy/b{number}")))
        .collect();
    let mut arguments: Vec<&str> = urls.iter().map(String::as_str).collect();
    arguments.extend(["-j", "8", "--per-host", "2"]);
    let output = get_with_jobs(strategy, &scratch, &arguments);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert_eq!(files_in(&scratch.output()).len(), 8);
    let most = server.most_at_once();
    // Sequential never has two; the others reach the cap and never pass it.
    let expected = if strategy == "sequential" { 1 } else { 2 };
    assert_eq!(most, expected, "{strategy}: {most} at once");
}

macro_rules! for_each_strategy {
    ($($strategy:ident => $name:literal),* $(,)?) => {$(
        mod $strategy {
            #[test]
            fn faults_cost_a_retry() { super::faults_cost_a_retry($name) }
            #[test]
            fn persistent_failures_are_reported_not_saved() { super::persistent_failures_are_reported_not_saved($name) }
            #[test]
            fn hostile_disposition_names_stay_inside() { super::hostile_disposition_names_stay_inside($name) }
            #[test]
            fn accept_refuses_html_in_disguise() { super::accept_refuses_html_in_disguise($name) }
            #[test]
            fn max_size_abandons_large_responses() { super::max_size_abandons_large_responses($name) }
            #[test]
            fn resume_after_kill_continues_the_part() { super::resume_after_kill_continues_the_part($name) }
            #[test]
            fn changed_file_is_never_spliced() { super::changed_file_is_never_spliced($name) }
            #[test]
            fn a_range_of_another_version_is_never_spliced() { super::a_range_of_another_version_is_never_spliced($name) }
            #[test]
            fn ignored_range_restarts_cleanly() { super::ignored_range_restarts_cleanly($name) }
            #[test]
            fn rerun_skips_complete_files_and_force_downloads_again() { super::rerun_skips_complete_files_and_force_downloads_again($name) }
            #[test]
            fn per_host_caps_connections_to_one_host() { super::per_host_caps_connections_to_one_host($name) }
            #[test]
            fn ctrl_c_lets_downloads_in_flight_finish() { super::ctrl_c_lets_downloads_in_flight_finish($name) }
            #[test]
            fn ctrl_c_after_grace_leaves_parts_to_continue() { super::ctrl_c_after_grace_leaves_parts_to_continue($name) }
            #[test]
            fn redirects_to_other_schemes_fail_clearly() { super::redirects_to_other_schemes_fail_clearly($name) }
            #[test]
            fn second_ctrl_c_still_finishes_the_report() { super::second_ctrl_c_still_finishes_the_report($name) }
            #[test]
            fn credentials_never_leak() { super::credentials_never_leak($name) }
            #[test]
            fn an_unresolvable_host_is_not_retried() { super::an_unresolvable_host_is_not_retried($name) }
            #[test]
            fn ctrl_c_with_nothing_left_undone_exits_0() { super::ctrl_c_with_nothing_left_undone_exits_0($name) }
        }
    )*};
}

for_each_strategy!(sequential => "sequential", threads => "threads", processes => "processes", asynchronous => "async");

/// A password in a URL and secret query values appear nowhere grab writes:
/// console lines (per-file and failure lines), debug logs (of worker processes
/// too), the manifest, the `--report` records and the `--json` summary. The
/// masked forms do appear, so each place did print the URL.
fn credentials_never_leak(strategy: &str) {
    let server = FaultServer::start();
    let scratch = Scratch::new();
    let with_secrets = |path: &str| {
        server
            .url(path)
            .replacen("http://", "http://ann:hunter2@", 1)
            + "?token=s3cret-t0ken&X-Amz-Signature=5ign4ture&size=2"
    };
    let saved = with_secrets("/flaky/0/kept");
    let failed = with_secrets("/flaky/9/lost");
    let report = scratch.root.path().join("report.jsonl");
    let report_arg = report.to_str().unwrap().to_string();
    let output_dir = scratch.output_arg();
    let output = grab_command()
        .args([
            "get",
            "-s",
            strategy,
            "-j",
            "2",
            "-o",
            &output_dir,
            "--retries",
            "1",
        ])
        .args([
            "--retry-wait",
            "0.05",
            "--json",
            "--report",
            &report_arg,
            "-v",
        ])
        .args([&saved, &failed])
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let manifest = fs::read_to_string(scratch.output().join(grab::fs::MANIFEST_NAME)).unwrap();
    let report = fs::read_to_string(&report).unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let masked = "ann:***@";
    for (place, text) in [
        ("stderr", stderr.as_str()),
        ("manifest", &manifest),
        ("report", &report),
        ("summary", &stdout),
    ] {
        for secret in ["hunter2", "s3cret-t0ken", "5ign4ture"] {
            assert!(!text.contains(secret), "{secret} in the {place}:\n{text}");
        }
        assert!(
            text.contains(masked) && text.contains("X-Amz-Signature=***"),
            "no masked URL in the {place}:\n{text}"
        );
    }
    assert!(
        stderr.contains("DEBUG"),
        "debug logs were written: {stderr}"
    );
    assert_eq!(files_in(&scratch.output()), ["kept.bin"]);
    // The masked manifest still recognises the URL: a re-run skips it.
    let again = get(strategy, &scratch, &[&saved]);
    assert!(
        stderr_of(&again).contains("nothing to download: 1 already complete"),
        "{}",
        stderr_of(&again)
    );
    assert_eq!(server.hits("/flaky/0/kept"), 1);
    scratch.assert_nothing_outside(&["report.jsonl"]);
    scratch.assert_no_part_files();
}

/// Waits until a part file exists with at least `bytes` in it (20 s at most).
pub fn wait_for_bytes(part: &std::path::Path, bytes: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while part
        .metadata()
        .map_or(true, |metadata| metadata.len() < bytes)
    {
        assert!(
            Instant::now() < deadline,
            "no part file of {bytes} bytes appeared"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

/// Sends SIGINT to a child, as Ctrl-C would.
pub(crate) fn ctrl_c(child: &std::process::Child) {
    let signalled = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(signalled.success());
}

/// Waits for a child at most `limit`, killing it past that: a hang fails the
/// test instead of holding up the run.
pub fn wait_at_most(mut child: std::process::Child, limit: Duration) -> std::process::Output {
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("grab still running after {limit:?}");
        }
        thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn redirects_to_other_schemes_fail_clearly(strategy: &str) {
    let server = FaultServer::start();
    let scratch = Scratch::new();
    let (file, ftp) = (
        server.url("/redirect-scheme/file"),
        server.url("/redirect-scheme/ftp"),
    );
    let relative = server.url("/redirect-scheme/relative");
    let output = get(strategy, &scratch, &[&file, &ftp, &relative]);
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("redirected to a file: URL"), "{stderr}");
    assert!(stderr.contains("redirected to a ftp: URL"), "{stderr}");
    assert!(!stderr.contains("attempts"), "final, not retried: {stderr}");
    assert_eq!(server.hits("/etc/passwd"), 0);
    // A relative redirect is followed; the name still comes from the URL asked.
    assert_eq!(files_in(&scratch.output()), ["relative.png"]);
    assert_clean(&scratch);
}

#[test]
fn manifest_names_outside_the_folder_are_ignored() {
    let server = FaultServer::start();
    let scratch = Scratch::new();
    let precious = scratch.write("outside.txt", "precious");
    fs::create_dir(scratch.output()).unwrap();
    let (first, second) = (server.url("/png/one.png"), server.url("/slow/two.bin"));
    let sha256 = {
        use sha2::{Digest, Sha256};
        grab::fs::hex(&Sha256::digest(b"precious"))
    };
    let lines = [
        serde_json::json!({"event": "saved", "url": first, "name": "../outside.txt",
            "size": 8, "sha256": sha256, "time": 0}),
        serde_json::json!({"event": "started", "url": second, "name": "/etc/grab-test",
            "etag": "\"two.bin-v0\""}),
    ];
    let manifest: String = lines.iter().map(|line| format!("{line}\n")).collect();
    fs::write(scratch.output().join(grab::fs::MANIFEST_NAME), manifest).unwrap();
    for extra in [&["--force"][..], &["-c"]] {
        let mut arguments = vec![first.as_str(), second.as_str()];
        arguments.extend_from_slice(extra);
        let output = get("threads", &scratch, &arguments);
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(0), "{stderr}");
        assert!(
            stderr.contains("ignored 2 manifest entries") && stderr.contains("../outside.txt"),
            "{stderr}"
        );
        assert_eq!(fs::read_to_string(&precious).unwrap(), "precious");
        assert!(!std::path::Path::new("/etc/grab-test").exists());
        scratch.assert_nothing_outside(&["outside.txt"]);
        scratch.assert_no_part_files();
        fs::remove_file(scratch.output().join("one.png")).unwrap();
        fs::remove_file(scratch.output().join("two.bin")).unwrap();
    }
}

// A link to /dev/zero: Unix's.
#[cfg(unix)]
#[test]
fn a_manifest_that_is_a_link_or_junk_is_an_error_not_a_hang() {
    let server = FaultServer::start();
    let url = server.url("/png/one.png");
    let scratch = Scratch::new();
    fs::create_dir(scratch.output()).unwrap();
    let manifest = scratch.output().join(grab::fs::MANIFEST_NAME);
    std::os::unix::fs::symlink("/dev/zero", &manifest).unwrap();
    let output_dir = scratch.output_arg();
    let run = || {
        let child = grab_command()
            .args(["get", "-o", &output_dir, &url])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        wait_at_most(child, Duration::from_secs(30))
    };
    let output = run();
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("symbolic link"), "{stderr}");
    fs::remove_file(&manifest).unwrap();
    // 64 MiB without a newline.
    let junk = fs::File::create(&manifest).unwrap();
    junk.set_len(64 << 20).unwrap();
    let output = run();
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("not a grab manifest"), "{stderr}");
    assert!(!scratch.output().join("one.png").exists());
}

#[test]
fn a_second_run_on_a_folder_in_use_refuses_and_names_the_first() {
    let server = FaultServer::start();
    let scratch = Scratch::new();
    let url = server.url("/slow/shared.bin");
    let output_dir = scratch.output_arg();
    let first = grab_command()
        .args(["get", "-o", &output_dir, &url])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let part = scratch.output().join("shared.bin.part");
    wait_for_bytes(&part, 0);
    for strategy in ["async", "processes"] {
        let second = get(strategy, &scratch, &[&url]);
        let stderr = stderr_of(&second);
        assert_eq!(second.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains(&format!("in use by another grab run (pid {})", first.id())),
            "{stderr}"
        );
    }
    let first = wait_at_most(first, Duration::from_secs(30));
    assert_eq!(first.status.code(), Some(0), "{}", stderr_of(&first));
    assert_eq!(
        fs::read(scratch.output().join("shared.bin")).unwrap(),
        body_of("shared.bin-v0", 200_000)
    );
    // The lock goes with its run; the folder is free again.
    assert!(!scratch.output().join(grab::fs::LOCK_NAME).exists());
    let again = get("threads", &scratch, &[&url]);
    assert_eq!(again.status.code(), Some(0), "{}", stderr_of(&again));
    assert_clean(&scratch);
}

/// A worker process killed after committing a file but before reporting it
/// (the test's environment makes every worker exit at that moment): the parent
/// finds the file through the manifest and reports it saved, and no retry
/// fetches it again under `NAME-1`.
#[test]
fn a_worker_killed_after_saving_leaves_one_file() {
    let server = FaultServer::start();
    let scratch = Scratch::new();
    let urls = [
        server.url("/flaky/0/one"),
        server.url("/flaky/0/two"),
        server.url("/flaky/0/three"),
    ];
    let output_dir = scratch.output_arg();
    let output = grab_command()
        .args([
            "get",
            "-s",
            "processes",
            "-j",
            "2",
            "-o",
            &output_dir,
            "--json",
        ])
        .args(&urls)
        .env(grab::http::EXIT_AFTER_SAVING_VARIABLE, "1")
        .output()
        .unwrap();
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("died after finishing"), "{stderr}");
    assert_eq!(
        files_in(&scratch.output()),
        ["one.bin", "three.bin", "two.bin"]
    );
    for id in ["one", "two", "three"] {
        assert_eq!(
            server.hits(&format!("/flaky/0/{id}")),
            1,
            "{id} fetched once"
        );
        assert_eq!(
            fs::read(scratch.output().join(format!("{id}.bin"))).unwrap(),
            body_of(id, SIZE)
        );
    }
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["saved"], 3, "{summary}");
    // A re-run finds all three complete from the manifest.
    let again = get("processes", &scratch, &[&urls[0], &urls[1], &urls[2]]);
    assert!(
        stderr_of(&again).contains("nothing to download: 3 already complete"),
        "{}",
        stderr_of(&again)
    );
    assert_clean(&scratch);
}

/// A host that does not resolve fails at once: no retries (a name that does
/// not resolve rarely does a second later), whichever client looked it up.
fn an_unresolvable_host_is_not_retried(strategy: &str) {
    let scratch = Scratch::new();
    let output = get(
        strategy,
        &scratch,
        &[
            "http://no-such-host.invalid/a.bin",
            "https://no-such-host.invalid/b.bin",
            "--retries",
            "3",
            "--json",
        ],
    );
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["failed"], 2, "{summary}");
    assert_eq!(summary["retries"], 0, "{summary}");
    assert_eq!(
        summary["failures"][0]["reason"], "could not resolve host",
        "{summary}"
    );
}

/// Ctrl-C while the last download runs, which then finishes within the
/// grace period: nothing was lost, so the run ends as if uninterrupted.
fn ctrl_c_with_nothing_left_undone_exits_0(strategy: &str) {
    let server = FaultServer::start();
    let scratch = Scratch::new();
    let only = server.url("/slow/only.bin");
    let output = interrupt_when_started(
        strategy,
        &scratch,
        &[&only, "--grace", "30"],
        "only.bin.part",
    );
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("downloaded 1 of 1 files, interrupted after the last download began: nothing left undone;"),
        "{stderr}"
    );
    assert_eq!(
        fs::read(scratch.output().join("only.bin")).unwrap(),
        body_of("only.bin-v0", 200_000)
    );
    assert_clean(&scratch);
}
