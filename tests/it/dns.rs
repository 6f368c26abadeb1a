//! Name lookups through a real name server: a `dnsmasq` of the test's own
//! (Debian's, installed by ./test) on a free port, answering `gallery.test`
//! with 127.0.0.1 (any other name under `.test`: no such host), and logging every query it is asked.
//! grab is pointed at it with `--dns-servers`, for every strategy: many URLs
//! on one host are one query a record type (A, AAAA), and a dead name over
//! many URLs is one query too, each of its URLs failing by name.

use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::support::{Scratch, files_in, for_each_strategy, gallery, grab_command, stderr_of};
use super::tls::{Certificates, TLS_SIZE, TlsServer};

/// A dnsmasq of this test's own, its log in a file; killed on drop.
struct NameServer {
    port: u16,
    child: Child,
    log: tempfile::NamedTempFile,
}

impl NameServer {
    /// On a port free for UDP: dnsmasq binds TCP there too, which another
    /// test's listener may hold, so a port in use is left for another.
    fn start() -> NameServer {
        for _ in 0..20 {
            let port = UdpSocket::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            if let Some(server) = NameServer::start_on(port) {
                return server;
            }
        }
        panic!("dnsmasq found no free port in 20 tries");
    }

    /// None when the port is taken.
    fn start_on(port: u16) -> Option<NameServer> {
        let log = tempfile::NamedTempFile::new().unwrap();
        // Debian installs it in /usr/sbin, which a user's PATH may lack.
        let program = ["/usr/sbin/dnsmasq", "dnsmasq"]
            .into_iter()
            .find(|program| std::path::Path::new(program).exists())
            .unwrap_or("dnsmasq");
        let child = Command::new(program)
            .args([
                "--no-daemon",
                &format!("--port={port}"),
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                "--no-resolv",
                "--no-hosts",
                "--log-queries",
                "--log-facility=-",
                // Its own user, not dnsmasq's (which a container may lack).
                "--user=root",
                "--pid-file=",
                // Names under .test are answered here or not at all:
                // NXDOMAIN for any other, never a REFUSED for want of an
                // upstream server.
                "--local=/test/",
                // TTL 0, dnsmasq's default for its own names: grab's floor
                // keeps the answer.
                "--address=/gallery.test/127.0.0.1",
            ])
            .stdin(Stdio::null())
            .stdout(log.reopen().unwrap())
            .stderr(log.reopen().unwrap())
            .spawn()
            .expect("start dnsmasq (the Debian package dnsmasq-base; ./test installs it)");
        let server = NameServer { port, child, log };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !server.log().contains("started") {
            if server.log().contains("Address already in use") {
                return None;
            }
            assert!(
                Instant::now() < deadline,
                "dnsmasq did not start: {}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(server)
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap()
    }

    /// How many queries of `kind` (`A`, `AAAA`) it was asked about `name`.
    fn queries(&self, kind: &str, name: &str) -> usize {
        let asked = format!("query[{kind}] {name} from");
        self.log()
            .lines()
            .filter(|line| line.contains(&asked))
            .count()
    }
}

impl Drop for NameServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const FILES: usize = 24;

/// The gallery's images, as `gallery.test` names them.
fn urls(server: &grab::server::Background, count: usize) -> Vec<String> {
    let base = server.base_url().replace("127.0.0.1", "gallery.test");
    (0..count)
        .map(|index| format!("{base}/images/picture-{index}.jpg"))
        .collect()
}

/// Many URLs on one host: every file saved, one query of each record type.
fn a_host_is_asked_once_however_many_urls(strategy: &str) {
    let name_server = NameServer::start();
    let server = gallery();
    let scratch = Scratch::new();
    let list = urls(&server, FILES).join("\n") + "\n";
    let input = scratch.write("urls.txt", &list);
    let output = grab_command()
        .args(["get", "-s", strategy, "-j", "8", "-i", &input])
        .args(["-o", &scratch.output_arg()])
        .args(["--dns-servers", &name_server.address()])
        .output()
        .unwrap();
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(files_in(&scratch.output()).len(), FILES, "{stderr}");
    let log = name_server.log();
    assert_eq!(name_server.queries("A", "gallery.test"), 1, "{log}");
    assert!(name_server.queries("AAAA", "gallery.test") <= 1, "{log}");
}

/// A name that does not exist, over several URLs beside good ones: asked
/// once, each of its URLs failed with its URL named, the others saved.
fn a_dead_name_is_asked_once_and_each_of_its_urls_fails_by_name(strategy: &str) {
    let name_server = NameServer::start();
    let server = gallery();
    let scratch = Scratch::new();
    let port = server.base_url().rsplit(':').next().unwrap().to_string();
    let dead: Vec<String> = (0..6)
        .map(|index| format!("http://dead.test:{port}/images/gone-{index}.jpg"))
        .collect();
    let good = urls(&server, 4);
    let list = dead
        .iter()
        .chain(&good)
        .cloned()
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    let input = scratch.write("urls.txt", &list);
    let output = grab_command()
        .args(["get", "-s", strategy, "-j", "4", "-i", &input])
        .args(["-o", &scratch.output_arg(), "--retries", "2"])
        .args(["--dns-servers", &name_server.address()])
        .output()
        .unwrap();
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    for url in &dead {
        let line = stderr
            .lines()
            .find(|line| line.contains("failed") && line.contains(url.as_str()))
            .unwrap_or_else(|| panic!("no failure line for {url}: {stderr}"));
        assert!(line.contains("could not resolve host"), "{line}");
    }
    assert_eq!(files_in(&scratch.output()).len(), good.len(), "{stderr}");
    let log = name_server.log();
    assert_eq!(name_server.queries("A", "dead.test"), 1, "{log}");
    assert!(name_server.queries("AAAA", "dead.test") <= 1, "{log}");
    assert_eq!(name_server.queries("A", "gallery.test"), 1, "{log}");
}

/// https on one host: the async client (reqwest, and for the blocking
/// strategies the HTTP/2 bridge that tries an https origin first) and ureq
/// share the one answer.
fn https_clients_share_the_answer(strategy: &str) {
    let name_server = NameServer::start();
    let server = TlsServer::start(&Certificates::new());
    let scratch = Scratch::new();
    let list: String = (0..FILES)
        .map(|index| format!("https://gallery.test:{}/s{index}.bin\n", server.port))
        .collect();
    let input = scratch.write("urls.txt", &list);
    let output = grab_command()
        .args(["get", "-s", strategy, "-j", "4", "-k", "-i", &input])
        .args(["-o", &scratch.output_arg()])
        .args(["--dns-servers", &name_server.address()])
        .output()
        .unwrap();
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let saved = files_in(&scratch.output());
    assert_eq!(saved.len(), FILES, "{stderr}");
    for name in saved {
        let bytes = std::fs::read(scratch.output().join(&name)).unwrap();
        assert_eq!(bytes.len(), TLS_SIZE, "{name}");
    }
    let log = name_server.log();
    assert_eq!(name_server.queries("A", "gallery.test"), 1, "{log}");
}

for_each_strategy!(
    a_host_is_asked_once_however_many_urls,
    a_dead_name_is_asked_once_and_each_of_its_urls_fails_by_name,
    https_clients_share_the_answer,
);

/// `grab dataset` looks names up the same way: every row saved, one query.
#[test]
fn dataset_asks_once_per_host() {
    let name_server = NameServer::start();
    let server = gallery();
    let scratch = Scratch::new();
    let list = urls(&server, FILES).join("\n") + "\n";
    let table = scratch.write("urls.txt", &list);
    let output = super::support::grab(
        &[
            "dataset",
            &table,
            "-o",
            &scratch.output_arg(),
            "--progress",
            "none",
            "--dns-servers",
            &name_server.address(),
        ],
        None,
    );
    super::dataset::assert_ran(&output);
    let rows = super::dataset::samples(&scratch.output(), 1);
    assert_eq!(rows.len(), FILES);
    assert!(
        rows.values().all(|row| row["status"] == "success"),
        "{rows:?}"
    );
    let log = name_server.log();
    assert_eq!(name_server.queries("A", "gallery.test"), 1, "{log}");
    assert!(name_server.queries("AAAA", "gallery.test") <= 1, "{log}");
}

/// A wrong `--dns-servers` is a usage error naming the flag.
#[test]
fn a_wrong_server_list_is_refused() {
    let output = super::support::grab(
        &[
            "get",
            "http://gallery.test/",
            "--dns-servers",
            "dns.example",
        ],
        None,
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr_of(&output));
    assert!(stderr_of(&output).contains("--dns-servers"));
}
