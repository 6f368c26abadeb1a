//! `grab dataset`'s output kept whole across runs: saved columns keep their
//! input's types, the settings recorded in the folder refuse a re-run that
//! would mix two datasets unless `--incremental-mode` says what to do, and
//! `--retry-failed` rewrites complete shards with their failed samples
//! fetched again.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::thread;

use grab::gallery::{self, Format};
use parquet::file::reader::{FileReader, SerializedFileReader};
use serde_json::{Value, json};

use super::dataset::{dataset, parquet_rows};
use super::support::{Scratch, stderr_of};

/// A server of JPEGs at `/N.jpg` that answers 500 for the paths in its
/// failing set, until they are taken out of it.
struct FlakyServer {
    address: std::net::SocketAddr,
    failing: Arc<Mutex<HashSet<String>>>,
}

impl FlakyServer {
    fn start(images: usize, failing: &[usize]) -> FlakyServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let bodies: Arc<HashMap<String, Vec<u8>>> = Arc::new(
            (0..images)
                .map(|index| {
                    let name = format!("flaky-{index}");
                    let body = gallery::encode(&name, 80 + index as u32 * 10, 60, Format::Jpeg);
                    (format!("/{index}.jpg"), body.to_vec())
                })
                .collect(),
        );
        let failing = Arc::new(Mutex::new(
            failing
                .iter()
                .map(|index| format!("/{index}.jpg"))
                .collect(),
        ));
        let set = failing.clone();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (bodies, set) = (bodies.clone(), set.clone());
                thread::spawn(move || {
                    let _ = answer(stream, &bodies, &set);
                });
            }
        });
        FlakyServer { address, failing }
    }

    fn url(&self, index: usize) -> String {
        format!("http://{}/{index}.jpg", self.address)
    }

    /// Every path answers 200 from now on.
    fn heal(&self) {
        self.failing.lock().unwrap().clear();
    }
}

fn answer(
    mut stream: TcpStream,
    bodies: &HashMap<String, Vec<u8>>,
    failing: &Mutex<HashSet<String>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("/")
            .to_string();
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
                break;
            }
        }
        let response = match bodies.get(&path) {
            _ if failing.lock().unwrap().contains(&path) => {
                b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n".to_vec()
            }
            Some(body) => {
                let mut response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: image/jpeg\r\ncontent-length: {}\r\n\r\n",
                    body.len()
                )
                .into_bytes();
                response.extend_from_slice(body);
                response
            }
            None => b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n".to_vec(),
        };
        stream.write_all(&response)?;
    }
}

fn assert_ran(output: &Output) {
    assert!(
        output.status.success(),
        "grab dataset failed: {}",
        stderr_of(output)
    );
}

/// The run's stats (`--json` on stdout).
fn stats_of(output: &Output) -> Value {
    assert_ran(output);
    serde_json::from_slice(&output.stdout).unwrap()
}

/// A csv table of `urls` with a `score` column of floats (0.31, 1.31...)
/// and a `tag` of text.
fn csv_table(scratch: &Scratch, name: &str, urls: &[String]) -> String {
    let mut text = String::from("url,score,tag\n");
    for (index, url) in urls.iter().enumerate() {
        text += &format!("{url},{index}.31,tag-{index}\n");
    }
    scratch.write(name, &text)
}

/// A saved column's physical type and whether it is a list, from a shard's schema.
fn column_type(path: &Path, name: &str) -> String {
    let reader = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let schema = reader.metadata().file_metadata().schema_descr();
    let field = schema
        .root_schema()
        .get_fields()
        .iter()
        .find(|field| field.name() == name)
        .unwrap_or_else(|| panic!("no column {name}"))
        .clone();
    let mut described = String::new();
    let mut field = field;
    while field.is_group() {
        described += "list<";
        // LIST { repeated group list { element } }
        field = field.get_fields()[0].get_fields()[0].clone();
    }
    described += &field.get_physical_type().to_string();
    described
}

