//! The shared layers' rules, checked through the commands that use them: the
//! request flags mean in `grab dataset` what they mean in `grab get`, every
//! size flag takes the same suffixes, and every file grab writes has the
//! same mode.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::thread;
use std::time::Duration;

use super::dataset::{ImageServer, dataset, jpeg, samples};
use super::proxy::{LocalProxy, PROXY_VARIABLES};
use super::support::{Scratch, grab, grab_command, stderr_of};
use super::tls::{Certificates, TlsServer};

/// A server on 127.0.0.1:0 that answers every request with a 100,000-byte
/// body sent one byte every 100 ms: a trickle no idle timeout ever cuts.
fn trickling_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                        break;
                    }
                }
                let mut stream = stream;
                let head =
                    "HTTP/1.1 200 OK\r\ncontent-type: image/jpeg\r\ncontent-length: 100000\r\n\r\n";
                if stream.write_all(head.as_bytes()).is_err() {
                    return;
                }
                for _ in 0..100_000 {
                    thread::sleep(Duration::from_millis(100));
                    if stream.write_all(b"x").is_err() {
                        return;
                    }
                }
            });
        }
    });
    format!("http://{address}/trickle.jpg")
}

/// `grab dataset` of a one-URL txt table with `more` flags; the status and
/// error message of its one sample.
fn one_sample(url: &str, more: &[&str]) -> (String, String) {
    let scratch = Scratch::new();
    let table = scratch.write("urls.txt", &format!("{url}\n"));
    let mut flags = vec!["--output-format", "webdataset"];
    flags.extend_from_slice(more);
    let output = dataset(&scratch, &table, &flags);
    assert!(output.status.success(), "{}", stderr_of(&output));
    let rows = samples(&scratch.output(), 1);
    let row = &rows["000000000"];
    (
        row["status"].as_str().unwrap().to_string(),
        row["error_message"].as_str().unwrap_or("").to_string(),
    )
}

#[test]
fn dataset_cuts_a_trickle_at_max_time_and_at_speed_limit() {
    let url = trickling_server();
    // --timeout is far away: only the new limits can end these transfers.
    let (status, error) = one_sample(&url, &["--timeout", "600", "--max-time", "1"]);
    assert_eq!(status, "failed_to_download");
    assert!(error.contains("--max-time"), "{error}");
    let (status, error) = one_sample(
        &url,
        &[
            "--timeout",
            "600",
            "--speed-limit",
            "1k",
            "--speed-time",
            "1",
        ],
    );
    assert_eq!(status, "failed_to_download");
    assert!(error.contains("--speed-limit"), "{error}");
}

#[test]
fn dataset_goes_through_the_proxy_flag_and_variables_as_get_does() {
    let server = ImageServer::start(HashMap::from([("/a.jpg".to_string(), jpeg("a", 64, 48))]));
    let url = server.url("/a.jpg");
    let run = |flags: &[&str], environment: &[(&str, &str)]| {
        let scratch = Scratch::new();
        let table = scratch.write("urls.txt", &format!("{url}\n"));
        let output = scratch.output_arg();
        let mut command = grab_command();
        command.args(["dataset", &table, "-o", &output, "--progress", "none"]);
        command.args(["--output-format", "webdataset"]).args(flags);
        for variable in PROXY_VARIABLES {
            command.env_remove(variable);
        }
        command.envs(environment.iter().copied());
        let done = command.output().unwrap();
        assert!(done.status.success(), "{}", stderr_of(&done));
        samples(&scratch.output(), 1)["000000000"]["status"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let asked = format!("GET {url} HTTP/1.1");

    let proxy = LocalProxy::start();
    assert_eq!(run(&["--proxy", &proxy.address], &[]), "success");
    assert_eq!(proxy.lines(), vec![asked.clone()]);

    let proxy = LocalProxy::start();
    let variable = format!("http://{}", proxy.address);
    assert_eq!(run(&[], &[("http_proxy", &variable)]), "success");
    assert_eq!(proxy.lines(), vec![asked]);

    // NO_PROXY and --noproxy keep a host off the proxy, as for grab get.
    let proxy = LocalProxy::start();
    let environment = [
        ("http_proxy", format!("http://{}", proxy.address)),
        ("NO_PROXY", "127.0.0.1".to_string()),
    ];
    let environment: Vec<(&str, &str)> = environment
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect();
    assert_eq!(run(&[], &environment), "success");
    assert_eq!(
        run(&["--noproxy", "127.0.0.1"], &environment[..1]),
        "success"
    );
    assert!(proxy.lines().is_empty(), "{:?}", proxy.lines());
}

#[test]
fn dataset_trusts_as_get_does() {
    let certificates = Certificates::new();
    let server = TlsServer::start(&certificates);
    let scratch = Scratch::new();
    let ca = scratch.write("ca.pem", &certificates.ca_pem);
    let url = server.url("/body.bin");
    let unset = ["SSL_CERT_FILE", "SSL_CERT_DIR"];
    let run = |flags: &[&str]| {
        let scratch = Scratch::new();
        let table = scratch.write("urls.txt", &format!("{url}\n"));
        let output = scratch.output_arg();
        let mut command = grab_command();
        command.args(["dataset", &table, "-o", &output, "--progress", "none"]);
        command.args(["--output-format", "webdataset"]).args(flags);
        for variable in unset {
            command.env_remove(variable);
        }
        let done = command.output().unwrap();
        assert!(done.status.success(), "{}", stderr_of(&done));
        let rows = samples(&scratch.output(), 1);
        let row = &rows["000000000"];
        (
            row["status"].as_str().unwrap().to_string(),
            row["error_message"].as_str().unwrap_or("").to_string(),
        )
    };
    // The server's body is not an image: a sample that got as far as
    // decoding was downloaded, so the certificate was trusted.
    let (status, error) = run(&[]);
    assert_eq!(status, "failed_to_download", "{error}");
    assert!(error.to_lowercase().contains("certificate"), "{error}");
    for flags in [&["--cacert", ca.as_str()][..], &["-k"][..]] {
        let (status, error) = run(flags);
        assert_eq!(status, "failed_to_resize", "{flags:?}: {error}");
        assert!(error.starts_with("cannot decode"), "{flags:?}: {error}");
    }
    // A missing --cacert is a usage error before any download, as in get.
    let missing = scratch
        .root
        .path()
        .join("missing.pem")
        .display()
        .to_string();
    let table = scratch.write("urls.txt", &format!("{url}\n"));
    let refused = grab(&["dataset", &table, "--cacert", &missing], None);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr_of(&refused));
    assert!(stderr_of(&refused).contains("missing.pem"));
}

#[test]
fn every_size_flag_takes_the_same_suffixes() {
    let server = ImageServer::start(HashMap::from([("/a.jpg".to_string(), jpeg("a", 300, 200))]));
    let url = server.url("/a.jpg");
    // The JPEG is over a kibibyte: 1k is its limit, 10M is not.
    let (status, error) = one_sample(&url, &["--max-size", "1k"]);
    assert_eq!(status, "failed_to_download");
    assert!(error.contains("1024 bytes"), "{error}");
    assert_eq!(one_sample(&url, &["--max-size", "10M"]).0, "success");
    assert_eq!(one_sample(&url, &["--max-size", "1.5GiB"]).0, "success");

    let scratch = Scratch::new();
    let output = scratch.output_arg();
    let refused = grab(&["get", &url, "-o", &output, "--max-size", "1k"], None);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr_of(&refused));
    assert!(stderr_of(&refused).contains("1024 bytes"));
    let saved = grab(&["get", &url, "-o", &output, "--max-size", "1.5GiB"], None);
    assert_eq!(saved.status.code(), Some(0), "{}", stderr_of(&saved));
}

