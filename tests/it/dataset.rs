//! `grab dataset` against a small server of its own: generated images, an
//! `X-Robots-Tag` opt-out, a corrupt image, an image bomb, a stalled answer.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use grab::gallery::{self, Format};
use parquet::file::reader::{FileReader, SerializedFileReader};
use serde_json::Value;

use super::support::{STRATEGIES, Scratch, grab, grab_command, stderr_of};

/// A response: extra headers and the body.
#[derive(Clone)]
pub struct Route {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Wait this long before answering (for kills mid-run), or forever.
    pub delay: Option<Duration>,
}

/// A thread-per-connection HTTP/1.1 server on 127.0.0.1:0 with fixed routes;
/// unknown paths get 404, `/stall` never answers, and `/held/PATH` answers
/// as PATH once the server is not holding (see [`ImageServer::hold`]).
pub struct ImageServer {
    address: std::net::SocketAddr,
    /// What the server saw: every User-Agent, and requests by path.
    seen: Arc<Seen>,
}

#[derive(Default)]
struct Seen {
    agents: Mutex<Vec<String>>,
    hits: Mutex<HashMap<String, usize>>,
    holding: std::sync::atomic::AtomicBool,
}

impl ImageServer {
    pub fn start(routes: HashMap<String, Route>) -> ImageServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let routes = Arc::new(routes);
        let seen = Arc::new(Seen::default());
        let shared = seen.clone();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (routes, seen) = (routes.clone(), shared.clone());
                thread::spawn(move || {
                    let _ = answer(stream, &routes, &seen);
                });
            }
        });
        ImageServer { address, seen }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// While holding, requests for `/held/...` wait (a run stays mid-way
    /// until it is killed); then they are answered.
    pub fn hold(&self, holding: bool) {
        self.seen
            .holding
            .store(holding, std::sync::atomic::Ordering::SeqCst);
    }

    /// Requests for `path` (without its query) so far.
    pub fn hits(&self, path: &str) -> usize {
        self.seen
            .hits
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or(0)
    }
}

fn answer(
    mut stream: TcpStream,
    routes: &HashMap<String, Route>,
    seen: &Seen,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let target = request_line.split_whitespace().nth(1).unwrap_or("/");
        // A request through a proxy names the whole URL (absolute form).
        let path = match target.strip_prefix("http://") {
            Some(rest) => rest[rest.find('/').unwrap_or(rest.len())..].to_string(),
            None => target.to_string(),
        };
        // The query only tells rows apart; the route is the path.
        let path = path.split('?').next().unwrap_or("/").to_string();
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("user-agent")
            {
                seen.agents.lock().unwrap().push(value.trim().to_string());
            }
        }
        *seen.hits.lock().unwrap().entry(path.clone()).or_default() += 1;
        if path == "/stall" {
            thread::sleep(Duration::from_secs(600));
            return Ok(());
        }
        let path = match path.strip_prefix("/held") {
            Some(rest) => {
                while seen.holding.load(std::sync::atomic::Ordering::SeqCst) {
                    thread::sleep(Duration::from_millis(5));
                }
                rest.to_string()
            }
            None => path,
        };
        let Some(route) = routes.get(&path) else {
            stream.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")?;
            continue;
        };
        if let Some(delay) = route.delay {
            thread::sleep(delay);
        }
        let mut head = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n",
            route.body.len()
        );
        for (name, value) in &route.headers {
            head += &format!("{name}: {value}\r\n");
        }
        head += "\r\n";
        stream.write_all(head.as_bytes())?;
        stream.write_all(&route.body)?;
    }
}

fn image_route(body: Vec<u8>, content_type: &str) -> Route {
    Route {
        headers: vec![("content-type".into(), content_type.into())],
        body,
        delay: None,
    }
}

pub fn jpeg(name: &str, width: u32, height: u32) -> Route {
    image_route(
        gallery::encode(name, width, height, Format::Jpeg).to_vec(),
        "image/jpeg",
    )
}

fn png(name: &str, width: u32, height: u32) -> Route {
    image_route(
        gallery::encode(name, width, height, Format::Png).to_vec(),
        "image/png",
    )
}

/// A 40 x 20 JPEG whose EXIF says "rotate 90° clockwise to view".
pub fn rotated_jpeg() -> Vec<u8> {
    let pixels = gallery::draw("rotated", 40, 20).into_raw();
    // TIFF header (big-endian), one IFD entry: Orientation (0x0112), SHORT, 1, value 6.
    let mut exif = b"Exif\0\0MM\0\x2a\0\0\0\x08\0\x01".to_vec();
    exif.extend_from_slice(&[0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0]);
    let mut bytes = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut bytes, 90);
    encoder.add_app_segment(1, exif).unwrap();
    encoder
        .encode(&pixels, 40, 20, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    bytes
}

/// The routes most tests use.
fn standard_routes() -> HashMap<String, Route> {
    let mut routes = HashMap::new();
    routes.insert("/wide.jpg".into(), jpeg("wide", 400, 200));
    routes.insert("/tall.png".into(), png("tall", 50, 100));
    routes.insert("/square.jpg".into(), jpeg("square", 300, 300));
    routes.insert(
        "/rotated.jpg".into(),
        image_route(rotated_jpeg(), "image/jpeg"),
    );
    let mut corrupt = gallery::encode("corrupt", 200, 200, Format::Jpeg).to_vec();
    corrupt.truncate(200);
    corrupt.extend_from_slice(&[0x55; 300]);
    routes.insert("/corrupt.jpg".into(), image_route(corrupt, "image/jpeg"));
    routes.insert(
        "/bomb.png".into(),
        image_route(gallery::png_declaring(50_000, 50_000), "image/png"),
    );
    let mut opted_out = jpeg("opted", 100, 100);
    opted_out
        .headers
        .push(("x-robots-tag".into(), "noarchive, noai".into()));
    routes.insert("/opted-out.jpg".into(), opted_out);
    let mut other_bot = jpeg("other", 100, 100);
    other_bot
        .headers
        .push(("x-robots-tag".into(), "otherbot: noai".into()));
    routes.insert("/other-bot.jpg".into(), other_bot);
    routes
}

pub fn dataset(scratch: &Scratch, table: &str, more: &[&str]) -> Output {
    let output = scratch.output_arg();
    let mut arguments = vec!["dataset", table, "-o", &output, "--progress", "none"];
    arguments.extend_from_slice(more);
    grab(&arguments, None)
}

pub(crate) fn assert_ran(output: &Output) {
    assert!(
        output.status.success(),
        "grab dataset failed: {}",
        stderr_of(output)
    );
}

/// Every row of a parquet file, as JSON objects.
pub fn parquet_rows(path: &Path) -> Vec<serde_json::Map<String, Value>> {
    let reader = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
    reader
        .get_row_iter(None)
        .unwrap()
        .map(|row| match row.unwrap().to_json_value() {
            Value::Object(object) => object,
            other => panic!("not a row: {other}"),
        })
        .collect()
}

/// The metadata rows of a run by key.
pub fn samples(output: &Path, shards: u64) -> HashMap<String, serde_json::Map<String, Value>> {
    (0..shards)
        .flat_map(|shard| parquet_rows(&output.join(format!("{shard:05}.parquet"))))
        .map(|row| (row["key"].as_str().unwrap().to_string(), row))
        .collect()
}