fn json_of(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn saved_columns_keep_their_types_in_the_parquet_and_the_json() {
    use parquet::data_type::{ByteArray, ByteArrayType, DoubleType};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;

    let server = FlakyServer::start(2, &[]);
    let urls = [server.url(0), server.url(1)];

    // csv: pyarrow reads a column of numbers as double, as img2dataset saves it.
    for format in ["parquet", "files"] {
        let scratch = Scratch::new();
        let table = csv_table(&scratch, "t.csv", &urls);
        assert_ran(&dataset(
            &scratch,
            &table,
            &["--save-cols", "score,tag", "--output-format", format],
        ));
        let metadata = scratch.output().join("00000.parquet");
        assert_eq!(column_type(&metadata, "score"), "DOUBLE");
        assert_eq!(column_type(&metadata, "tag"), "BYTE_ARRAY");
        let rows = parquet_rows(&metadata);
        assert_eq!(rows[0]["score"], json!(0.31), "{format}");
        assert_eq!(rows[1]["tag"], json!("tag-1"), "{format}");
        if format == "files" {
            let sample = json_of(&scratch.output().join("00000/000000000.json"));
            assert_eq!(sample["score"], json!(0.31));
            assert_eq!(sample["tag"], json!("tag-0"));
        }
    }

    // parquet: the input's own types, a list of lists of doubles included.
    let scratch = Scratch::new();
    let path = scratch.root.path().join("t.parquet");
    let schema = parse_message_type(
        "message table { REQUIRED BYTE_ARRAY url (UTF8); OPTIONAL DOUBLE score; OPTIONAL group face_bboxes (LIST) { REPEATED group list { OPTIONAL group element (LIST) { REPEATED group list { OPTIONAL DOUBLE element; } } } } }",
    )
    .unwrap();
    let mut writer = SerializedFileWriter::new(
        std::fs::File::create(&path).unwrap(),
        Arc::new(schema),
        Arc::new(WriterProperties::builder().build()),
    )
    .unwrap();
    let mut group = writer.next_row_group().unwrap();
    let mut column = group.next_column().unwrap().unwrap();
    let links: Vec<ByteArray> = urls
        .iter()
        .map(|url| ByteArray::from(url.as_str()))
        .collect();
    column
        .typed::<ByteArrayType>()
        .write_batch(&links, None, None)
        .unwrap();
    column.close().unwrap();
    let mut column = group.next_column().unwrap().unwrap();
    column
        .typed::<DoubleType>()
        .write_batch(&[0.31, 2.0], Some(&[1, 1]), None)
        .unwrap();
    column.close().unwrap();
    // Row 0: [[0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.8]]; row 1: [].
    let mut column = group.next_column().unwrap().unwrap();
    column
        .typed::<DoubleType>()
        .write_batch(
            &[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8],
            Some(&[5, 5, 5, 5, 5, 5, 5, 5, 1]),
            Some(&[0, 2, 2, 2, 1, 2, 2, 2, 0]),
        )
        .unwrap();
    column.close().unwrap();
    group.close().unwrap();
    writer.close().unwrap();
    let boxes = json!([[0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.8]]);
    for format in ["parquet", "webdataset"] {
        let run = Scratch::new();
        assert_ran(&dataset(
            &run,
            &path.display().to_string(),
            &[
                "--save-cols",
                "face_bboxes,score",
                "--output-format",
                format,
            ],
        ));
        let metadata = run.output().join("00000.parquet");
        assert_eq!(column_type(&metadata, "face_bboxes"), "list<list<DOUBLE");
        assert_eq!(column_type(&metadata, "score"), "DOUBLE");
        let rows = parquet_rows(&metadata);
        assert_eq!(rows[0]["face_bboxes"], boxes, "{format}");
        assert_eq!(rows[1]["face_bboxes"], json!([]), "{format}");
        assert_eq!(rows[0]["score"], json!(0.31), "{format}");
        if format == "webdataset" {
            let mut archive =
                tar::Archive::new(std::fs::File::open(run.output().join("00000.tar")).unwrap());
            let mut found = false;
            for entry in archive.entries().unwrap() {
                let mut entry = entry.unwrap();
                if entry.path().unwrap().display().to_string() == "000000000.json" {
                    let mut text = String::new();
                    entry.read_to_string(&mut text).unwrap();
                    let sample: Value = serde_json::from_str(&text).unwrap();
                    assert_eq!(sample["face_bboxes"], boxes);
                    assert_eq!(sample["score"], json!(0.31));
                    found = true;
                }
            }
            assert!(found, "no 000000000.json in the tar");
        }
    }

    // jsonl: the values' own types; an integer and a fraction make a double.
    let scratch = Scratch::new();
    let table = scratch.write(
        "t.jsonl",
        &format!(
            "{{\"url\": \"{}\", \"score\": 2, \"boxes\": [[0.5, 1]]}}\n{{\"url\": \"{}\", \"score\": 0.31, \"boxes\": null}}\n",
            urls[0], urls[1]
        ),
    );
    assert_ran(&dataset(
        &scratch,
        &table,
        &["--save-cols", "score,boxes", "--output-format", "parquet"],
    ));
    let metadata = scratch.output().join("00000.parquet");
    assert_eq!(column_type(&metadata, "score"), "DOUBLE");
    assert_eq!(column_type(&metadata, "boxes"), "list<list<DOUBLE");
    let rows = parquet_rows(&metadata);
    assert_eq!(rows[0]["score"], json!(2.0));
    assert_eq!(rows[1]["score"], json!(0.31));
    assert_eq!(rows[0]["boxes"], json!([[0.5, 1.0]]));
}

/// Every file's bytes under `output`, but for stats (which hold timings) and
/// the settings.
fn tree(output: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut folders = vec![output.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            let name = path.strip_prefix(output).unwrap().display().to_string();
            if name.starts_with('.') {
                // The lock and the work folder: grab's own.
                continue;
            }
            if path.is_dir() {
                folders.push(path);
            } else if !name.ends_with("stats.json") && name != "settings.json" {
                files.push((name, std::fs::read(&path).unwrap()));
            }
        }
    }
    files.sort();
    files
}

