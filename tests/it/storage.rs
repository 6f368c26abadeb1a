//! `grab dataset` on object storage: tables read from and shards written to a
//! real S3-compatible server (`moto_server`, which `./test` installs, started
//! by each test on a free port of 127.0.0.1 and killed when it ends), compared
//! byte for byte with the same run into a local folder. The test reads the
//! bucket with plain HTTP requests (path-style, naming the account grab
//! uses; moto does not check signatures), not through grab's client.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::dataset::{ImageServer, assert_ran, many_routes, shard_bytes};
use super::support::{Scratch, grab, grab_command, stderr_of};

/// What moto needs of an Authorization header to treat a request as the
/// account's (anonymous ones get 403): the access key, not a valid signature.
const AUTHORIZATION: &str = "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0";

/// A moto_server of this test's own; killed on drop.
struct S3Server {
    child: Child,
    port: u16,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl S3Server {
    fn start() -> S3Server {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server (pip install 'moto[server]', as ./test does)");
        let mut server = S3Server { child, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        while ureq::get(&server.endpoint()).call().is_err() {
            assert!(
                server.child.try_wait().unwrap().is_none(),
                "moto_server exited"
            );
            assert!(Instant::now() < deadline, "moto_server did not start");
            thread::sleep(Duration::from_millis(100));
        }
        server
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn create_bucket(&self, bucket: &str) {
        ureq::put(&format!("{}/{bucket}", self.endpoint()))
            .header("authorization", AUTHORIZATION)
            .send_empty()
            .unwrap();
    }

    fn put(&self, bucket: &str, key: &str, bytes: &[u8]) {
        ureq::put(&format!("{}/{bucket}/{key}", self.endpoint()))
            .header("content-type", "application/octet-stream")
            .header("authorization", AUTHORIZATION)
            .send(bytes)
            .unwrap();
    }

    fn get(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let mut response = ureq::get(&format!("{}/{bucket}/{key}", self.endpoint()))
            .header("authorization", AUTHORIZATION)
            .config()
            .http_status_as_error(false)
            .build()
            .call()
            .unwrap();
        match response.status().as_u16() {
            200 => Some(
                response
                    .body_mut()
                    .with_config()
                    .limit(1 << 30)
                    .read_to_vec()
                    .unwrap(),
            ),
            404 => None,
            status => panic!("GET {bucket}/{key}: HTTP {status}"),
        }
    }

    /// The keys under `prefix`, sorted (ListObjectsV2; the tests' few keys
    /// fit one page).
    fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let url = format!("{}/{bucket}?list-type=2&prefix={prefix}", self.endpoint());
        let listing = ureq::get(&url)
            .header("authorization", AUTHORIZATION)
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        assert!(
            listing.contains("<IsTruncated>false</IsTruncated>"),
            "{listing}"
        );
        let mut keys: Vec<String> = listing
            .split("<Key>")
            .skip(1)
            .map(|rest| rest.split("</Key>").next().unwrap().to_string())
            .collect();
        keys.sort();
        keys
    }

    /// Every shard object under `prefix` (not the stats, which hold
    /// timings, nor the settings record), by name below the prefix, as
    /// `shard_bytes` gives a folder's.
    fn shard_bytes(&self, bucket: &str, prefix: &str) -> Vec<(String, Vec<u8>)> {
        self.keys(bucket, prefix)
            .into_iter()
            .filter(|key| !key.ends_with("stats.json") && !key.ends_with("settings.json"))
            .map(|key| {
                let bytes = self.get(bucket, &key).unwrap();
                (key[prefix.len()..].to_string(), bytes)
            })
            .collect()
    }

    fn stats(&self, bucket: &str, prefix: &str) -> Value {
        let bytes = self
            .get(bucket, &format!("{prefix}stats.json"))
            .expect("stats.json in the bucket");
        serde_json::from_slice(&bytes).unwrap()
    }

    /// grab, reaching this server through the standard variables, with
    /// `temporary` as its temporary and current folder (a bucket's local
    /// cache goes there: a folder of another machine's, as far as a run can
    /// tell).
    fn grab(&self, temporary: &Path) -> Command {
        let mut command = grab_command();
        command
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL", self.endpoint())
            .env("AWS_ALLOW_HTTP", "true")
            .env("TMPDIR", temporary)
            // So a folder named after a URL (`s3:`) would show there.
            .current_dir(temporary)
            .stdin(Stdio::null());
        command
    }

    fn run(&self, temporary: &Path, arguments: &[&str]) -> Output {
        self.grab(temporary)
            .args(arguments)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .unwrap()
    }
}

/// A folder for a run's temporary files, in the scratch area.
fn temporary(scratch: &Scratch, name: &str) -> PathBuf {
    let folder = scratch.root.path().join(name);
    std::fs::create_dir_all(&folder).unwrap();
    folder
}

fn urls(server: &ImageServer, paths: &[String]) -> String {
    paths.iter().map(|path| server.url(path) + "\n").collect()
}

#[test]
fn a_table_read_from_a_bucket_and_shards_written_to_it_match_a_local_run() {
    let (routes, paths) = many_routes(25, None);
    let images = ImageServer::start(routes);
    let s3 = S3Server::start();
    s3.create_bucket("data");
    let scratch = Scratch::new();
    // Two tables in a folder: each starts a shard, in name order.
    let tables = scratch.root.path().join("tables");
    std::fs::create_dir(&tables).unwrap();
    let csv = |paths: &[String]| format!("url\n{}", urls(&images, paths));
    let (first, second) = (csv(&paths[..15]), csv(&paths[15..]));
    std::fs::write(tables.join("a.csv"), &first).unwrap();
    std::fs::write(tables.join("b.csv"), &second).unwrap();
    s3.put("data", "tables/a.csv", first.as_bytes());
    s3.put("data", "tables/b.csv", second.as_bytes());
    // Not a table, as in a local folder: Spark's marker.
    s3.put("data", "tables/_SUCCESS", b"");
    let cache = temporary(&scratch, "tmp");
    for format in ["webdataset", "parquet"] {
        let flags = ["--output-format", format, "--samples-per-shard", "10"];
        let local = scratch.root.path().join(format!("local-{format}"));
        let mut arguments = vec!["dataset", tables.to_str().unwrap(), "-o"];
        arguments.push(local.to_str().unwrap());
        arguments.extend(["--progress", "none"]);
        arguments.extend(flags);
        assert_ran(&grab(&arguments, None));

        let output = format!("s3://data/out-{format}");
        let mut arguments = vec!["dataset", "s3://data/tables/", "-o", &output];
        arguments.extend(["--progress", "none"]);
        arguments.extend(flags);
        let run = s3.run(&cache, &arguments);
        assert_ran(&run);

        let prefix = format!("out-{format}/");
        let in_bucket = s3.shard_bytes("data", &prefix);
        let in_folder = shard_bytes(&local);
        let names: Vec<&str> = in_bucket.iter().map(|(name, _)| name.as_str()).collect();
        let expected: &[&str] = match format {
            "webdataset" => &[
                "00000.parquet",
                "00000.tar",
                "00001.parquet",
                "00001.tar",
                "00002.parquet",
                "00002.tar",
            ],
            _ => &["00000.parquet", "00001.parquet", "00002.parquet"],
        };
        assert_eq!(names, expected);
        assert!(
            in_bucket == in_folder,
            "{format}: the bucket's shards differ from the local run's"
        );
        for shard in ["00000", "00001", "00002"] {
            let stats = s3.get("data", &format!("{prefix}{shard}_stats.json"));
            assert!(stats.is_some(), "{shard}'s stats are missing");
        }
        let stats = s3.stats("data", &prefix);
        assert_eq!(stats["count"], 25, "{stats}");
        assert_eq!(stats["successes"], 25, "{stats}");
        assert_eq!(stats["shards"], 3, "{stats}");
    }
    // Nothing was written to a local folder named after the URL: the
    // runs' current folder holds only the cache.
    let left = std::fs::read_dir(&cache)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect::<Vec<_>>();
    assert_eq!(left, ["grab-cache"]);
}

/// Samples spooled (whole records) in any bucket's local cache under `temporary`.
fn spooled(temporary: &Path) -> u64 {
    let Ok(caches) = std::fs::read_dir(temporary.join("grab-cache")) else {
        return 0;
    };
    caches
        .flatten()
        .filter_map(|cache| std::fs::read_dir(cache.path().join(".grab-dataset/spool")).ok())
        .flat_map(|shards| shards.flatten())
        .map(|shard| grab::fs::records_in(&shard.path()).unwrap_or(0))
        .sum()
}

#[test]
fn a_run_into_a_bucket_killed_mid_run_resumes_to_the_same_bytes() {
    let (routes, paths) = many_routes(60, Some(Duration::from_millis(40)));
    let images = ImageServer::start(routes);
    let s3 = S3Server::start();
    s3.create_bucket("data");
    let scratch = Scratch::new();
    let table = scratch.write("urls.txt", &urls(&images, &paths));
    let flags = [
        "-j",
        "3",
        "--output-format",
        "webdataset",
        "--samples-per-shard",
        "10",
        "--progress",
        "none",
    ];

    let whole = scratch.root.path().join("whole");
    let mut arguments = vec!["dataset", table.as_str(), "-o", whole.to_str().unwrap()];
    arguments.extend(flags);
    assert_ran(&grab(&arguments, None));

    let cache = temporary(&scratch, "tmp");
    let mut arguments = vec!["dataset", table.as_str(), "-o", "s3://data/run"];
    arguments.extend(flags);
    let mut child = s3
        .grab(&cache)
        .args(&arguments)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    // Kill once a shard is in the bucket and samples of others are spooled.
    while !(spooled(&cache) >= 3 && s3.get("data", "run/00000_stats.json").is_some()) {
        assert!(Instant::now() < deadline, "the run never got going");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be killed"
        );
        thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let keys = s3.keys("data", "run/");
    assert!(
        !keys.contains(&"run/00005_stats.json".to_string()),
        "killed too late to prove anything"
    );
    // A shard is in the bucket exactly when its stats are.
    for key in &keys {
        if let Some(shard) = key.strip_suffix(".tar") {
            let stats = format!("{shard}_stats.json");
            assert!(keys.contains(&stats), "{key} without its stats");
        }
    }

    let resumed = s3.run(&cache, &arguments);
    assert_ran(&resumed);
    let stats = s3.stats("data", "run/");
    assert!(stats["shards_reused"].as_u64().unwrap() >= 1, "{stats}");
    assert!(stats["samples_fetched"].as_u64().unwrap() < 60, "{stats}");
    assert_eq!(stats["count"], 60);
    let (whole, resumed) = (shard_bytes(&whole), s3.shard_bytes("data", "run/"));
    assert_eq!(whole.len(), 12);
    let names = |files: &[(String, Vec<u8>)]| {
        files
            .iter()
            .map(|(name, _)| name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&whole), names(&resumed));
    for ((name, left), (_, right)) in whole.iter().zip(&resumed) {
        assert!(
            left == right,
            "{name} differs between the uninterrupted and the resumed run"
        );
    }
}

#[test]
fn two_shard_runs_on_machines_sharing_no_folder_fill_one_prefix() {
    let (routes, paths) = many_routes(30, None);
    let images = ImageServer::start(routes);
    let s3 = S3Server::start();
    s3.create_bucket("data");
    let scratch = Scratch::new();
    s3.put("data", "urls.txt", urls(&images, &paths).as_bytes());
    let flags = [
        "--output-format",
        "webdataset",
        "--samples-per-shard",
        "10",
        "--progress",
        "none",
    ];
    let run = |part: &str, temporary: &Path, output: &str| {
        let mut arguments = vec!["dataset", "s3://data/urls.txt", "-o", output];
        arguments.extend(flags);
        if !part.is_empty() {
            arguments.extend(["--shard", part]);
        }
        let output = s3.run(temporary, &arguments);
        assert_ran(&output);
    };
    run("", &temporary(&scratch, "whole"), "s3://data/whole");
    run("0/2", &temporary(&scratch, "first"), "s3://data/parts");
    let first = s3.shard_bytes("data", "parts/").len();
    assert!(
        (1..6).contains(&first),
        "the first part wrote {first} files"
    );
    run("1/2", &temporary(&scratch, "second"), "s3://data/parts");
    let (whole, parts) = (
        s3.shard_bytes("data", "whole/"),
        s3.shard_bytes("data", "parts/"),
    );
    assert_eq!(whole.len(), 6);
    assert!(whole == parts, "the two parts differ from the whole run");
    // The last part to end counted every shard in the prefix.
    let stats = s3.stats("data", "parts/");
    assert_eq!(stats["count"], 30, "{stats}");
    assert_eq!(stats["shards"], 3, "{stats}");
}

#[test]
fn dataset_stats_rebuilds_a_bucket_prefixs_stats() {
    let (routes, paths) = many_routes(12, None);
    let images = ImageServer::start(routes);
    let s3 = S3Server::start();
    s3.create_bucket("data");
    let scratch = Scratch::new();
    let table = scratch.write("urls.txt", &urls(&images, &paths));
    let cache = temporary(&scratch, "tmp");
    let arguments = [
        "dataset",
        table.as_str(),
        "-o",
        "s3://data/set",
        "--samples-per-shard",
        "5",
        "--output-format",
        "parquet",
        "--progress",
        "none",
    ];
    assert_ran(&s3.run(&cache, &arguments));
    // As after copying two runs' shards together: a stats.json that counts
    // only some of them.
    s3.put("data", "set/stats.json", b"{\"count\": 1, \"shards\": 1}");
    let rebuilt = s3.run(&cache, &["dataset", "stats", "s3://data/set", "--json"]);
    assert_ran(&rebuilt);
    let printed: Value = serde_json::from_slice(&rebuilt.stdout).unwrap();
    assert_eq!(printed["count"], 12, "{printed}");
    assert_eq!(printed["shards"], 3, "{printed}");
    let stored = s3.stats("data", "set/");
    assert_eq!(stored["count"], 12, "{stored}");
    assert_eq!(stored["successes"], 12, "{stored}");

    // A prefix without shards is not a dataset, and nothing is written there.
    let empty = s3.run(&cache, &["dataset", "stats", "s3://data/nothing"]);
    assert_eq!(empty.status.code(), Some(2), "{}", stderr_of(&empty));
    assert!(stderr_of(&empty).contains("s3://data/nothing holds no shards"));
    assert!(s3.keys("data", "nothing").is_empty());
}

#[test]
fn the_settings_record_is_kept_in_the_bucket_and_a_rerun_from_another_machine_is_checked() {
    let (routes, paths) = many_routes(6, None);
    let images = ImageServer::start(routes);
    let s3 = S3Server::start();
    s3.create_bucket("data");
    let scratch = Scratch::new();
    let table = scratch.write("urls.txt", &urls(&images, &paths));
    let run = |cache: &Path, samples_per_shard: &str, more: &[&str]| {
        let mut arguments = vec![
            "dataset",
            table.as_str(),
            "-o",
            "s3://data/set",
            "--samples-per-shard",
            samples_per_shard,
            "--progress",
            "none",
        ];
        arguments.extend_from_slice(more);
        s3.run(cache, &arguments)
    };
    assert_ran(&run(&temporary(&scratch, "first"), "3", &[]));
    let record: Value = serde_json::from_slice(
        &s3.get("data", "set/settings.json")
            .expect("settings.json in the bucket"),
    )
    .unwrap();
    assert_eq!(record["samples_per_shard"], 3, "{record}");

    // Another machine (another local cache) with other settings is refused,
    // and the bucket's shards stay as they were.
    let before = s3.shard_bytes("data", "set/");
    let other = run(&temporary(&scratch, "second"), "2", &[]);
    assert_eq!(other.status.code(), Some(2), "{}", stderr_of(&other));
    assert!(
        stderr_of(&other).contains("samples per shard: 3 in the folder, 2 now"),
        "{}",
        stderr_of(&other)
    );
    assert_eq!(s3.shard_bytes("data", "set/"), before);
    // The same settings from that machine continue the dataset.
    assert_ran(&run(&temporary(&scratch, "third"), "3", &[]));
    assert_eq!(s3.shard_bytes("data", "set/"), before);
    // What a bucket cannot do yet is said, not half done.
    let overwrite = run(
        &temporary(&scratch, "fourth"),
        "3",
        &["--incremental-mode", "overwrite"],
    );
    assert_eq!(
        overwrite.status.code(),
        Some(2),
        "{}",
        stderr_of(&overwrite)
    );
    assert!(stderr_of(&overwrite).contains("is a bucket"));
}

#[test]
fn other_schemes_are_usage_errors_never_folders() {
    let scratch = Scratch::new();
    let table = scratch.write("urls.txt", "http://127.0.0.1:9/a.jpg\n");
    let in_scratch = |arguments: &[&str]| {
        grab_command()
            .args(arguments)
            .current_dir(scratch.root.path())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    for output in ["ftp://x", "foo://x/y"] {
        let run = in_scratch(&["dataset", &table, "-o", output]);
        assert_eq!(
            run.status.code(),
            Some(2),
            "-o {output}: {}",
            stderr_of(&run)
        );
        let scheme = output.split("://").next().unwrap();
        let message = stderr_of(&run);
        assert!(message.contains(&format!("{scheme}://")), "{message}");
        assert!(message.contains("s3://"), "{message}");
    }
    let run = in_scratch(&["dataset", "foo://bucket/urls.txt", "-o", "out"]);
    assert_eq!(run.status.code(), Some(2), "{}", stderr_of(&run));
    assert!(stderr_of(&run).contains("foo://"), "{}", stderr_of(&run));
    let run = in_scratch(&["dataset", "stats", "ftp://x"]);
    assert_eq!(run.status.code(), Some(2), "{}", stderr_of(&run));
    // Only the table: no `ftp:`, `foo:` or `out` folder.
    let mut left = std::fs::read_dir(scratch.root.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect::<Vec<_>>();
    left.sort();
    assert_eq!(left, ["urls.txt"]);
}

#[test]
fn queue_workers_sharing_no_folder_build_a_bucket_table_into_one_prefix() {
    let (routes, paths) = many_routes(23, None);
    let images = ImageServer::start(routes);
    let s3 = S3Server::start();
    s3.create_bucket("data");
    let scratch = Scratch::new();
    let redis = super::queue::RedisServer::start(scratch.root.path(), false);
    let table = urls(&images, &paths);
    s3.put("data", "table.txt", table.as_bytes());
    let build = ["--output-format", "webdataset", "--progress", "none", "-q"];

    let single = scratch.root.path().join("single");
    let local_table = scratch.write("table.txt", &table);
    let mut arguments = vec!["dataset", &local_table, "-o", single.to_str().unwrap()];
    arguments.extend(["--samples-per-shard", "5"]);
    arguments.extend(build);
    assert_ran(&grab(&arguments, None));

    let address = redis.address();
    let queue = ["--redis", address.as_str(), "--queue", "test"];
    let pushed = s3.run(
        &temporary(&scratch, "pusher"),
        &[
            &["queue", "push", "--dataset", "s3://data/table.txt"][..],
            &["--samples-per-shard", "5", "--json"],
            &queue,
        ]
        .concat(),
    );
    assert_ran(&pushed);
    let counts: Value = serde_json::from_slice(&pushed.stdout).unwrap();
    assert_eq!(
        (counts["new"].as_u64(), counts["rows"].as_u64()),
        (Some(5), Some(23))
    );
    // Two machines: each worker its own temporary folder, only the bucket shared.
    let workers: Vec<Child> = ["first", "second"]
        .into_iter()
        .map(|machine| {
            s3.grab(&temporary(&scratch, machine))
                .args(["queue", "dataset", "-o", "s3://data/shards", "-j", "4"])
                .args(queue)
                .args(build)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for worker in workers {
        let output = worker.wait_with_output().unwrap();
        assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    }
    let expected = shard_bytes(&single);
    assert_eq!(expected.len(), 10, "a tar and a parquet file per shard");
    assert!(
        s3.shard_bytes("data", "shards/") == expected,
        "the workers' shards differ from a single run's"
    );
    let stats = s3.stats("data", "shards/");
    assert_eq!(stats["count"], 23, "{stats}");
    assert_eq!(stats["shards"], 5, "{stats}");
}