/// The columns of the test tables: URL `link`, caption `text`, and `id` kept.
const LINK_TEXT_ID: [&str; 6] = [
    "--url-col",
    "link",
    "--caption-col",
    "text",
    "--save-cols",
    "id",
];

fn urls_file(scratch: &Scratch, server: &ImageServer, paths: &[&str]) -> String {
    let text: String = paths.iter().map(|path| server.url(path) + "\n").collect();
    scratch.write("urls.txt", &text)
}

#[test]
fn every_input_format_gives_the_same_keys_captions_and_columns() {
    let server = ImageServer::start(standard_routes());
    let (wide, square) = (server.url("/wide.jpg"), server.url("/square.jpg"));
    let tables = [
        (
            "t.csv",
            format!("id,link,text\n1,{wide},a wide one\n2,{square},\"a square, one\"\n"),
        ),
        (
            "t.tsv",
            format!("id\tlink\ttext\n1\t{wide}\ta wide one\n2\t{square}\ta square, one\n"),
        ),
        (
            "t.jsonl",
            format!(
                "{{\"id\": 1, \"link\": \"{wide}\", \"text\": \"a wide one\"}}\n{{\"id\": 2, \"link\": \"{square}\", \"text\": \"a square, one\"}}\n"
            ),
        ),
    ];
    let mut tables: Vec<(String, Scratch)> = tables
        .iter()
        .map(|(name, text)| {
            let scratch = Scratch::new();
            (scratch.write(name, text), scratch)
        })
        .collect();
    let scratch = Scratch::new();
    let parquet = scratch.root.path().join("t.parquet");
    write_parquet_table(
        &parquet,
        &[("1", &wide, "a wide one"), ("2", &square, "a square, one")],
    );
    tables.push((parquet.display().to_string(), scratch));
    for (table, scratch) in &tables {
        let output = dataset(
            scratch,
            table,
            &[&LINK_TEXT_ID[..], &["--image-size", "64"]].concat(),
        );
        assert_ran(&output);
        let folder = scratch.output().join("00000");
        let caption = std::fs::read_to_string(folder.join("000000001.txt")).unwrap();
        assert_eq!(caption, "a square, one", "{table}");
        let metadata: Value =
            serde_json::from_slice(&std::fs::read(folder.join("000000000.json")).unwrap()).unwrap();
        assert_eq!(metadata["url"], wide.as_str(), "{table}");
        // Text tables give text; parquet and JSON keep the value's type.
        assert!(
            metadata["id"] == "1" || metadata["id"] == 1,
            "{table}: {}",
            metadata["id"]
        );
        assert_eq!(
            (metadata["width"].as_u64(), metadata["height"].as_u64()),
            (Some(64), Some(64))
        );
        assert!(folder.join("000000000.jpg").is_file() && folder.join("000000001.jpg").is_file());
    }
    // A txt table: one URL a line, blank lines not counted.
    let scratch = Scratch::new();
    let table = scratch.write("urls.txt", &format!("{wide}\n\n{square}\n"));
    assert_ran(&dataset(&scratch, &table, &[]));
    let keys: Vec<String> = samples(&scratch.output(), 1).into_keys().collect();
    assert_eq!(keys.len(), 2);
    assert!(scratch.output().join("00000/000000001.jpg").is_file());
}

/// A parquet table with id, link and text columns, written as another tool would.
fn write_parquet_table(path: &Path, rows: &[(&str, &str, &str)]) {
    write_compressed_table(path, rows, parquet::basic::Compression::UNCOMPRESSED);
}

/// [`write_parquet_table`] with its pages compressed by `codec`.
fn write_compressed_table(
    path: &Path,
    rows: &[(&str, &str, &str)],
    codec: parquet::basic::Compression,
) {
    use parquet::data_type::{ByteArray, ByteArrayType};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;

    let schema = parse_message_type(
        "message table { REQUIRED BYTE_ARRAY id (UTF8); REQUIRED BYTE_ARRAY link (UTF8); OPTIONAL BYTE_ARRAY text (UTF8); }",
    )
    .unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut writer = SerializedFileWriter::new(
        file,
        Arc::new(schema),
        Arc::new(WriterProperties::builder().set_compression(codec).build()),
    )
    .unwrap();
    let mut group = writer.next_row_group().unwrap();
    let columns: [Vec<ByteArray>; 3] = [
        rows.iter().map(|row| ByteArray::from(row.0)).collect(),
        rows.iter().map(|row| ByteArray::from(row.1)).collect(),
        rows.iter().map(|row| ByteArray::from(row.2)).collect(),
    ];
    let mut index = 0;
    while let Some(mut column) = group.next_column().unwrap() {
        let levels = vec![1i16; rows.len()];
        let definitions = (index == 2).then_some(levels.as_slice());
        column
            .typed::<ByteArrayType>()
            .write_batch(&columns[index], definitions, None)
            .unwrap();
        column.close().unwrap();
        index += 1;
    }
    group.close().unwrap();
    writer.close().unwrap();
}

#[test]
fn parquet_tables_in_every_codec_are_read_and_parquet_output_is_snappy() {
    use parquet::basic::{BrotliLevel, Compression, GzipLevel, ZstdLevel};
    let server = ImageServer::start(standard_routes());
    let wide = server.url("/wide.jpg");
    let codecs = [
        Compression::SNAPPY,
        Compression::GZIP(GzipLevel::default()),
        Compression::LZ4,
        Compression::LZ4_RAW,
        Compression::ZSTD(ZstdLevel::default()),
        Compression::BROTLI(BrotliLevel::default()),
    ];
    for codec in codecs {
        let scratch = Scratch::new();
        let table = scratch.root.path().join("t.parquet");
        write_compressed_table(&table, &[("1", &wide, "a wide one")], codec);
        let output = dataset(
            &scratch,
            &table.display().to_string(),
            &["--url-col", "link", "--output-format", "parquet"],
        );
        assert_ran(&output);
        let rows = parquet_rows(&scratch.output().join("00000.parquet"));
        assert_eq!(rows.len(), 1, "{codec}");
        assert_eq!(rows[0]["status"], "success", "{codec}");
        // The output's metadata columns are snappy, as pyarrow writes; the
        // encoded images are stored as they are.
        let reader = SerializedFileReader::new(
            std::fs::File::open(scratch.output().join("00000.parquet")).unwrap(),
        )
        .unwrap();
        let group = reader.metadata().row_group(0);
        for column in group.columns() {
            let expected = match column.column_path().string().as_str() {
                "jpg" => Compression::UNCOMPRESSED,
                _ => Compression::SNAPPY,
            };
            assert_eq!(column.compression(), expected, "{}", column.column_path());
        }
    }
}