#[test]
fn a_rerun_with_other_settings_is_refused_naming_each_difference() {
    let server = FlakyServer::start(6, &[]);
    let urls: Vec<String> = (0..6).map(|index| server.url(index)).collect();
    let scratch = Scratch::new();
    let table = csv_table(&scratch, "t.csv", &urls);
    let first = stats_of(&dataset(
        &scratch,
        &table,
        &[
            "--samples-per-shard",
            "4",
            "--output-format",
            "webdataset",
            "--json",
        ],
    ));
    assert_eq!(first["count"], 6);
    let before = tree(&scratch.output());
    let refusals: [(&[&str], &[&str]); 4] = [
        (
            &["--samples-per-shard", "2", "--output-format", "webdataset"],
            &["samples per shard: 4 in the folder, 2 now"],
        ),
        (
            &[
                "--samples-per-shard",
                "4",
                "--output-format",
                "webdataset",
                "--image-size",
                "64",
            ],
            &["image size: 256 in the folder, 64 now"],
        ),
        (
            &["--samples-per-shard", "4", "--output-format", "parquet"],
            &["output format: webdataset in the folder, parquet now"],
        ),
        (
            &[
                "--samples-per-shard",
                "2",
                "--output-format",
                "files",
                "--save-cols",
                "score",
            ],
            &[
                "samples per shard: 4 in the folder, 2 now",
                "output format: webdataset in the folder, files now",
                "saved columns: none in the folder, score (inferred from text) now",
            ],
        ),
    ];
    for (flags, differences) in refusals {
        let output = dataset(&scratch, &table, flags);
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(2), "{flags:?}: {stderr}");
        assert!(
            stderr.contains("holds a dataset built with other settings"),
            "{stderr}"
        );
        for difference in differences {
            assert!(stderr.contains(difference), "{flags:?}: {stderr}");
        }
        assert!(stderr.contains("--incremental-mode overwrite"), "{stderr}");
    }
    // Another table, the same settings: refused, naming both tables.
    let other = csv_table(&scratch, "u.csv", &urls[..3]);
    let output = dataset(
        &scratch,
        &other,
        &["--samples-per-shard", "4", "--output-format", "webdataset"],
    );
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("input table: t.csv (") && stderr.contains("in the folder, u.csv ("),
        "{stderr}"
    );
    assert!(stderr.contains("--incremental-mode extend"), "{stderr}");
    // Nothing of the folder changed, and its stats still count 6 samples.
    assert!(before == tree(&scratch.output()));
    let stats = json_of(&scratch.output().join("stats.json"));
    assert_eq!(stats["count"], 6);

    // A folder img2dataset or an older grab wrote (shards, no record) is
    // refused too, unless the mode is said; img2dataset's shard stats have
    // only its four counts, with times and a status_dict beside them.
    std::fs::remove_file(scratch.output().join("settings.json")).unwrap();
    for shard in ["00000", "00001"] {
        let path = scratch.output().join(format!("{shard}_stats.json"));
        let ours = json_of(&path);
        let theirs = serde_json::json!({
            "count": ours["count"],
            "successes": ours["successes"],
            "failed_to_download": ours["failed_to_download"],
            "failed_to_resize": ours["failed_to_resize"],
            "duration": 1.5,
            "start_time": 1765000000.0,
            "end_time": 1765000001.5,
            "status_dict": {"success": ours["successes"]},
        });
        std::fs::write(&path, theirs.to_string()).unwrap();
    }
    let flags = ["--samples-per-shard", "4", "--output-format", "webdataset"];
    let output = dataset(&scratch, &table, &flags);
    assert_eq!(output.status.code(), Some(2), "{}", stderr_of(&output));
    assert!(stderr_of(&output).contains("no settings.json"));
    let mut continued = flags.to_vec();
    continued.extend(["--incremental-mode", "incremental", "--json"]);
    let stats = stats_of(&dataset(&scratch, &table, &continued));
    assert_eq!(
        (stats["shards_reused"].as_u64(), stats["count"].as_u64()),
        (Some(2), Some(6))
    );
}

