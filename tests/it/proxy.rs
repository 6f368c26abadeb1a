//! Proxies, the same for every strategy, through a real local HTTP proxy that
//! records what it is asked: a plain `http://` URL arrives as an absolute-form
//! `GET http://...`, an `https://` one as `CONNECT host:port`; `--proxy`,
//! curl's environment variables and `NO_PROXY` decide which go through it.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread;

use super::faults::{FaultServer, assert_clean, body_of};
use super::support::{Scratch, for_each_strategy, grab_command, stderr_of};
use super::tls::{Certificates, TLS_SIZE, TlsServer};

/// One request the proxy was asked: its request line and Proxy-Authorization.
#[derive(Debug, Clone)]
struct Asked {
    line: String,
    authorization: Option<String>,
}

/// A forwarding proxy on 127.0.0.1:0: absolute-form requests are sent on to
/// the origin, CONNECT opens a tunnel; one request per connection.
pub struct LocalProxy {
    pub address: String,
    asked: Arc<Mutex<Vec<Asked>>>,
}

impl LocalProxy {
    pub fn start() -> LocalProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let asked = Arc::new(Mutex::new(Vec::new()));
        let log = asked.clone();
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let log = log.clone();
                thread::spawn(move || {
                    let _ = relay(client, &log);
                });
            }
        });
        LocalProxy { address, asked }
    }

    pub fn lines(&self) -> Vec<String> {
        let asked = self.asked.lock().unwrap();
        asked.iter().map(|asked| asked.line.clone()).collect()
    }

    fn asked(&self) -> Vec<Asked> {
        self.asked.lock().unwrap().clone()
    }
}

fn relay(client: TcpStream, log: &Mutex<Vec<Asked>>) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut headers = Vec::new();
    let mut authorization = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.trim().eq_ignore_ascii_case("proxy-authorization")
        {
            authorization = Some(value.trim().to_string());
            continue;
        }
        headers.push(header);
    }
    let line = line.trim_end().to_string();
    log.lock().unwrap().push(Asked {
        line: line.clone(),
        authorization,
    });
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let mut client = client;
    let origin = if method == "CONNECT" {
        let origin = TcpStream::connect(target)?;
        client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
        origin
    } else {
        let Some(rest) = target.strip_prefix("http://") else {
            return client.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n");
        };
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let mut origin = TcpStream::connect(authority)?;
        let mut head = format!("{method} {path} HTTP/1.1\r\n");
        for header in headers {
            head += &header;
        }
        head += "\r\n";
        origin.write_all(head.as_bytes())?;
        origin
    };
    // Whatever the client sends next goes to the origin, and back.
    let (mut upstream, mut downstream) = (origin.try_clone()?, client.try_clone()?);
    let buffered = reader.buffer().to_vec();
    let forward = thread::spawn(move || {
        let _ = upstream.write_all(&buffered);
        let _ = std::io::copy(&mut reader, &mut upstream);
        let _ = upstream.shutdown(Shutdown::Write);
    });
    let mut origin = origin;
    let _ = copy_all(&mut origin, &mut downstream);
    let _ = downstream.shutdown(Shutdown::Both);
    let _ = forward.join();
    Ok(())
}

fn copy_all(from: &mut TcpStream, to: &mut TcpStream) -> std::io::Result<()> {
    let mut buffer = [0u8; 16 * 1024];
    loop {
        let count = from.read(&mut buffer)?;
        if count == 0 {
            return Ok(());
        }
        to.write_all(&buffer[..count])?;
    }
}

pub const PROXY_VARIABLES: [&str; 8] = [
    "http_proxy",
    "HTTP_PROXY",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
];

/// `grab get` of `urls` with `more` flags and only the proxy variables given.
fn get_proxied(
    strategy: &str,
    scratch: &Scratch,
    urls: &[&str],
    more: &[&str],
    environment: &[(&str, &str)],
    ca_file: &Path,
) -> std::process::Output {
    let output_dir = scratch.output_arg();
    let mut command = grab_command();
    command
        .args(["get", "-s", strategy, "-o", &output_dir, "--retries", "0"])
        .arg("--cacert")
        .arg(ca_file)
        .args(urls)
        .args(more);
    for name in PROXY_VARIABLES {
        command.env_remove(name);
    }
    for (name, value) in environment {
        command.env(name, value);
    }
    command.output().unwrap()
}

/// An origin over http, one over https, and the CA file that trusts the second.
struct Origins {
    plain: FaultServer,
    secure: TlsServer,
    keys: tempfile::TempDir,
}