#[test]
fn each_resize_mode_gives_img2datasets_sizes_and_white_borders() {
    let server = ImageServer::start(standard_routes());
    type Size = (u64, u64);
    let cases: [(&str, &[&str], Size, Size); 6] = [
        // mode and flags; then the 400x200 image's size and the 50x100 one's.
        ("no", &[], (400, 200), (50, 100)),
        ("keep_ratio", &[], (128, 64), (64, 128)),
        ("keep_ratio_largest", &[], (64, 32), (32, 64)),
        ("center_crop", &[], (64, 64), (64, 64)),
        ("border", &[], (64, 64), (64, 64)),
        (
            "keep_ratio",
            &["--resize-only-if-bigger"],
            (128, 64),
            (50, 100),
        ),
    ];
    for (mode, flags, wide, tall) in cases {
        let scratch = Scratch::new();
        let table = urls_file(&scratch, &server, &["/wide.jpg", "/tall.png"]);
        let mut arguments = vec![
            "--resize-mode",
            mode,
            "--image-size",
            "64",
            "--encode-format",
            "png",
        ];
        arguments.extend_from_slice(flags);
        assert_ran(&dataset(&scratch, &table, &arguments));
        let folder = scratch.output().join("00000");
        for (key, expected) in [("000000000", wide), ("000000001", tall)] {
            let image = image::open(folder.join(format!("{key}.png")))
                .unwrap()
                .into_rgb8();
            assert_eq!(
                (u64::from(image.width()), u64::from(image.height())),
                expected,
                "{mode} {flags:?} {key}"
            );
        }
        if mode == "border" && flags.is_empty() {
            // 400x200 to 64x32, then 16 white rows above and below.
            let image = image::open(folder.join("000000000.png"))
                .unwrap()
                .into_rgb8();
            for y in [0, 15, 48, 63] {
                assert_eq!(
                    image.get_pixel(32, y).0,
                    [255, 255, 255],
                    "row {y} is border"
                );
            }
            // The gallery's pictures are not white anywhere along the middle row.
            let middle = image.get_pixel(32, 32).0;
            assert_ne!(middle, [255, 255, 255]);
            let tall = image::open(folder.join("000000001.png"))
                .unwrap()
                .into_rgb8();
            assert_eq!(tall.get_pixel(0, 32).0, [255, 255, 255]);
            assert_eq!(tall.get_pixel(63, 32).0, [255, 255, 255]);
        }
    }
}

#[test]
fn exif_orientation_is_applied() {
    let server = ImageServer::start(standard_routes());
    let scratch = Scratch::new();
    let table = urls_file(&scratch, &server, &["/rotated.jpg"]);
    assert_ran(&dataset(&scratch, &table, &["--resize-mode", "no"]));
    let image = image::open(scratch.output().join("00000/000000000.jpg")).unwrap();
    assert_eq!((image.width(), image.height()), (20, 40));
    let row = &samples(&scratch.output(), 1)["000000000"];
    assert_eq!(
        (
            row["original_width"].as_u64(),
            row["original_height"].as_u64()
        ),
        (Some(20), Some(40))
    );
}

/// With a caption column every saved image has its text, empty where the
/// caption is null (as img2dataset writes it); without one, none has.
#[test]
fn a_null_caption_is_an_empty_text() {
    let server = ImageServer::start(standard_routes());
    let scratch = Scratch::new();
    let table = scratch.write(
        "t.jsonl",
        &format!(
            "{{\"url\": \"{}\", \"text\": \"wide\"}}\n{{\"url\": \"{}\", \"text\": null}}\n",
            server.url("/wide.jpg"),
            server.url("/square.jpg")
        ),
    );
    assert_ran(&dataset(&scratch, &table, &["--caption-col", "text"]));
    let folder = scratch.output().join("00000");
    let text = |key: &str| std::fs::read_to_string(folder.join(format!("{key}.txt")));
    assert_eq!(text("000000000").unwrap(), "wide");
    assert_eq!(text("000000001").unwrap(), "");
    let scratch = Scratch::new();
    let table = scratch.write("t.jsonl", &std::fs::read_to_string(&table).unwrap());
    assert_ran(&dataset(&scratch, &table, &[]));
    let folder = scratch.output().join("00000");
    assert!(folder.join("000000001.jpg").is_file());
    assert!(!folder.join("000000000.txt").exists() && !folder.join("000000001.txt").exists());
}

/// The webdataset tar and its member names, read by the tar crate and by tar(1).
#[test]
fn webdataset_tar_reads_back_with_standard_readers() {
    let server = ImageServer::start(standard_routes());
    let scratch = Scratch::new();
    let table = scratch.write(
        "t.csv",
        &format!(
            "url,caption\n{},wide\n{},\n{},square\n",
            server.url("/wide.jpg"),
            server.url("/nothing-here.jpg"),
            server.url("/square.jpg")
        ),
    );
    assert_ran(&dataset(
        &scratch,
        &table,
        &[
            "--caption-col",
            "caption",
            "--output-format",
            "webdataset",
            "--samples-per-shard",
            "2",
        ],
    ));
    let shard = |number: u32| scratch.output().join(format!("{number:05}.tar"));
    let mut archive = tar::Archive::new(std::fs::File::open(shard(0)).unwrap());
    let mut members = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().display().to_string();
        assert_eq!(entry.header().mtime().unwrap(), 0);
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        if name.ends_with(".jpg") {
            let image = image::load_from_memory(&bytes).unwrap();
            assert_eq!((image.width(), image.height()), (256, 256));
        }
        if name.ends_with(".txt") {
            assert_eq!(bytes, b"wide");
        }
        members.push(name);
    }
    // Row 1 (a 404) has no members; its failure is in the metadata.
    assert_eq!(members, ["000000.jpg", "000000.txt", "000000.json"]);
    let listed = std::process::Command::new("tar")
        .arg("-tf")
        .arg(shard(1))
        .output()
        .unwrap();
    assert!(listed.status.success());
    assert_eq!(
        String::from_utf8(listed.stdout).unwrap(),
        "000010.jpg\n000010.txt\n000010.json\n"
    );
    let rows = samples(&scratch.output(), 2);
    assert_eq!(rows["000001"]["status"], "failed_to_download");
    assert_eq!(rows["000001"]["error_message"], "HTTP 404 Not Found");
    assert_eq!(rows["000000"]["status"], "success");
    assert_eq!(rows["000000"]["caption"], "wide");
    assert_eq!(rows["000000"]["original_width"], 400);
    assert_eq!(rows["000000"]["sha256"].as_str().unwrap().len(), 64);
    let stats: Value =
        serde_json::from_slice(&std::fs::read(scratch.output().join("stats.json")).unwrap())
            .unwrap();
    assert_eq!(
        (
            stats["count"].as_u64(),
            stats["successes"].as_u64(),
            stats["shards"].as_u64()
        ),
        (Some(3), Some(2), Some(2))
    );
    assert!(
        !scratch.output().join(".grab-dataset").exists(),
        "the work folder is gone after a complete run"
    );
}

