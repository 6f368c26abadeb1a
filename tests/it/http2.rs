//! HTTP/2 for every strategy, through a real `nghttpd` (Debian's
//! nghttp2-server, which speaks HTTP/2 only) with a certificate made here:
//! files come byte-identical, several requests share one connection (its
//! verbose log names the connection that carried each request), `--http1.1`
//! is refused by it and works against an HTTP/1.1 server, and
//! `--http2-prior-knowledge` speaks cleartext h2. Then `https://` proxies: a
//! CONNECT proxy over TLS made here, its certificate trusted by `--cacert`.

use std::collections::HashMap;
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::faults::body_of;
use super::support::{Scratch, for_each_strategy, grab_command, stderr_of};
use super::tls::{Certificates, TLS_SIZE, TlsServer};

/// A free port on 127.0.0.1, for a server that binds its own.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An nghttpd of this test's own serving a folder of files, over TLS with
/// the given certificate or in cleartext; its verbose log in a file; killed
/// on drop.
struct Nghttpd {
    port: u16,
    tls: bool,
    child: Child,
    log: tempfile::NamedTempFile,
    folder: tempfile::TempDir,
}

/// The files every nghttpd here serves: `f0.bin`... with distinct bodies.
fn documents(count: usize) -> Vec<(String, Vec<u8>)> {
    (0..count)
        .map(|index| {
            let name = format!("f{index}.bin");
            let body = body_of(&name, 20_000 + index * 1_000);
            (name, body)
        })
        .collect()
}

impl Nghttpd {
    fn start(certificates: Option<&Certificates>, files: &[(String, Vec<u8>)]) -> Nghttpd {
        let folder = tempfile::tempdir().unwrap();
        let documents = folder.path().join("www");
        fs::create_dir(&documents).unwrap();
        for (name, body) in files {
            fs::write(documents.join(name), body).unwrap();
        }
        let port = free_port();
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut command = Command::new("nghttpd");
        command
            .args(["-v", "-a", "127.0.0.1", "-d"])
            .arg(&documents)
            .arg(port.to_string());
        match certificates {
            Some(certificates) => {
                let (key, certificate) = (
                    folder.path().join("key.pem"),
                    folder.path().join("cert.pem"),
                );
                fs::write(&key, &certificates.key_pem).unwrap();
                fs::write(&certificate, &certificates.leaf_pem).unwrap();
                command.arg(key).arg(certificate);
            }
            None => {
                command.arg("--no-tls");
            }
        }
        let child = command
            .stdout(log.reopen().unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nghttpd (the Debian package nghttp2-server; ./test installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nghttpd did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Nghttpd {
            port,
            tls: certificates.is_some(),
            child,
            log,
            folder,
        }
    }

    fn url(&self, path: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}{path}", self.port)
    }

    /// Each request's path, by the connection that carried it: nghttpd logs
    /// `[id=N] ... recv (stream_id=S) :path: /x` for each stream it is sent.
    fn requests_by_connection(&self) -> HashMap<String, Vec<String>> {
        let mut connections: HashMap<String, Vec<String>> = HashMap::new();
        for line in fs::read_to_string(self.log.path()).unwrap().lines() {
            let Some((_, path)) = line.split_once(":path: ") else {
                continue;
            };
            let Some(connection) = line
                .strip_prefix("[id=")
                .and_then(|rest| rest.split(']').next())
            else {
                continue;
            };
            connections
                .entry(connection.to_string())
                .or_default()
                .push(path.to_string());
        }
        connections
    }
}

impl Drop for Nghttpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = &self.folder;
    }
}

/// A CA file holding each of `certificates`' CAs.
fn ca_bundle(folder: &Path, certificates: &[&Certificates]) -> PathBuf {
    let path = folder.join("ca.pem");
    let bundle: String = certificates
        .iter()
        .map(|certificates| certificates.ca_pem.as_str())
        .collect();
    fs::write(&path, bundle).unwrap();
    path
}

/// `grab get -s STRATEGY` of `urls` with `more` flags, trusting `ca_file`.
fn get(
    strategy: &str,
    scratch: &Scratch,
    urls: &[String],
    ca_file: &Path,
    more: &[&str],
) -> Output {
    let mut command = grab_command();
    command
        .args(["get", "-s", strategy, "-j", "4", "--retries", "0", "-o"])
        .arg(scratch.output())
        .arg("--cacert")
        .arg(ca_file)
        .args(urls)
        .args(more)
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR");
    for variable in super::proxy::PROXY_VARIABLES {
        command.env_remove(variable);
    }
    command.output().unwrap()
}

