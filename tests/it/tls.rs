//! Which servers `grab get` trusts, the same for every strategy: a local TLS
//! server with a certificate made here, signed by a CA made here, is trusted
//! through `--cacert`, `--capath`, `SSL_CERT_FILE` or `SSL_CERT_DIR`, or with
//! `-k`; never by default (the CA is in no system store).

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::faults::{assert_clean, body_of};
use super::support::{Scratch, files_in, for_each_strategy, grab_command, stderr_of};

/// A CA and a certificate it signed for `localhost` and 127.0.0.1.
pub struct Certificates {
    pub ca_pem: String,
    /// The leaf and its key as PEM, for servers that read files (nghttpd).
    pub leaf_pem: String,
    pub key_pem: String,
    leaf: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

impl Certificates {
    pub fn new() -> Certificates {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        Certificates {
            ca_pem: ca.pem(),
            leaf_pem: leaf.pem(),
            key_pem: key.serialize_pem(),
            leaf: leaf.der().clone(),
            key: PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        }
    }
}

/// An https server on 127.0.0.1:0 that answers every GET with the body of
/// its path's last segment (see [`body_of`]), 10,000 bytes.
pub struct TlsServer {
    pub port: u16,
}

pub const TLS_SIZE: usize = 10_000;

impl Certificates {
    /// A server's TLS settings with the leaf certificate (no ALPN: HTTP/1.1).
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![self.leaf.clone()], self.key.clone_key())
            .unwrap();
        Arc::new(config)
    }
}

impl TlsServer {
    pub fn start(certificates: &Certificates) -> TlsServer {
        let config = certificates.server_config();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        // The thread ends with the test binary; each connection with its client.
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let config = config.clone();
                thread::spawn(move || {
                    let _ = serve(stream, config);
                });
            }
        });
        TlsServer { port }
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }
}

fn serve(stream: TcpStream, config: Arc<rustls::ServerConfig>) -> std::io::Result<()> {
    let connection = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(connection, stream);
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if tls.read(&mut byte)? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split_whitespace().nth(1).unwrap_or("/");
    let id = path.rsplit('/').next().unwrap_or("");
    let body = body_of(id, TLS_SIZE);
    let response = format!(
        "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-type: application/octet-stream\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    tls.write_all(response.as_bytes())?;
    tls.write_all(&body)?;
    tls.conn.send_close_notify();
    tls.flush()
}

/// A folder for the certificates, apart from the scratch area.
struct Keys {
    folder: tempfile::TempDir,
}

impl Keys {
    fn new(certificates: &Certificates) -> Keys {
        let folder = tempfile::tempdir().unwrap();
        fs::create_dir(folder.path().join("dir")).unwrap();
        fs::write(folder.path().join("ca.pem"), &certificates.ca_pem).unwrap();
        fs::write(folder.path().join("dir/ca.pem"), &certificates.ca_pem).unwrap();
        Keys { folder }
    }

    fn file(&self) -> PathBuf {
        self.folder.path().join("ca.pem")
    }

    fn dir(&self) -> PathBuf {
        self.folder.path().join("dir")
    }
}

/// Variables set for one run.
type Environment<'a> = &'a [(&'a str, &'a Path)];

/// `grab get` of `url` with `more` flags and `environment`, with no
/// certificate variables inherited from the test's own environment.
fn get_tls(
    strategy: &str,
    scratch: &Scratch,
    url: &str,
    more: &[&str],
    environment: Environment,
) -> std::process::Output {
    let output_dir = scratch.output_arg();
    let mut command = grab_command();
    command
        .args([
            "get",
            "-s",
            strategy,
            "-o",
            &output_dir,
            "--retries",
            "0",
            url,
        ])
        .args(more)
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR");
    for (name, value) in environment {
        command.env(name, value);
    }
    command.output().unwrap()
}

fn every_way_of_trusting_a_ca_works_and_nothing_else_does(strategy: &str) {
    let certificates = Certificates::new();
    let server = TlsServer::start(&certificates);
    let keys = Keys::new(&certificates);
    let (file, dir) = (keys.file(), keys.dir());
    let (file_arg, dir_arg) = (file.display().to_string(), dir.display().to_string());
    let ways: [(&str, &[&str], Environment); 5] = [
        ("cacert", &["--cacert", &file_arg], &[]),
        ("capath", &["--capath", &dir_arg], &[]),
        ("ssl-cert-file", &[], &[("SSL_CERT_FILE", &file)]),
        ("ssl-cert-dir", &[], &[("SSL_CERT_DIR", &dir)]),
        ("insecure", &["-k"], &[]),
    ];
    for (id, more, environment) in ways {
        let scratch = Scratch::new();
        let url = server.url(&format!("/{id}"));
        let output = get_tls(strategy, &scratch, &url, more, environment);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{id}: {}",
            stderr_of(&output)
        );
        assert_eq!(
            fs::read(scratch.output().join(format!("{id}.bin"))).unwrap(),
            body_of(id, TLS_SIZE),
            "{id}"
        );
        assert_clean(&scratch);
    }
    // The system's store does not know this CA: refused, nothing written.
    let scratch = Scratch::new();
    let url = server.url("/untrusted");
    let output = get_tls(strategy, &scratch, &url, &[], &[]);
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("failed {url}"))
            && stderr.contains(
                "the server's certificate is not trusted: its issuer is not among the trusted roots"
            ),
        "{stderr}"
    );
    assert!(!scratch.output().exists() || files_in(&scratch.output()).is_empty());
    assert_clean(&scratch);
    // A refused certificate is final: retries would meet the same one.
    let output = grab_command()
        .args(["get", "-s", strategy, "-o", &scratch.output_arg(), &url])
        .args(["--retries", "2", "--retry-wait", "0.05"])
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR")
        .output()
        .unwrap();
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("not trusted") && !stderr.contains("attempts)"),
        "{stderr}"
    );
    // --cacert replaces the default store, as in curl: another CA's file does
    // not let this server in.
    let other = Keys::new(&Certificates::new());
    let other_arg = other.file().display().to_string();
    let output = get_tls(strategy, &scratch, &url, &["--cacert", &other_arg], &[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr_of(&output));
}

for_each_strategy!(every_way_of_trusting_a_ca_works_and_nothing_else_does);

#[test]
fn a_missing_or_empty_cacert_is_a_usage_error_naming_it() {
    let scratch = Scratch::new();
    let missing = scratch.root.path().join("missing.pem");
    let empty = scratch.write("empty.pem", "not a certificate\n");
    for (path, expected) in [
        (
            missing.display().to_string(),
            "cannot read certificates from",
        ),
        (empty.clone(), "no certificates in"),
    ] {
        let output = get_tls(
            "async",
            &scratch,
            "https://127.0.0.1:9/x",
            &["--cacert", &path],
            &[],
        );
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(expected) && stderr.contains(&path),
            "{stderr}"
        );
    }
    scratch.assert_nothing_outside(&["empty.pem"]);
}