#[test]
fn parquet_output_holds_the_images() {
    let server = ImageServer::start(standard_routes());
    let scratch = Scratch::new();
    let table = urls_file(&scratch, &server, &["/wide.jpg", "/corrupt.jpg"]);
    assert_ran(&dataset(
        &scratch,
        &table,
        &["--output-format", "parquet", "--image-size", "32"],
    ));
    let rows = parquet_rows(&scratch.output().join("00000.parquet"));
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["key"], "000000000");
    let reader = SerializedFileReader::new(
        std::fs::File::open(scratch.output().join("00000.parquet")).unwrap(),
    )
    .unwrap();
    let first = reader.get_row_iter(None).unwrap().next().unwrap().unwrap();
    let bytes = first
        .get_column_iter()
        .find_map(|(name, field)| match (name.as_str(), field) {
            ("jpg", parquet::record::Field::Bytes(bytes)) => Some(bytes.data().to_vec()),
            _ => None,
        })
        .expect("a jpg column holding bytes");
    let image = image::load_from_memory(&bytes).unwrap();
    assert_eq!((image.width(), image.height()), (32, 32));
    assert_eq!(rows[1]["status"], "failed_to_resize");
    assert_eq!(rows[1]["jpg"], Value::Null);
    assert!(
        !scratch.output().join("00000.tar").exists() && !scratch.output().join("00000").exists()
    );
}

#[test]
fn failures_are_recorded_and_the_run_goes_on() {
    let server = ImageServer::start(standard_routes());
    let scratch = Scratch::new();
    let table = scratch.write(
        "urls.txt",
        &format!(
            "{}\n{}\n{}\nnot a url\n{}\n{}\n{}\n",
            server.url("/corrupt.jpg"),
            server.url("/bomb.png"),
            server.url("/opted-out.jpg"),
            server.url("/other-bot.jpg"),
            server.url("/stall"),
            server.url("/wide.jpg"),
        ),
    );
    let started = Instant::now();
    let output = dataset(
        &scratch,
        &table,
        &["--timeout", "1", "--output-format", "webdataset"],
    );
    assert_ran(&output);
    // The stalled answer costs its timeout, not the run.
    assert!(started.elapsed() < Duration::from_secs(60));
    let rows = samples(&scratch.output(), 1);
    let status = |key: &str| {
        (
            rows[key]["status"].as_str().unwrap().to_string(),
            rows[key]["error_message"].clone(),
        )
    };
    let (corrupt, error) = status("000000000");
    assert_eq!(corrupt, "failed_to_resize");
    assert!(
        error.as_str().unwrap().starts_with("cannot decode"),
        "{error}"
    );
    let (bomb, error) = status("000000001");
    assert_eq!(bomb, "failed_to_resize");
    assert_eq!(error, "image area too large: 50000x50000 declared");
    assert_eq!(status("000000002").0, "opted_out");
    assert!(
        status("000000003")
            .1
            .as_str()
            .unwrap()
            .contains("not an http or https URL")
    );
    assert_eq!(
        status("000000004").0,
        "success",
        "another agent's directive does not apply"
    );
    assert_eq!(status("000000005").0, "failed_to_download");
    assert!(
        status("000000005")
            .1
            .as_str()
            .unwrap()
            .contains("timed out")
    );
    assert_eq!(status("000000006").0, "success");
    let stats: Value =
        serde_json::from_slice(&std::fs::read(scratch.output().join("00000_stats.json")).unwrap())
            .unwrap();
    assert_eq!(stats["opted_out"], 1);
    assert_eq!(stats["failed_to_resize"], 2);
    assert_eq!(stats["failures"]["cannot decode"], 1);
    let summary = stderr_of(&output);
    assert!(
        summary.contains("7 samples in 1 shard: 2 saved"),
        "{summary}"
    );
    // Opted-out images are not in the tar.
    let listed = std::process::Command::new("tar")
        .arg("-tf")
        .arg(scratch.output().join("00000.tar"))
        .output()
        .unwrap();
    let listed = String::from_utf8(listed.stdout).unwrap();
    assert!(!listed.contains("000000002"), "{listed}");

    // With the opt-out turned off, the same response is saved.
    let scratch = Scratch::new();
    let table = urls_file(&scratch, &server, &["/opted-out.jpg"]);
    assert_ran(&dataset(
        &scratch,
        &table,
        &["--disallowed-header-directives", ""],
    ));
    assert_eq!(
        samples(&scratch.output(), 1)["000000000"]["status"],
        "success"
    );
}

/// Every file of the shards (not the stats, which hold timings), by name.
pub(crate) fn shard_bytes(output: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(output)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            // The shards' own files: not the folder's stats or settings.
            let name = path.display().to_string();
            path.is_file() && !name.ends_with("stats.json") && !name.ends_with("settings.json")
        })
        .map(|path| {
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&path).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

pub(crate) fn many_routes(
    count: usize,
    delay: Option<Duration>,
) -> (HashMap<String, Route>, Vec<String>) {
    let mut routes = HashMap::new();
    let mut paths = Vec::new();
    for index in 0..count {
        let path = format!("/many/{index}.jpg");
        let mut route = jpeg(&format!("many-{index}"), 120 + (index as u32 % 7) * 20, 90);
        route.delay = delay;
        routes.insert(path.clone(), route);
        paths.push(path);
    }
    (routes, paths)
}

#[test]
fn keys_and_bytes_are_the_same_whatever_the_strategy() {
    let (routes, paths) = many_routes(24, None);
    let server = ImageServer::start(routes);
    let mut runs = Vec::new();
    for strategy in STRATEGIES {
        let scratch = Scratch::new();
        let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
        let table = urls_file(&scratch, &server, &paths);
        let output = dataset(
            &scratch,
            &table,
            &[
                "-s",
                strategy,
                "-j",
                "5",
                "--output-format",
                "webdataset",
                "--samples-per-shard",
                "10",
            ],
        );
        assert_ran(&output);
        runs.push((strategy, shard_bytes(&scratch.output())));
    }
    let names: Vec<&str> = runs[0].1.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        [
            "00000.parquet",
            "00000.tar",
            "00001.parquet",
            "00001.tar",
            "00002.parquet",
            "00002.tar"
        ]
    );
    for (strategy, files) in &runs[1..] {
        assert!(files == &runs[0].1, "{strategy} differs from {}", runs[0].0);
    }
}

fn start_dataset(scratch: &Scratch, table: &str, more: &[&str]) -> std::process::Child {
    let output = scratch.output_arg();
    let mut arguments = vec!["dataset", table, "-o", &output, "--progress", "none"];
    arguments.extend_from_slice(more);
    grab_command()
        .args(&arguments)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Whole records in the spools of `output`'s shards: samples a resume reuses.
fn spooled(output: &Path) -> u64 {
    let spool = output.join(".grab-dataset/spool");
    std::fs::read_dir(&spool)
        .map(|shards| {
            shards
                .flatten()
                // A shard written meanwhile takes its spool with it.
                .map(|shard| grab::fs::records_in(&shard.path()).unwrap_or(0))
                .sum()
        })
        .unwrap_or(0)
}

/// Whole records in the spools of `output`'s unfinished shards (a shard
/// complete before its spool was removed is not resumed).
fn reusable(output: &Path) -> u64 {
    let spool = output.join(".grab-dataset/spool");
    std::fs::read_dir(&spool).map_or(0, |shards| {
        shards
            .flatten()
            .filter(|shard| {
                let name = shard.file_name().to_string_lossy().into_owned();
                !output.join(format!("{name}_stats.json")).exists()
            })
            .map(|shard| grab::fs::records_in(&shard.path()).unwrap())
            .sum()
    })
}

/// Samples done in `output` so far: spooled, or in a complete shard of `size`.
fn samples_done(output: &Path, size: u64) -> u64 {
    let complete = std::fs::read_dir(output).map_or(0, |entries| {
        entries
            .flatten()
            .filter(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                name.ends_with("_stats.json") && name.len() > "_stats.json".len()
            })
            .count() as u64
    });
    spooled(output) + complete * size
}