/// Every file of `files` saved under its name, byte for byte.
fn assert_saved(scratch: &Scratch, files: &[(String, Vec<u8>)]) {
    for (name, body) in files {
        let saved = fs::read(scratch.output().join(name)).unwrap_or_default();
        assert!(saved == *body, "{name}: {} bytes saved", saved.len());
    }
    scratch.assert_no_part_files();
}

/// Several requests rode one connection, and every file was asked for.
fn assert_multiplexed(server: &Nghttpd, files: &[(String, Vec<u8>)]) {
    let connections = server.requests_by_connection();
    let mut asked: Vec<String> = connections.values().flatten().cloned().collect();
    asked.sort();
    let mut expected: Vec<String> = files.iter().map(|(name, _)| format!("/{name}")).collect();
    expected.sort();
    assert_eq!(asked, expected, "each file asked for once, over HTTP/2");
    assert!(
        connections.values().any(|paths| paths.len() >= 2),
        "no connection carried more than one request: {connections:?}"
    );
}

fn files_come_whole_over_http2_several_to_a_connection(strategy: &str) {
    let certificates = Certificates::new();
    let files = documents(8);
    let server = Nghttpd::start(Some(&certificates), &files);
    let scratch = Scratch::new();
    let ca_file = ca_bundle(scratch.root.path(), &[&certificates]);
    let urls: Vec<String> = files
        .iter()
        .map(|(name, _)| server.url(&format!("/{name}")))
        .collect();
    let output = get(strategy, &scratch, &urls, &ca_file, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert_saved(&scratch, &files);
    assert_multiplexed(&server, &files);
    scratch.assert_nothing_outside(&["ca.pem"]);
}

fn http1_1_is_refused_by_an_http2_only_server_and_works_with_http1(strategy: &str) {
    let certificates = Certificates::new();
    let files = documents(1);
    let server = Nghttpd::start(Some(&certificates), &files);
    let scratch = Scratch::new();
    let ca_file = ca_bundle(scratch.root.path(), &[&certificates]);
    let url = server.url("/f0.bin");
    let output = get(
        strategy,
        &scratch,
        std::slice::from_ref(&url),
        &ca_file,
        &["--http1.1"],
    );
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("failed {url}")), "{stderr}");
    assert!(
        server.requests_by_connection().is_empty(),
        "nghttpd was sent a request"
    );
    assert!(!scratch.output().join("f0.bin").exists());
    scratch.assert_no_part_files();
    // An HTTP/1.1 server is spoken to as before.
    let http1 = TlsServer::start(&certificates);
    let url = http1.url("/one");
    let output = get(strategy, &scratch, &[url], &ca_file, &["--http1.1"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert_eq!(
        fs::read(scratch.output().join("one.bin")).unwrap(),
        body_of("one", TLS_SIZE)
    );
    scratch.assert_nothing_outside(&["ca.pem"]);
}

fn prior_knowledge_speaks_cleartext_http2(strategy: &str) {
    // More files than -j 4's workers: some worker asks for two.
    let files = documents(8);
    let server = Nghttpd::start(None, &files);
    let scratch = Scratch::new();
    let ca_file = ca_bundle(scratch.root.path(), &[&Certificates::new()]);
    let urls: Vec<String> = files
        .iter()
        .map(|(name, _)| server.url(&format!("/{name}")))
        .collect();
    let output = get(
        strategy,
        &scratch,
        &urls,
        &ca_file,
        &["--http2-prior-knowledge"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert_saved(&scratch, &files);
    assert_multiplexed(&server, &files);
    scratch.assert_nothing_outside(&["ca.pem"]);
}

/// A proxy on 127.0.0.1:0 spoken to over TLS: `CONNECT host:port` opens a
/// tunnel, an absolute-form `GET http://...` is sent on to its origin; it
/// records each request line.
struct TlsProxy {
    port: u16,
    lines: Arc<Mutex<Vec<String>>>,
    _runtime: tokio::runtime::Runtime,
}

impl TlsProxy {
    fn start(certificates: &Certificates) -> TlsProxy {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let acceptor = tokio_rustls::TlsAcceptor::from(certificates.server_config());
        let lines = Arc::new(Mutex::new(Vec::new()));
        let log = lines.clone();
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            while let Ok((stream, _)) = listener.accept().await {
                let (acceptor, log) = (acceptor.clone(), log.clone());
                tokio::spawn(async move {
                    if let Ok(stream) = acceptor.accept(stream).await {
                        let _ = relay(stream, &log).await;
                    }
                });
            }
        });
        TlsProxy {
            port,
            lines,
            _runtime: runtime,
        }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    fn lines(&self) -> Vec<String> {
        let mut lines = self.lines.lock().unwrap().clone();
        lines.sort();
        lines
    }
}

async fn relay(
    client: tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    log: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let mut client = BufReader::new(client);
    let mut line = String::new();
    client.read_line(&mut line).await?;
    let mut headers = String::new();
    loop {
        let mut header = String::new();
        if client.read_line(&mut header).await? == 0 || header.trim().is_empty() {
            break;
        }
        if !header.to_ascii_lowercase().starts_with("proxy-") {
            headers += &header;
        }
    }
    let line = line.trim_end().to_string();
    log.lock().unwrap().push(line.clone());
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let mut origin = if method == "CONNECT" {
        let origin = tokio::net::TcpStream::connect(target).await?;
        client
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await?;
        origin
    } else {
        let Some(rest) = target.strip_prefix("http://") else {
            return client
                .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                .await;
        };
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let mut origin = tokio::net::TcpStream::connect(authority).await?;
        let head = format!("{method} {path} HTTP/1.1\r\n{headers}\r\n");
        origin.write_all(head.as_bytes()).await?;
        origin
    };
    tokio::io::copy_bidirectional(&mut client, &mut origin).await?;
    Ok(())
}

fn an_https_proxy_carries_http2_and_plain_http(strategy: &str) {
    let (origin_certificates, proxy_certificates) = (Certificates::new(), Certificates::new());
    let files = documents(3);
    let server = Nghttpd::start(Some(&origin_certificates), &files);
    let plain = super::support::gallery();
    let proxy = TlsProxy::start(&proxy_certificates);
    let scratch = Scratch::new();
    // One --cacert for both: the proxy's certificate is checked as servers' are.
    let ca_file = ca_bundle(
        scratch.root.path(),
        &[&origin_certificates, &proxy_certificates],
    );
    let mut urls: Vec<String> = files
        .iter()
        .map(|(name, _)| server.url(&format!("/{name}")))
        .collect();
    let plain_url = format!("{}/files/plain.bin?size=5000", plain.base_url());
    urls.push(plain_url.clone());
    let output = get(
        strategy,
        &scratch,
        &urls,
        &ca_file,
        &["--proxy", &proxy.url()],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert_eq!(
        fs::read(scratch.output().join("plain.bin")).unwrap().len(),
        5000
    );
    assert_saved(&scratch, &files);
    let lines = proxy.lines();
    let tunnels = lines
        .iter()
        .filter(|line| line.starts_with("CONNECT "))
        .count();
    assert!(
        tunnels >= 1
            && lines.iter().all(|line| {
                *line == format!("CONNECT 127.0.0.1:{} HTTP/1.1", server.port)
                    || *line == format!("GET {plain_url} HTTP/1.1")
            })
            && lines.contains(&format!("GET {plain_url} HTTP/1.1")),
        "{lines:?}"
    );
    assert_eq!(
        server.requests_by_connection().values().flatten().count(),
        files.len(),
        "every file came from nghttpd through the tunnel"
    );
    // A CA file without the proxy's CA: the proxy is not trusted.
    let again = Scratch::new();
    let origin_only = ca_bundle(again.root.path(), &[&origin_certificates]);
    let url = server.url("/f0.bin");
    let output = get(
        strategy,
        &again,
        std::slice::from_ref(&url),
        &origin_only,
        &["--proxy", &proxy.url()],
    );
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("failed {url}")) && stderr.to_lowercase().contains("certificate"),
        "{stderr}"
    );
    again.assert_no_part_files();
}

for_each_strategy!(
    files_come_whole_over_http2_several_to_a_connection,
    http1_1_is_refused_by_an_http2_only_server_and_works_with_http1,
    prior_knowledge_speaks_cleartext_http2,
    an_https_proxy_carries_http2_and_plain_http,
);
