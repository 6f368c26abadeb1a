//! SOCKS5 proxies through a real `microsocks` (Debian's package, started by
//! each test on a free port), for every strategy: `socks5h://` lets the proxy
//! resolve names, `socks5://` resolves them here; `--proxy` and `ALL_PROXY`
//! alike, https tunnelled the same way as http.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::support::{Scratch, for_each_strategy, gallery, grab_command, stderr_of};
use super::tls::{Certificates, TLS_SIZE, TlsServer};

/// A microsocks of this test's own, its log (one line per connection it
/// makes, naming the host it was asked for) in a file; killed on drop.
struct Socks {
    port: u16,
    child: Child,
    log: tempfile::NamedTempFile,
}

impl Socks {
    fn start() -> Socks {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new("microsocks")
            .args(["-i", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .expect("start microsocks (the Debian package microsocks; ./test installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "microsocks did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Socks { port, child, log }
    }

    fn url(&self, scheme: &str) -> String {
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The targets it connected to, as it was asked for them (`host:port`).
    fn targets(&self) -> Vec<String> {
        std::fs::read_to_string(self.log.path())
            .unwrap()
            .lines()
            .filter_map(|line| line.split("connected to ").nth(1))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Socks {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn get(strategy: &str, url: &str, flags: &[&str], environment: &[(&str, &str)]) -> Scratch {
    let scratch = Scratch::new();
    let mut command = grab_command();
    command.args(["get", "-s", strategy, "-o", &scratch.output_arg(), url]);
    command.args(flags);
    for variable in super::proxy::PROXY_VARIABLES {
        command.env_remove(variable);
    }
    command.envs(environment.iter().copied());
    let output = command.output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    scratch
}

fn socks5_carries_http_and_https(strategy: &str) {
    let server = gallery();
    let port = server.address().port();
    let socks = Socks::start();

    // socks5h: the name goes to the proxy, which resolves it.
    let by_name = format!("http://localhost:{port}/files/s.bin?size=50000");
    let scratch = get(strategy, &by_name, &["--proxy", &socks.url("socks5h")], &[]);
    assert_eq!(
        std::fs::read(scratch.output().join("s.bin")).unwrap().len(),
        50_000
    );
    assert_eq!(socks.targets(), [format!("localhost:{port}")]);

    // socks5 from ALL_PROXY: the address is resolved here.
    let by_address = format!("http://127.0.0.1:{port}/files/t.bin?size=20000");
    let all_proxy = socks.url("socks5");
    let scratch = get(strategy, &by_address, &[], &[("ALL_PROXY", &all_proxy)]);
    assert!(scratch.output().join("t.bin").is_file());
    assert_eq!(socks.targets().len(), 2, "{:?}", socks.targets());
    assert_eq!(socks.targets()[1], format!("127.0.0.1:{port}"));

    // https through the same tunnel, the certificate checked end to end.
    let certificates = Certificates::new();
    let tls = TlsServer::start(&certificates);
    let ca = Scratch::new();
    let ca_file = ca.write("ca.pem", &certificates.ca_pem);
    let scratch = get(
        strategy,
        &tls.url("/secure.bin"),
        &["--proxy", &socks.url("socks5h"), "--cacert", &ca_file],
        &[],
    );
    assert_eq!(
        std::fs::read(scratch.output().join("secure.bin"))
            .unwrap()
            .len(),
        TLS_SIZE
    );
    assert_eq!(socks.targets().len(), 3, "{:?}", socks.targets());
}

for_each_strategy!(socks5_carries_http_and_https);