/// A copy of the folder `from` (files and folders) at `to`.
fn copy_folder(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_folder(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The resumed run's stats, after checking that its shards are `whole`'s
/// bytes and that it counted every sample once: from a complete shard, a
/// spooled record or a download.
fn assert_resumed_to(
    whole: &[(String, Vec<u8>)],
    scratch: &Scratch,
    rows: u64,
    size: u64,
) -> Value {
    let stats: Value =
        serde_json::from_slice(&std::fs::read(scratch.output().join("stats.json")).unwrap())
            .unwrap();
    assert_eq!(stats["count"], rows, "{stats}");
    let counted = stats["shards_reused"].as_u64().unwrap() * size
        + stats["samples_reused"].as_u64().unwrap()
        + stats["samples_fetched"].as_u64().unwrap();
    assert_eq!(counted, rows, "every sample counted once: {stats}");
    let resumed = shard_bytes(&scratch.output());
    let names = |files: &[(String, Vec<u8>)]| {
        files
            .iter()
            .map(|(name, _)| name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(whole), names(&resumed));
    for ((name, left), (_, right)) in whole.iter().zip(&resumed) {
        assert!(
            left == right,
            "{name} differs between the uninterrupted and the resumed run"
        );
    }
    assert!(
        !scratch.output().join(".grab-dataset").exists(),
        "the spool outlived the run"
    );
    stats
}

#[test]
fn killed_then_resumed_gives_the_same_bytes_as_uninterrupted() {
    let (routes, paths) = many_routes(60, Some(Duration::from_millis(40)));
    let server = ImageServer::start(routes);
    let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
    let flags = [
        "-j",
        "3",
        "--output-format",
        "webdataset",
        "--samples-per-shard",
        "10",
    ];

    let whole = Scratch::new();
    let table = urls_file(&whole, &server, &paths);
    assert_ran(&dataset(&whole, &table, &flags));

    let killed = Scratch::new();
    let table = urls_file(&killed, &server, &paths);
    let mut child = start_dataset(&killed, &table, &flags);
    let deadline = Instant::now() + Duration::from_secs(60);
    // Kill once some samples are spooled and at least one shard is written,
    // with others still open.
    while !(killed.output().join("00000_stats.json").exists() && spooled(&killed.output()) >= 3) {
        assert!(Instant::now() < deadline, "the run never got going");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be killed"
        );
        thread::sleep(Duration::from_millis(5));
    }
    // SIGKILL on Unix, TerminateProcess on Windows: no cleanup either way.
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !killed.output().join("00005_stats.json").exists(),
        "killed too late to prove anything"
    );
    // No shard under a final name is partial: every tar present is complete.
    for (name, _) in shard_bytes(&killed.output()) {
        if name.ends_with(".tar") {
            let stats = killed.output().join(name.replace(".tar", "_stats.json"));
            assert!(
                stats.exists(),
                "{name} without its stats: written before it was complete"
            );
        }
    }

    let resumed = dataset(&killed, &table, &flags);
    assert_ran(&resumed);
    let stats: Value =
        serde_json::from_slice(&std::fs::read(killed.output().join("stats.json")).unwrap())
            .unwrap();
    assert!(stats["shards_reused"].as_u64().unwrap() >= 1, "{stats}");
    assert!(stats["samples_fetched"].as_u64().unwrap() < 60, "{stats}");
    assert_eq!(stats["count"], 60);
    let (whole, killed) = (shard_bytes(&whole.output()), shard_bytes(&killed.output()));
    assert_eq!(whole.len(), 12);
    let names = |files: &[(String, Vec<u8>)]| {
        files
            .iter()
            .map(|(name, _)| name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&whole), names(&killed));
    for ((name, left), (_, right)) in whole.iter().zip(&killed) {
        assert!(
            left == right,
            "{name} differs between the uninterrupted and the resumed run"
        );
    }
}

/// Starts `grab dataset` and kills it (SIGKILL, no cleanup) once at least
/// `after` samples are done (spooled or in complete shards of `size`).
fn kill_after(scratch: &Scratch, table: &str, flags: &[&str], after: u64, size: u64) -> u64 {
    let mut child = start_dataset(scratch, table, flags);
    let deadline = Instant::now() + Duration::from_secs(60);
    while samples_done(&scratch.output(), size) < after {
        assert!(Instant::now() < deadline, "the run never got going");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before {after} samples were done"
        );
        thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    samples_done(&scratch.output(), size)
}

#[test]
fn killed_at_several_points_then_resumed_gives_the_same_bytes() {
    let (routes, paths) = many_routes(60, Some(Duration::from_millis(30)));
    let server = ImageServer::start(routes);
    let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
    let flags = [
        "-j",
        "3",
        "--output-format",
        "webdataset",
        "--samples-per-shard",
        "10",
    ];
    let reference = Scratch::new();
    let table = urls_file(&reference, &server, &paths);
    assert_ran(&dataset(&reference, &table, &flags));
    let whole = shard_bytes(&reference.output());
    assert_eq!(whole.len(), 12);

    // Killed once early, in the first shard; once with shards written and
    // others spooled; and one run killed twice over before it resumes.
    for kills in [&[2u64][..], &[23], &[7, 41]] {
        let scratch = Scratch::new();
        let table = urls_file(&scratch, &server, &paths);
        for &after in kills {
            let done = kill_after(&scratch, &table, &flags, after, 10);
            assert!(done < 60, "killed at {kills:?} too late to prove anything");
        }
        let spooled_at_kill = reusable(&scratch.output());
        assert_ran(&dataset(&scratch, &table, &flags));
        let stats = assert_resumed_to(&whole, &scratch, 60, 10);
        // Every whole record the kill left is reused, none fetched again.
        assert_eq!(
            stats["samples_reused"].as_u64(),
            Some(spooled_at_kill),
            "{kills:?}: {stats}"
        );
    }
}

/// A run of 20 rows, 10 to a shard, killed with the first 6 spooled and the
/// rest held by the server: the shards of an uninterrupted run, the killed
/// output, the table and the server (no longer holding).
struct Killed {
    server: ImageServer,
    whole: Vec<(String, Vec<u8>)>,
    killed: Scratch,
    table: String,
    log: std::path::PathBuf,
    /// The log's records, in the order they were appended.
    records: Vec<grab::fs::Found>,
}

const KILLED_FLAGS: [&str; 6] = [
    "-j",
    "3",
    "--output-format",
    "webdataset",
    "--samples-per-shard",
    "10",
];

fn killed_with_six_spooled() -> Killed {
    let (routes, paths) = many_routes(20, None);
    let server = ImageServer::start(routes);
    let paths: Vec<String> = paths
        .iter()
        .enumerate()
        .map(|(row, path)| match row < 6 {
            true => path.clone(),
            false => format!("/held{path}"),
        })
        .collect();
    let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
    let reference = Scratch::new();
    let table = urls_file(&reference, &server, &paths);
    assert_ran(&dataset(&reference, &table, &KILLED_FLAGS));
    let whole = shard_bytes(&reference.output());
    assert_eq!(whole.len(), 4);

    server.hold(true);
    let killed = Scratch::new();
    let table = urls_file(&killed, &server, &paths);
    let done = kill_after(&killed, &table, &KILLED_FLAGS, 6, 10);
    server.hold(false);
    assert_eq!(done, 6, "only the rows not held are done");
    let log = killed.output().join(".grab-dataset/spool/00000/0.log");
    let records = grab::fs::scan(&std::fs::File::open(&log).unwrap())
        .unwrap()
        .records;
    let mut rows: Vec<u64> = records.iter().map(|record| record.key).collect();
    rows.sort();
    assert_eq!(rows, [0, 1, 2, 3, 4, 5]);
    Killed {
        server,
        whole,
        killed,
        table,
        log,
        records,
    }
}

impl Killed {
    /// The killed output copied, its log changed by `damage`, then resumed:
    /// the resumed run's stats once its shards are checked.
    fn resume_after(&self, damage: impl FnOnce(&Path)) -> Value {
        let copy = Scratch::new();
        copy_folder(&self.killed.output(), &copy.output());
        let log = copy
            .output()
            .join(self.log.strip_prefix(self.killed.output()).unwrap());
        damage(&log);
        assert_ran(&dataset(&copy, &self.table, &KILLED_FLAGS));
        assert_resumed_to(&self.whole, &copy, 20, 10)
    }

    /// Requests so far for the sample of `row`.
    fn hits(&self, row: u64) -> usize {
        self.server.hits(&format!("/many/{row}.jpg"))
    }
}

#[test]
fn a_spool_log_torn_mid_record_resumes_to_the_same_bytes() {
    let killed = killed_with_six_spooled();
    let last = *killed.records.last().unwrap();
    let header = grab::fs::SPOOL_HEADER as u64;
    let length = std::fs::metadata(&killed.log).unwrap().len();
    assert_eq!(last.offset + header + last.length, length);
    // Inside the last record's header, at the start of its payload, in its
    // middle, one byte short.
    let cuts = [
        last.offset + 1,
        last.offset + 12,
        last.offset + header - 1,
        last.offset + header,
        last.offset + header + last.length / 2,
        length - 1,
    ];
    for cut in cuts {
        let before: Vec<usize> = (0..6).map(|row| killed.hits(row)).collect();
        let stats = killed.resume_after(|log| {
            std::fs::OpenOptions::new()
                .write(true)
                .open(log)
                .unwrap()
                .set_len(cut)
                .unwrap();
        });
        assert_eq!(stats["samples_reused"], 5, "cut at {cut}: {stats}");
        assert_eq!(stats["samples_fetched"], 15, "cut at {cut}: {stats}");
        for row in 0..6 {
            let again = killed.hits(row) - before[row as usize];
            let expected = usize::from(row == last.key);
            assert_eq!(
                again, expected,
                "cut at {cut}: row {row} fetched {again} times"
            );
        }
    }
}

#[test]
fn a_spool_record_failing_its_checksum_is_dropped_with_all_after_it() {
    let killed = killed_with_six_spooled();
    let records = killed.records.clone();
    let header = grab::fs::SPOOL_HEADER as u64;
    // The last record, then the third: from it on, nothing counts.
    for damaged in [5usize, 2] {
        let record = records[damaged];
        let before: Vec<usize> = (0..6).map(|row| killed.hits(row)).collect();
        let stats = killed.resume_after(|log| {
            let mut bytes = std::fs::read(log).unwrap();
            bytes[(record.offset + header + record.length / 2) as usize] ^= 0x20;
            std::fs::write(log, bytes).unwrap();
        });
        assert_eq!(
            stats["samples_reused"].as_u64(),
            Some(damaged as u64),
            "record {damaged} damaged: {stats}"
        );
        for (position, found) in records.iter().enumerate() {
            let again = killed.hits(found.key) - before[found.key as usize];
            let expected = usize::from(position >= damaged);
            assert_eq!(
                again, expected,
                "record {damaged} damaged: row {} fetched {again} times",
                found.key
            );
        }
    }
}

#[test]
fn a_complete_folder_is_skipped_on_a_rerun() {
    let server = ImageServer::start(standard_routes());
    let scratch = Scratch::new();
    let table = urls_file(
        &scratch,
        &server,
        &["/wide.jpg", "/square.jpg", "/tall.png"],
    );
    assert_ran(&dataset(&scratch, &table, &["--samples-per-shard", "2"]));
    let before = shard_bytes(&scratch.output());
    let again = dataset(&scratch, &table, &["--samples-per-shard", "2", "--json"]);
    assert_ran(&again);
    let stats: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(
        (
            stats["shards_reused"].as_u64(),
            stats["samples_fetched"].as_u64()
        ),
        (Some(2), Some(0))
    );
    assert_eq!(stats["count"], 3);
    assert!(before == shard_bytes(&scratch.output()));
}

#[test]
fn an_unreadable_table_or_missing_column_is_a_usage_error() {
    let scratch = Scratch::new();
    let missing = scratch
        .root
        .path()
        .join("missing.csv")
        .display()
        .to_string();
    assert_eq!(dataset(&scratch, &missing, &[]).status.code(), Some(2));
    let table = scratch.write("t.csv", "link\nhttp://127.0.0.1:9/a.jpg\n");
    let output = dataset(&scratch, &table, &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr_of(&output).contains("no column named \"url\""),
        "{}",
        stderr_of(&output)
    );
    let unknown = scratch.write("t.xyz", "");
    assert_eq!(dataset(&scratch, &unknown, &[]).status.code(), Some(2));
}

#[test]
fn a_saved_column_may_not_take_a_metadata_fields_name() {
    let scratch = Scratch::new();
    let table = scratch.write(
        "t.csv",
        "url,width,status,id\nhttp://127.0.0.1:9/a.jpg,4,x,1\n",
    );
    let output = dataset(&scratch, &table, &["--save-cols", "id,width,status"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr_of(&output));
    assert!(
        stderr_of(&output).contains("cannot save width, status"),
        "{}",
        stderr_of(&output)
    );
    assert!(!scratch.output().join("settings.json").exists());
    assert_ran(&dataset(&scratch, &table, &["--save-cols", "id"]));
}

#[test]
fn the_user_agent_names_grab_unless_given() {
    let server = ImageServer::start(standard_routes());
    let scratch = Scratch::new();
    let table = urls_file(&scratch, &server, &["/wide.jpg"]);
    assert_ran(&dataset(&scratch, &table, &["-s", "async"]));
    let scratch = Scratch::new();
    let table = urls_file(&scratch, &server, &["/wide.jpg"]);
    assert_ran(&dataset(
        &scratch,
        &table,
        &["--user-agent", "dataset-bot/2"],
    ));
    let agents = server.seen.agents.lock().unwrap().clone();
    assert_eq!(
        agents,
        [
            format!("grab/{}", env!("CARGO_PKG_VERSION")),
            "dataset-bot/2".to_string()
        ]
    );
}

/// `grab dataset` of `table` with parquet output and `more` flags: each
/// sample's URL and metadata by key.
fn run_table(
    scratch: &Scratch,
    table: &str,
    more: &[&str],
) -> HashMap<String, serde_json::Map<String, Value>> {
    let mut flags = vec!["--output-format", "parquet"];
    flags.extend_from_slice(more);
    let output = dataset(scratch, table, &flags);
    assert_ran(&output);
    let mut rows = HashMap::new();
    for entry in std::fs::read_dir(scratch.output()).unwrap() {
        let path = entry.unwrap().path();
        if path
            .extension()
            .is_some_and(|extension| extension == "parquet")
        {
            for row in parquet_rows(&path) {
                rows.insert(row["key"].as_str().unwrap().to_string(), row);
            }
        }
    }
    rows
}

#[test]
fn a_folder_of_tables_is_read_in_order_each_file_starting_a_shard() {
    let server = ImageServer::start(standard_routes());
    let url = |number: usize| server.url(&format!("/wide.jpg?{number}"));
    let scratch = Scratch::new();
    let folder = scratch.root.path().join("tables");
    std::fs::create_dir(&folder).unwrap();
    // Named so that sorting, not listing order, decides: 3 rows, 2, then 4.
    let sizes = [
        ("part-0.parquet", 3),
        ("part-1.parquet", 2),
        ("part-2.parquet", 4),
    ];
    let mut next = 0;
    for (name, size) in sizes {
        let rows: Vec<(String, String, String)> = (next..next + size)
            .map(|number| (number.to_string(), url(number), format!("row {number}")))
            .collect();
        next += size;
        let borrowed: Vec<(&str, &str, &str)> = rows
            .iter()
            .map(|(id, link, text)| (id.as_str(), link.as_str(), text.as_str()))
            .collect();
        write_compressed_table(
            &folder.join(name),
            &borrowed,
            parquet::basic::Compression::SNAPPY,
        );
    }
    // Not a table: left out of the folder's files.
    std::fs::write(folder.join("_SUCCESS"), "").unwrap();
    let samples = run_table(
        &scratch,
        &folder.display().to_string(),
        &[
            "--url-col",
            "link",
            "--save-cols",
            "id",
            "--samples-per-shard",
            "2",
        ],
    );
    // Keys are shard x 10 + index: file 0 fills shards 0 and 1, file 1 starts
    // shard 2, file 2 starts shard 3.
    let mut keys: Vec<(&str, i64)> = samples
        .iter()
        .map(|(key, row)| (key.as_str(), row["id"].as_str().unwrap().parse().unwrap()))
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            ("000000", 0),
            ("000001", 1),
            ("000010", 2),
            ("000020", 3),
            ("000021", 4),
            ("000030", 5),
            ("000031", 6),
            ("000040", 7),
            ("000041", 8),
        ]
    );
    assert!(samples.values().all(|row| row["status"] == "success"));
    // A glob names the same files.
    let again = Scratch::new();
    let pattern = folder.join("part-*.parquet").display().to_string();
    let globbed = run_table(
        &again,
        &pattern,
        &["--url-col", "link", "--samples-per-shard", "2"],
    );
    let mut globbed: Vec<&String> = globbed.keys().collect();
    globbed.sort();
    let mut expected: Vec<&String> = samples.keys().collect();
    expected.sort();
    assert_eq!(globbed, expected);
}