#[test]
fn each_incremental_mode_continues_starts_over_or_extends() {
    let server = FlakyServer::start(5, &[]);
    let urls: Vec<String> = (0..5).map(|index| server.url(index)).collect();
    let scratch = Scratch::new();
    let table = csv_table(&scratch, "t.csv", &urls[..3]);
    let flags = ["--samples-per-shard", "2", "--output-format", "webdataset"];
    fn with<'a>(flags: &[&'a str], more: &[&'a str]) -> Vec<&'a str> {
        let mut all = flags.to_vec();
        all.extend_from_slice(more);
        all.push("--json");
        all
    }
    assert_ran(&dataset(&scratch, &table, &with(&flags, &[])));
    let whole = tree(&scratch.output());

    // incremental (the default): an unfinished shard is finished, the
    // complete one reused.
    std::fs::remove_file(scratch.output().join("00001_stats.json")).unwrap();
    let stats = stats_of(&dataset(
        &scratch,
        &table,
        &with(&flags, &["--incremental-mode", "incremental"]),
    ));
    assert_eq!(
        (
            stats["shards_written"].as_u64(),
            stats["shards_reused"].as_u64(),
            stats["count"].as_u64()
        ),
        (Some(1), Some(1), Some(3))
    );
    assert!(whole == tree(&scratch.output()));

    // extend: another table's shards after the highest, keys and all.
    let more = csv_table(&scratch, "more.csv", &urls[3..]);
    let output = dataset(
        &scratch,
        &more,
        &with(&flags, &["--incremental-mode", "extend"]),
    );
    let stats = stats_of(&output);
    assert!(
        stderr_of(&output).contains("from shard 00002"),
        "{}",
        stderr_of(&output)
    );
    assert_eq!(
        (stats["shards"].as_u64(), stats["count"].as_u64()),
        (Some(3), Some(5))
    );
    let mut archive =
        tar::Archive::new(std::fs::File::open(scratch.output().join("00002.tar")).unwrap());
    let members: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|entry| entry.unwrap().path().unwrap().display().to_string())
        .filter(|name| name.ends_with(".jpg"))
        .collect();
    assert_eq!(members, ["000020.jpg", "000021.jpg"]);
    let extended = tree(&scratch.output());
    // The extending table again, in either mode: continued where it went in.
    for mode in ["extend", "incremental"] {
        let output = dataset(
            &scratch,
            &more,
            &with(&flags, &["--incremental-mode", mode]),
        );
        let stats = stats_of(&output);
        assert_eq!(
            (
                stats["shards_reused"].as_u64(),
                stats["shards_written"].as_u64()
            ),
            (Some(1), Some(0)),
            "{mode}"
        );
        assert!(extended == tree(&scratch.output()), "{mode}");
    }

    // overwrite: the earlier output goes (other files stay), the new settings hold.
    std::fs::write(scratch.output().join("notes.txt"), "mine").unwrap();
    let output = dataset(
        &scratch,
        &table,
        &[
            "--samples-per-shard",
            "1",
            "--output-format",
            "parquet",
            "--incremental-mode",
            "overwrite",
            "--json",
        ],
    );
    let stats = stats_of(&output);
    assert_eq!(
        (stats["shards"].as_u64(), stats["count"].as_u64()),
        (Some(3), Some(3))
    );
    let mut names: Vec<String> = std::fs::read_dir(scratch.output())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with('.'))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "00000.parquet",
            "00000_stats.json",
            "00001.parquet",
            "00001_stats.json",
            "00002.parquet",
            "00002_stats.json",
            "notes.txt",
            "settings.json",
            "stats.json"
        ]
    );
    let settings = json_of(&scratch.output().join("settings.json"));
    assert_eq!(settings["samples_per_shard"], 1);
    assert_eq!(settings["output_format"], "parquet");
}