impl Origins {
    fn start() -> Origins {
        let certificates = Certificates::new();
        let keys = tempfile::tempdir().unwrap();
        fs::write(keys.path().join("ca.pem"), &certificates.ca_pem).unwrap();
        Origins {
            plain: FaultServer::start(),
            secure: TlsServer::start(&certificates),
            keys,
        }
    }

    fn ca_file(&self) -> std::path::PathBuf {
        self.keys.path().join("ca.pem")
    }

    fn plain_authority(&self) -> &str {
        self.plain.base.trim_start_matches("http://")
    }
}

fn http_is_forwarded_in_absolute_form_and_https_tunnelled(strategy: &str) {
    let origins = Origins::start();
    let proxy = LocalProxy::start();
    let scratch = Scratch::new();
    let plain = origins.plain.url("/png/plain.png");
    let secure = origins.secure.url("/secure");
    let proxy_url = format!("http://user:pa%3Ass@{}", proxy.address);
    let output = get_proxied(
        strategy,
        &scratch,
        &[&plain, &secure],
        &["--proxy", &proxy_url],
        &[],
        &origins.ca_file(),
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert!(scratch.output().join("plain.png").exists());
    assert_eq!(
        fs::read(scratch.output().join("secure.bin")).unwrap(),
        body_of("secure", TLS_SIZE)
    );
    let mut lines = proxy.lines();
    lines.sort();
    assert_eq!(
        lines,
        [
            format!("CONNECT 127.0.0.1:{} HTTP/1.1", origins.secure.port),
            format!("GET {plain} HTTP/1.1"),
        ],
        "one absolute-form GET, one CONNECT, nothing else"
    );
    // The origin was reached through the proxy, in origin form.
    assert_eq!(origins.plain.hits("/png/plain.png"), 1);
    for asked in proxy.asked() {
        // user:pa:ss, from the proxy URL's percent-encoded password.
        assert_eq!(
            asked.authorization.as_deref(),
            Some("Basic dXNlcjpwYTpzcw=="),
            "{asked:?}"
        );
    }
    assert_clean(&scratch);
}

fn the_environment_and_no_proxy_decide_as_in_curl(strategy: &str) {
    let origins = Origins::start();
    let proxy = LocalProxy::start();
    let scratch = Scratch::new();
    let proxied = origins.plain.url("/png/proxied.png");
    // The same server by another name, which NO_PROXY lets go direct.
    let direct = format!(
        "http://localhost:{}/png/direct.png",
        origins.plain_authority().rsplit(':').next().unwrap()
    );
    let secure = origins.secure.url("/tunnelled");
    let address = format!("http://{}", proxy.address);
    let environment = [
        ("http_proxy", address.as_str()),
        ("HTTPS_PROXY", address.as_str()),
        ("NO_PROXY", "localhost,.example.org"),
    ];
    let output = get_proxied(
        strategy,
        &scratch,
        &[&proxied, &direct, &secure],
        &[],
        &environment,
        &origins.ca_file(),
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let mut lines = proxy.lines();
    lines.sort();
    assert_eq!(
        lines,
        [
            format!("CONNECT 127.0.0.1:{} HTTP/1.1", origins.secure.port),
            format!("GET {proxied} HTTP/1.1"),
        ]
    );
    assert_eq!(origins.plain.hits("/png/direct.png"), 1, "reached directly");
    // HTTP_PROXY in upper case is not read (a CGI server sets it from a
    // request header), as in curl; --proxy '' turns the variables off.
    let again = Scratch::new();
    let upper = origins.plain.url("/png/upper.png");
    let output = get_proxied(
        strategy,
        &again,
        &[&upper],
        &[],
        &[("HTTP_PROXY", &address)],
        &origins.ca_file(),
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let off = origins.secure.url("/off");
    let output = get_proxied(
        strategy,
        &again,
        &[&off],
        &["--proxy", ""],
        &[("HTTPS_PROXY", &address)],
        &origins.ca_file(),
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert_eq!(proxy.lines().len(), 2, "{:?}", proxy.lines());
    assert_clean(&scratch);
    assert_clean(&again);
    // A proxy nobody listens on is named as what failed, not the URL's host.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let output = get_proxied(
        strategy,
        &again,
        &[&origins.plain.url("/png/dead.png")],
        &[],
        &[("http_proxy", &dead)],
        &origins.ca_file(),
    );
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("the proxy {dead}/ failed: connection refused")),
        "{stderr}"
    );
}

for_each_strategy!(
    http_is_forwarded_in_absolute_form_and_https_tunnelled,
    the_environment_and_no_proxy_decide_as_in_curl,
);