#[test]
fn compressed_text_tables_and_json_arrays_are_read() {
    use std::io::Write as _;
    let server = ImageServer::start(standard_routes());
    let (wide, square) = (server.url("/wide.jpg"), server.url("/square.jpg"));
    let scratch = Scratch::new();
    let gzip = scratch.root.path().join("urls.txt.gz");
    let mut encoder =
        flate2::write::GzEncoder::new(std::fs::File::create(&gzip).unwrap(), Default::default());
    write!(encoder, "{wide}\n{square}\n").unwrap();
    encoder.finish().unwrap();
    let zstd_table = scratch.root.path().join("t.csv.zst");
    std::fs::write(
        &zstd_table,
        zstd::encode_all(format!("url,id\n{wide},1\n{square},2\n").as_bytes(), 3).unwrap(),
    )
    .unwrap();
    let bzip2_table = scratch.root.path().join("t.jsonl.bz2");
    let mut encoder = bzip2::write::BzEncoder::new(
        std::fs::File::create(&bzip2_table).unwrap(),
        Default::default(),
    );
    write!(
        encoder,
        "{{\"url\": \"{wide}\"}}\n{{\"url\": \"{square}\"}}\n"
    )
    .unwrap();
    encoder.finish().unwrap();
    for table in [&gzip, &zstd_table, &bzip2_table] {
        let run = Scratch::new();
        let samples = run_table(&run, &table.display().to_string(), &[]);
        assert_eq!(samples.len(), 2, "{}", table.display());
        assert_eq!(samples["000000000"]["url"], wide.as_str());
        assert_eq!(samples["000000001"]["status"], "success");
    }
    // pandas' to_json(orient="records"): a JSON array, kept types and all.
    let array = scratch.write(
        "t.json",
        &format!(
            "[{{\"url\": \"{wide}\", \"score\": 0.31}}, {{\"url\": \"{square}\", \"score\": 2}}]"
        ),
    );
    let run = Scratch::new();
    let output = dataset(
        &run,
        &array,
        &["--input-format", "json", "--save-cols", "score"],
    );
    assert_ran(&output);
    let metadata: Value =
        serde_json::from_slice(&std::fs::read(run.output().join("00000/000000000.json")).unwrap())
            .unwrap();
    assert_eq!(metadata["score"], 0.31);
}