/// File modes: Unix's.
#[cfg(unix)]
mod modes {
    use std::path::Path;

    use super::super::support::gallery;
    use super::*;

    /// The mode a file made by this process gets: what every file grab writes
    /// should get too (0666 less the umask, which grab inherits).
    fn plain_mode(directory: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        let probe = directory.join("probe");
        std::fs::write(&probe, b"x").unwrap();
        let mode = std::fs::metadata(&probe).unwrap().permissions().mode() & 0o777;
        std::fs::remove_file(probe).unwrap();
        mode
    }

    /// Every file under `root`, the manifest and lock among them.
    fn every_file(root: &Path) -> Vec<std::path::PathBuf> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(root).unwrap() {
            let path = entry.unwrap().path();
            match path.is_dir() {
                true => found.extend(every_file(&path)),
                false => found.push(path),
            }
        }
        found
    }

    fn assert_modes(root: &Path, expected: u32) {
        use std::os::unix::fs::PermissionsExt;
        let files = every_file(root);
        assert!(!files.is_empty());
        for path in files {
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, expected, "{} has mode {mode:o}", path.display());
        }
    }

    // Modes are Unix's.
    #[test]
    fn every_file_grab_writes_has_one_mode() {
        let scratch = Scratch::new();
        let expected = plain_mode(scratch.root.path());
        let server = gallery();
        let base = server.base_url();
        let image = format!("{base}/images/a.jpg?w=64&h=48");

        // get: downloads, the manifest, the lock, a --report.
        let downloads = scratch.root.path().join("downloads");
        let report = scratch.root.path().join("reports/report.jsonl");
        std::fs::create_dir_all(report.parent().unwrap()).unwrap();
        let output = grab(
            &[
                "get",
                &image,
                &format!("{base}/images/b.png?w=33&h=17"),
                "-o",
                &downloads.display().to_string(),
                "--report",
                &report.display().to_string(),
            ],
            None,
        );
        assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
        assert_modes(&downloads, expected);
        assert_modes(report.parent().unwrap(), expected);

        // filter: the filtered images and its record.
        let filtered = scratch.root.path().join("filtered");
        let output = grab(
            &[
                "filter",
                "-f",
                "blur",
                "-o",
                &filtered.display().to_string(),
                &downloads.join("a.jpg").display().to_string(),
            ],
            None,
        );
        assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
        assert_modes(&filtered, expected);

        // dataset: shards of each format, their stats, stats.json.
        for format in ["files", "webdataset", "parquet"] {
            let table = scratch.write("urls.txt", &format!("{image}\n"));
            let shards = scratch.root.path().join(format!("dataset-{format}"));
            let output = grab(
                &[
                    "dataset",
                    &table,
                    "-o",
                    &shards.display().to_string(),
                    "--output-format",
                    format,
                    "--progress",
                    "none",
                ],
                None,
            );
            assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
            assert!(shards.join("stats.json").exists());
            assert_modes(&shards, expected);
        }
    }
}