/// A shard's samples: each key's members (tar, folder) or its metadata row
/// and image (parquet), as bytes.
fn samples_of(output: &Path, format: &str, shard: u64) -> HashMap<String, Vec<u8>> {
    let name = format!("{shard:05}");
    let mut samples = HashMap::new();
    match format {
        "webdataset" => {
            let mut archive =
                tar::Archive::new(std::fs::File::open(output.join(format!("{name}.tar"))).unwrap());
            for entry in archive.entries().unwrap() {
                let mut entry = entry.unwrap();
                let member = entry.path().unwrap().display().to_string();
                let mut bytes = Vec::new();
                entry.read_to_end(&mut bytes).unwrap();
                samples.insert(member, bytes);
            }
        }
        "files" => {
            for entry in std::fs::read_dir(output.join(&name)).unwrap() {
                let path = entry.unwrap().path();
                let member = path.file_name().unwrap().to_string_lossy().into_owned();
                samples.insert(member, std::fs::read(&path).unwrap());
            }
        }
        _ => {
            for row in parquet_rows(&output.join(format!("{name}.parquet"))) {
                let key = row["key"].as_str().unwrap().to_string();
                samples.insert(key, serde_json::to_vec(&row).unwrap());
            }
        }
    }
    samples
}

#[test]
fn retry_failed_refetches_only_failed_samples_keys_and_the_rest_unchanged() {
    for format in ["webdataset", "files", "parquet"] {
        // Rows 1 and 2 fail the first time: one in each shard of 2.
        let server = FlakyServer::start(4, &[1, 2]);
        let urls: Vec<String> = (0..4).map(|index| server.url(index)).collect();
        let scratch = Scratch::new();
        let table = csv_table(&scratch, "t.csv", &urls);
        let flags = [
            "--samples-per-shard",
            "2",
            "--output-format",
            format,
            "--save-cols",
            "score,tag",
            "--json",
        ];
        let first = stats_of(&dataset(&scratch, &table, &flags));
        assert_eq!(
            (first["count"].as_u64(), first["successes"].as_u64()),
            (Some(4), Some(2)),
            "{format}"
        );
        assert_eq!(first["failed_to_download"], 2, "{format}: {first}");
        let before: Vec<HashMap<String, Vec<u8>>> = (0..2)
            .map(|shard| samples_of(&scratch.output(), format, shard))
            .collect();
        // A plain re-run changes nothing: the shards are complete.
        let again = stats_of(&dataset(&scratch, &table, &flags));
        assert_eq!(again["successes"], 2, "{format}");

        server.heal();
        let mut retry = flags.to_vec();
        retry.push("--retry-failed");
        let output = dataset(&scratch, &table, &retry);
        let stats = stats_of(&output);
        assert_eq!(
            (
                stats["count"].as_u64(),
                stats["successes"].as_u64(),
                stats["samples_fetched"].as_u64(),
                stats["shards_written"].as_u64()
            ),
            (Some(4), Some(4), Some(2), Some(2)),
            "{format}: {stats}"
        );
        assert!(
            stats["failures"].as_object().unwrap().is_empty(),
            "{format}: {stats}"
        );
        let rows: Vec<_> = (0..2)
            .flat_map(|shard| parquet_rows(&scratch.output().join(format!("{shard:05}.parquet"))))
            .collect();
        let keys: Vec<&str> = rows
            .iter()
            .map(|row| row["key"].as_str().unwrap())
            .collect();
        assert_eq!(keys, ["000000", "000001", "000010", "000011"], "{format}");
        assert!(
            rows.iter().all(|row| row["status"] == "success"),
            "{format}"
        );
        assert_eq!(rows[1]["score"], json!(1.31), "{format}");
        assert_eq!(rows[2]["tag"], json!("tag-2"), "{format}");
        for shard in 0..2u64 {
            let stats = json_of(&scratch.output().join(format!("{shard:05}_stats.json")));
            assert_eq!(
                (stats["count"].as_u64(), stats["successes"].as_u64()),
                (Some(2), Some(2))
            );
        }
        // The samples that had succeeded are byte for byte as they were;
        // the retried ones are there now.
        for shard in 0..2u64 {
            let after = samples_of(&scratch.output(), format, shard);
            for (member, bytes) in &before[shard as usize] {
                let retried = member.starts_with("000001") || member.starts_with("000010");
                if !retried {
                    assert!(
                        after.get(member) == Some(bytes),
                        "{format}: {member} changed"
                    );
                }
            }
            if format != "parquet" {
                let retried = if shard == 0 {
                    "000001.jpg"
                } else {
                    "000010.jpg"
                };
                assert!(after.contains_key(retried), "{format}: no {retried}");
            }
        }
        let folder = json_of(&scratch.output().join("stats.json"));
        assert_eq!(
            (folder["count"].as_u64(), folder["successes"].as_u64()),
            (Some(4), Some(4))
        );
        // Nothing left to retry.
        let stats = stats_of(&dataset(&scratch, &table, &retry));
        assert_eq!(
            (
                stats["samples_fetched"].as_u64(),
                stats["shards_reused"].as_u64()
            ),
            (Some(0), Some(2)),
            "{format}"
        );
    }
}