/// Records with link, text and id, as JSON objects.
fn records(links: &[String]) -> Vec<String> {
    links
        .iter()
        .enumerate()
        .map(|(index, link)| {
            format!("{{\"link\": \"{link}\", \"text\": \"image {index}\", \"id\": {index}}}")
        })
        .collect()
}

#[test]
fn a_json_array_gives_the_shards_its_records_give_as_json_lines() {
    use std::io::Write as _;
    let server = ImageServer::start(standard_routes());
    let links: Vec<String> = [
        "/wide.jpg",
        "/square.jpg",
        "/tall.png",
        "/rotated.jpg",
        "/wide.jpg",
    ]
    .iter()
    .map(|path| server.url(path))
    .collect();
    let records = records(&links);
    let flags = [
        &LINK_TEXT_ID[..],
        &[
            "--samples-per-shard",
            "2",
            "--image-size",
            "64",
            "--output-format",
            "webdataset",
        ],
    ]
    .concat();
    let lines = Scratch::new();
    let table = lines.write("t.jsonl", &(records.join("\n") + "\n"));
    assert_ran(&dataset(&lines, &table, &flags));
    let expected = shard_bytes(&lines.output());
    let tars: Vec<&str> = expected
        .iter()
        .map(|(name, _)| name.as_str())
        .filter(|name| name.ends_with(".tar"))
        .collect();
    assert_eq!(
        tars,
        ["00000.tar", "00001.tar", "00002.tar"],
        "two rows a shard"
    );

    // One record a line, as a pretty-printer writes; also gzipped.
    let array = format!("[\n  {}\n]\n", records.join(",\n  "));
    let plain = Scratch::new();
    let plain_table = plain.write("t.json", &array);
    let gzipped = Scratch::new();
    let gzipped_table = gzipped.root.path().join("t.json.gz");
    let mut encoder = flate2::write::GzEncoder::new(
        std::fs::File::create(&gzipped_table).unwrap(),
        Default::default(),
    );
    encoder.write_all(array.as_bytes()).unwrap();
    encoder.finish().unwrap();
    // The gzipped one without --input-format: a .json file that opens with
    // `[` is read as an array.
    for (scratch, table, format) in [
        (&plain, plain_table, &["--input-format", "json"][..]),
        (&gzipped, gzipped_table.display().to_string(), &[][..]),
    ] {
        let more = [&flags[..], format].concat();
        assert_ran(&dataset(scratch, &table, &more));
        let shards = shard_bytes(&scratch.output());
        let names = |files: &[(String, Vec<u8>)]| -> Vec<String> {
            files.iter().map(|(name, _)| name.clone()).collect()
        };
        assert_eq!(names(&shards), names(&expected), "{table}");
        assert!(shards == expected, "{table}: other bytes than from jsonl");
    }
}

#[test]
fn a_bad_record_stops_the_reading_there_in_a_json_array_as_in_jsonl() {
    let server = ImageServer::start(standard_routes());
    let links: Vec<String> = ["/wide.jpg", "/square.jpg", "/rotated.jpg", "/tall.png"]
        .iter()
        .map(|path| server.url(path))
        .collect();
    let mut records = records(&links);
    // The fourth record misses a comma; the fifth is never read.
    records.insert(3, "{\"link\": \"http://a/x\" \"id\": 3}".to_string());
    let flags = ["--url-col", "link", "--samples-per-shard", "2"];
    let lines = Scratch::new();
    let lines_table = lines.write("t.jsonl", &(records.join("\n") + "\n"));
    let array = Scratch::new();
    let array_table = array.write("t.json", &format!("[\n{}\n]\n", records.join(",\n")));
    // Where: jsonl's line; the array's record, and serde_json's line and column.
    for (scratch, table, place, position) in [
        (
            &lines,
            &lines_table,
            "t.jsonl:4: not a JSON object: ",
            "line 1 column 23",
        ),
        (
            &array,
            &array_table,
            "t.json record 4: not a JSON object: ",
            "line 5 column 23",
        ),
    ] {
        let mut more = flags.to_vec();
        if table.ends_with(".json") {
            more.extend(["--input-format", "json"]);
        }
        let output = dataset(scratch, table, &more);
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(1), "{table}: {stderr}");
        assert!(
            stderr.contains("stopped reading the table: ")
                && stderr.contains(place)
                && stderr.contains(position),
            "{table}: {stderr}"
        );
        // The rows before it are done: the first shard whole; the second,
        // cut short, left to a run on a readable table.
        let output_folder = scratch.output();
        assert!(output_folder.join("00000_stats.json").is_file(), "{table}");
        assert!(!output_folder.join("00001_stats.json").exists(), "{table}");
        assert_eq!(samples(&output_folder, 1).len(), 2, "{table}");
    }
    assert_eq!(
        server.hits("/tall.png"),
        0,
        "a row after the bad one was read"
    );
}

#[test]
fn every_format_names_the_columns_it_has_when_one_is_missing() {
    let scratch = Scratch::new();
    let tables = [
        scratch.write("t.csv", "link,text\nhttp://a/1,x\n"),
        scratch.write("t.jsonl", "{\"link\": \"http://a/1\", \"text\": \"x\"}\n"),
        scratch.write("t.json", "[{\"link\": \"http://a/1\", \"text\": \"x\"}]"),
    ];
    for table in &tables {
        let mut flags = vec![];
        if table.ends_with(".json") {
            flags.extend(["--input-format", "json"]);
        }
        flags.extend(["--url-col", "URL"]);
        let output = dataset(&scratch, table, &flags);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{table}: {}",
            stderr_of(&output)
        );
        let stderr = stderr_of(&output);
        assert!(
            stderr.contains("no column named \"URL\"") && stderr.contains("link, text"),
            "{table}: {stderr}"
        );
    }
    assert!(!scratch.output().join("stats.json").exists());
    // A folder holding no table is a usage error naming it.
    let empty = scratch.root.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let output = dataset(&scratch, &empty.display().to_string(), &[]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr_of(&output));
    assert!(stderr_of(&output).contains("no table files"));
}

#[test]
fn a_list_column_of_parquet_is_named_and_saved_whole() {
    use parquet::data_type::{ByteArray, ByteArrayType, DoubleType};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;

    let server = ImageServer::start(standard_routes());
    let wide = server.url("/wide.jpg");
    let scratch = Scratch::new();
    let path = scratch.root.path().join("t.parquet");
    // As pyarrow writes a list<double> column.
    let schema = parse_message_type(
        "message table { REQUIRED BYTE_ARRAY url (UTF8); OPTIONAL group face_bboxes (LIST) { REPEATED group list { OPTIONAL DOUBLE element; } } }",
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
    column
        .typed::<ByteArrayType>()
        .write_batch(&[ByteArray::from(wide.as_str())], None, None)
        .unwrap();
    column.close().unwrap();
    let mut column = group.next_column().unwrap().unwrap();
    column
        .typed::<DoubleType>()
        .write_batch(&[0.1, 0.25], Some(&[3, 3]), Some(&[0, 1]))
        .unwrap();
    column.close().unwrap();
    group.close().unwrap();
    writer.close().unwrap();

    let output = dataset(
        &scratch,
        &path.display().to_string(),
        &["--save-cols", "face_bboxes"],
    );
    assert_ran(&output);
    let metadata: Value = serde_json::from_slice(
        &std::fs::read(scratch.output().join("00000/000000000.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(metadata["face_bboxes"], serde_json::json!([0.1, 0.25]));
}

#[test]
fn a_byte_order_mark_before_the_first_url_of_a_txt_table_is_ignored() {
    let server = ImageServer::start(standard_routes());
    let scratch = Scratch::new();
    let table = scratch.write(
        "urls.txt",
        &format!(
            "\u{FEFF}{}\n{}\n",
            server.url("/wide.jpg"),
            server.url("/square.jpg")
        ),
    );
    let output = dataset(&scratch, &table, &["--json"]);
    assert_ran(&output);
    let stats: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        (stats["count"].as_u64(), stats["successes"].as_u64()),
        (Some(2), Some(2)),
        "{stats}"
    );
}

/// `--memory-limit` bounds the bodies a run holds: with room for one 50,000
/// byte body, the eight rows are fetched one at a time whatever `-j` says;
/// without it, the default budget lets them overlap.
#[test]
fn the_memory_limit_bounds_the_bodies_in_flight() {
    let most_at_once = |limit: &[&str]| {
        let server = super::faults::FaultServer::start();
        let scratch = Scratch::new();
        let table: String = (1..=8)
            .map(|number| server.url(&format!("/busy/b{number}")) + "\n")
            .collect();
        let table = scratch.write("urls.txt", &table);
        let mut more = vec!["-j", "8", "--image-workers", "1"];
        more.extend_from_slice(limit);
        let output = dataset(&scratch, &table, &more);
        assert_ran(&output);
        server.most_at_once()
    };
    assert_eq!(most_at_once(&["--memory-limit", "50k"]), 1);
    assert!(
        most_at_once(&[]) > 1,
        "the default budget holds eight bodies"
    );
}
