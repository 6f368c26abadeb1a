//! `grab dataset` on img2dataset's recipe options: `--oom-shard-count`,
//! `--compute-hash`, `--verify-hash-col`, `--bbox-col`, the `exif` field,
//! lossy WebP, `--disable-all-reencoding`; and DataComp's recipe against what
//! img2dataset gave for the same tables (tests/datacomp/expected.json, made by
//! tests/datacomp/regenerate.sh).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use grab::fs::hex;
use serde_json::{Map, Value, json};
use sha2::Digest;

use super::dataset::{ImageServer, Route, dataset, jpeg, parquet_rows, rotated_jpeg};
use super::support::{Scratch, gallery, grab, stderr_of};

fn assert_ran(output: &std::process::Output) {
    assert!(
        output.status.success(),
        "grab dataset failed: {}",
        stderr_of(output)
    );
}

/// Every member of a tar: name and bytes, in order.
fn tar_members(path: &Path) -> Vec<(String, Vec<u8>)> {
    let mut archive = tar::Archive::new(std::fs::File::open(path).unwrap());
    archive
        .entries()
        .unwrap()
        .map(|entry| {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().display().to_string();
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            (name, bytes)
        })
        .collect()
}

fn json_of(bytes: &[u8]) -> Map<String, Value> {
    serde_json::from_slice(bytes).unwrap()
}

/// Writes DataComp-style tables, as pyarrow writes them (snappy, `face_bboxes`
/// a list of lists of doubles), from tests/datacomp/rows.json's rows, their
/// paths made URLs of `base`; returns the folder.
fn write_datacomp_tables(folder: &Path, base: &str, files: &[Value]) {
    use parquet::basic::Compression;
    use parquet::data_type::{ByteArray, ByteArrayType, DoubleType};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;

    std::fs::create_dir_all(folder).unwrap();
    let schema = Arc::new(
        parse_message_type(
            "message schema {
                OPTIONAL BYTE_ARRAY url (UTF8);
                OPTIONAL BYTE_ARRAY text (UTF8);
                OPTIONAL BYTE_ARRAY uid (UTF8);
                OPTIONAL group face_bboxes (LIST) {
                    REPEATED group list {
                        OPTIONAL group element (LIST) {
                            REPEATED group list { OPTIONAL DOUBLE element; }
                        }
                    }
                }
            }",
        )
        .unwrap(),
    );
    for (number, rows) in files.iter().enumerate() {
        let rows = rows.as_array().unwrap();
        let path = folder.join(format!("part-{number:05}.parquet"));
        let properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build();
        let mut writer = SerializedFileWriter::new(
            std::fs::File::create(&path).unwrap(),
            schema.clone(),
            Arc::new(properties),
        )
        .unwrap();
        let mut group = writer.next_row_group().unwrap();
        let text = |row: &Value, name: &str| -> ByteArray {
            match name {
                "url" => {
                    ByteArray::from(format!("{base}{}", row["path"].as_str().unwrap()).as_str())
                }
                _ => ByteArray::from(row[name].as_str().unwrap()),
            }
        };
        for name in ["url", "text", "uid"] {
            let values: Vec<ByteArray> = rows.iter().map(|row| text(row, name)).collect();
            let mut column = group.next_column().unwrap().unwrap();
            column
                .typed::<ByteArrayType>()
                .write_batch(&values, Some(&vec![1; rows.len()]), None)
                .unwrap();
            column.close().unwrap();
        }
        // Levels of list<list<double>>: definition 0 a null list, 1 an
        // empty one, 5 a value; repetition 0 a new row, 1 a new box, 2 the
        // next corner of a box.
        let (mut values, mut definitions, mut repetitions) = (Vec::new(), Vec::new(), Vec::new());
        for row in rows {
            match row["face_bboxes"].as_array() {
                None => {
                    definitions.push(0);
                    repetitions.push(0);
                }
                Some(boxes) if boxes.is_empty() => {
                    definitions.push(1);
                    repetitions.push(0);
                }
                Some(boxes) => {
                    for (index, one) in boxes.iter().enumerate() {
                        for (corner, value) in one.as_array().unwrap().iter().enumerate() {
                            values.push(value.as_f64().unwrap());
                            definitions.push(5);
                            repetitions.push(match (index, corner) {
                                (0, 0) => 0,
                                (_, 0) => 1,
                                _ => 2,
                            });
                        }
                    }
                }
            }
        }
        let mut column = group.next_column().unwrap().unwrap();
        column
            .typed::<DoubleType>()
            .write_batch(&values, Some(&definitions), Some(&repetitions))
            .unwrap();
        column.close().unwrap();
        group.close().unwrap();
        writer.close().unwrap();
    }
}

/// DataComp's download (download_upstream.py) with grab's flags, against the
/// same tables and images img2dataset had: the same files, tar members and
/// JSON metadata, every field and value (the URLs' server aside). What
/// legitimately differs is not in these: the image bytes (another JPEG
/// encoder, another resampler, the blur's rounding), the member order in a
/// tar (img2dataset's is the order downloads finished, grab's the key
/// order), the JSON's layout (img2dataset indents and keeps insertion order,
/// grab writes compact sorted keys), timings and error texts in the stats.
#[test]
fn datacomp_recipe_gives_img2datasets_keys_members_and_metadata() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/datacomp");
    let rows: Value =
        serde_json::from_slice(&std::fs::read(fixture.join("rows.json")).unwrap()).unwrap();
    let expected: Value =
        serde_json::from_slice(&std::fs::read(fixture.join("expected.json")).unwrap()).unwrap();
    let server = gallery();
    let base = server.base_url();
    let scratch = Scratch::new();
    let tables = scratch.root.path().join("tables");
    write_datacomp_tables(&tables, &base, rows["files"].as_array().unwrap());
    let output = dataset(
        &scratch,
        &tables.display().to_string(),
        &[
            "--output-format",
            "webdataset",
            "--url-col",
            "url",
            "--caption-col",
            "text",
            "--bbox-col",
            "face_bboxes",
            "--save-cols",
            "uid",
            "--oom-shard-count",
            "8",
            "--samples-per-shard",
            "3",
            "--image-size",
            "512",
            "--resize-mode",
            "keep_ratio_largest",
            "--resize-only-if-bigger",
            "--retries",
            "2",
        ],
    );
    assert_ran(&output);
    let out = scratch.output();
    let mut files: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(|first: char| first.is_ascii_digit()))
        .collect();
    files.sort();
    assert_eq!(json!(files), expected["files"]);
    let local = |value: &Value| match value.as_str() {
        Some(url) if url.starts_with(&base) => Value::String(url[base.len()..].to_string()),
        _ => value.clone(),
    };
    for (tar, shard) in expected["shards"].as_object().unwrap() {
        let members = tar_members(&out.join(tar));
        let names: BTreeSet<&str> = members.iter().map(|(name, _)| name.as_str()).collect();
        let wanted: BTreeSet<&str> = shard["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|name| name.as_str().unwrap())
            .collect();
        assert_eq!(names, wanted, "{tar}");
        for (name, bytes) in &members {
            let Some(key) = name.strip_suffix(".json") else {
                continue;
            };
            let metadata: BTreeMap<String, Value> = json_of(bytes)
                .into_iter()
                .map(|(field, value)| (field, local(&value)))
                .collect();
            let wanted: BTreeMap<String, Value> = shard["samples"][key]
                .as_object()
                .unwrap()
                .clone()
                .into_iter()
                .collect();
            assert_eq!(metadata, wanted, "{tar} {key}");
        }
    }
    let mut statuses = Map::new();
    for name in &files {
        if name.ends_with(".parquet") {
            for row in parquet_rows(&out.join(name)) {
                statuses.insert(
                    row["key"].as_str().unwrap().to_string(),
                    row["status"].clone(),
                );
            }
        }
    }
    assert_eq!(Value::Object(statuses), expected["statuses"]);
}

/// A server of a checkerboard PNG (returned too), a JPEG, and a JPEG with EXIF.
fn picture_server() -> (ImageServer, Vec<u8>) {
    // Squares of 2 px: any blur shows on every pixel it reaches.
    let checkerboard = image::RgbImage::from_fn(200, 200, |x, y| {
        let value = if (x / 2 + y / 2) % 2 == 0 { 30 } else { 220 };
        image::Rgb([value, value / 2, 255 - value])
    });
    let mut png = Vec::new();
    image::DynamicImage::ImageRgb8(checkerboard)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let mut routes = HashMap::new();
    routes.insert(
        "/faces.png".to_string(),
        Route {
            headers: vec![("content-type".into(), "image/png".into())],
            body: png.clone(),
            delay: None,
        },
    );
    routes.insert("/photo.jpg".to_string(), jpeg("photo", 120, 80));
    routes.insert(
        "/rotated.jpg".to_string(),
        Route {
            headers: vec![("content-type".into(), "image/jpeg".into())],
            body: rotated_jpeg(),
            delay: None,
        },
    );
    (ImageServer::start(routes), png)
}

fn rgb(bytes: &[u8]) -> image::RgbImage {
    image::load_from_memory(bytes).unwrap().into_rgb8()
}

#[test]
fn bbox_col_blurs_the_boxes_and_nothing_else() {
    let (server, _) = picture_server();
    let scratch = Scratch::new();
    let url = server.url("/faces.png");
    let table = scratch.write(
        "t.csv",
        &format!("url,face_bboxes\n{url},\"[[0.25, 0.25, 0.5, 0.5]]\"\n{url},\n{url},faces\n"),
    );
    let flags = ["--resize-mode", "no", "--encode-format", "png"];
    let mut blurred_flags = flags.to_vec();
    blurred_flags.extend(["--bbox-col", "face_bboxes"]);
    assert_ran(&dataset(&scratch, &table, &blurred_flags));
    let folder = scratch.output().join("00000");
    let blurred = rgb(&std::fs::read(folder.join("000000000.png")).unwrap());
    // No boxes: the image as it is without --bbox-col.
    let unboxed = rgb(&std::fs::read(folder.join("000000001.png")).unwrap());
    let metadata = json_of(&std::fs::read(folder.join("000000000.json")).unwrap());
    assert_eq!(metadata["face_bboxes"], "[[0.25, 0.25, 0.5, 0.5]]");
    let failed = &super::dataset::samples(&scratch.output(), 1)["000000002"];
    assert_eq!(failed["status"], "failed_to_resize");
    assert!(
        failed["error_message"]
            .as_str()
            .unwrap()
            .contains("face_bboxes"),
        "{failed:?}"
    );

    let plain_scratch = Scratch::new();
    assert_ran(&dataset(&plain_scratch, &table, &flags));
    let plain = rgb(&std::fs::read(plain_scratch.output().join("00000/000000000.png")).unwrap());
    assert_eq!(unboxed, plain);
    // The box is 50..100 on a side (a 50 px diagonal): grown by 5 to 45..105;
    // sigma 5 gives an 11-tap kernel, the blur fading out 5 px beyond.
    let mut changed_inside = 0;
    for (x, y, pixel) in blurred.enumerate_pixels() {
        let inside = (45..105).contains(&x) && (45..105).contains(&y);
        let near = (40..110).contains(&x) && (40..110).contains(&y);
        if inside && pixel != plain.get_pixel(x, y) {
            changed_inside += 1;
        }
        if !near {
            assert_eq!(pixel, plain.get_pixel(x, y), "{x},{y} is outside the box");
        }
    }
    assert!(changed_inside > 1000, "{changed_inside} pixels blurred");
}

#[test]
fn compute_hash_names_its_field_and_hashes_the_downloaded_bytes() {
    let (server, png) = picture_server();
    let scratch = Scratch::new();
    let table = scratch.write("t.txt", &format!("{}\n", server.url("/faces.png")));
    let md5 = hex(&md5::Md5::digest(&png));
    let sha512 = hex(&sha2::Sha512::digest(&png));
    let sha256 = hex(&sha2::Sha256::digest(&png));
    for (hash, field, value) in [
        ("md5", "md5", Some(&md5)),
        ("sha512", "sha512", Some(&sha512)),
        ("sha256", "sha256", Some(&sha256)),
        ("none", "", None),
    ] {
        let scratch = Scratch::new();
        // Parquet output: the image bytes are the resized ones, the hash the
        // downloaded ones'.
        assert_ran(&dataset(
            &scratch,
            &table,
            &["--compute-hash", hash, "--output-format", "parquet"],
        ));
        let row = &parquet_rows(&scratch.output().join("00000.parquet"))[0];
        for other in ["md5", "sha256", "sha512"] {
            if other != field {
                assert!(!row.contains_key(other), "{hash}: {other} in {row:?}");
            }
        }
        if let Some(value) = value {
            assert_eq!(row[field], json!(value), "{hash}");
        }
    }
}

#[test]
fn verify_hash_col_fails_a_mismatch_as_img2dataset_does() {
    let (server, png) = picture_server();
    let scratch = Scratch::new();
    let url = server.url("/faces.png");
    let right = hex(&md5::Md5::digest(&png));
    let table = scratch.write(
        "t.csv",
        &format!("url,hash\n{url},{right}\n{url},0123456789abcdef0123456789abcdef\n{url},\n"),
    );
    let output = dataset(
        &scratch,
        &table,
        &["--verify-hash-col", "hash", "--compute-hash", "md5"],
    );
    assert_ran(&output);
    let samples = super::dataset::samples(&scratch.output(), 1);
    assert_eq!(samples["000000000"]["status"], "success");
    assert_eq!(samples["000000000"]["md5"], json!(right));
    for key in ["000000001", "000000002"] {
        assert_eq!(samples[key]["status"], "failed_to_download", "{key}");
        assert_eq!(samples[key]["error_message"], "hash mismatch", "{key}");
        assert_eq!(samples[key]["md5"], Value::Null, "{key}");
    }
    // The column is read, not saved.
    assert!(!samples["000000000"].contains_key("hash"));
    let metadata = json_of(&std::fs::read(scratch.output().join("00000/000000000.json")).unwrap());
    assert!(!metadata.contains_key("hash"), "{metadata:?}");
    // A missing column is a usage error naming it.
    let missing = dataset(&Scratch::new(), &table, &["--verify-hash-col", "checksum"]);
    assert_eq!(missing.status.code(), Some(2), "{}", stderr_of(&missing));
    assert!(stderr_of(&missing).contains("checksum"));
}

#[test]
fn exif_holds_the_tags_unless_turned_off() {
    let (server, _) = picture_server();
    let scratch = Scratch::new();
    let table = scratch.write(
        "t.txt",
        &format!(
            "{}\n{}\n",
            server.url("/rotated.jpg"),
            server.url("/photo.jpg")
        ),
    );
    assert_ran(&dataset(&scratch, &table, &[]));
    let folder = scratch.output().join("00000");
    let rotated = json_of(&std::fs::read(folder.join("000000000.json")).unwrap());
    let tags: Value = serde_json::from_str(rotated["exif"].as_str().unwrap()).unwrap();
    assert_eq!(tags, json!({"Image Orientation": "6"}));
    let plain = json_of(&std::fs::read(folder.join("000000001.json")).unwrap());
    assert_eq!(plain["exif"], "{}");
    let row = &parquet_rows(&scratch.output().join("00000.parquet"))[0];
    assert_eq!(row["exif"], rotated["exif"]);

    let off = Scratch::new();
    assert_ran(&dataset(&off, &table, &["--extract-exif", "false"]));
    let metadata = json_of(&std::fs::read(off.output().join("00000/000000000.json")).unwrap());
    assert!(!metadata.contains_key("exif"));
    assert!(!parquet_rows(&off.output().join("00000.parquet"))[0].contains_key("exif"));
}

#[test]
fn disable_all_reencoding_saves_the_downloaded_bytes_without_sizes() {
    let (server, png) = picture_server();
    let scratch = Scratch::new();
    let table = scratch.write("t.txt", &format!("{}\n", server.url("/faces.png")));
    assert_ran(&dataset(
        &scratch,
        &table,
        &["--disable-all-reencoding", "--output-format", "webdataset"],
    ));
    let members = tar_members(&scratch.output().join("00000.tar"));
    // img2dataset's member name: the encode format's extension, whatever
    // the bytes are.
    let image = members
        .iter()
        .find(|(name, _)| name == "000000000.jpg")
        .unwrap();
    assert_eq!(image.1, png);
    let metadata = json_of(
        &members
            .iter()
            .find(|(name, _)| name == "000000000.json")
            .unwrap()
            .1,
    );
    for field in ["width", "height", "original_width", "original_height"] {
        assert_eq!(metadata[field], Value::Null, "{field}");
    }
    assert_eq!(metadata["status"], "success");
}

#[test]
fn webp_is_lossy_at_the_quality_and_shard_names_take_oom_digits() {
    let (server, _) = picture_server();
    let scratch = Scratch::new();
    let table = scratch.write("t.txt", &format!("{}\n", server.url("/photo.jpg")));
    assert_ran(&dataset(
        &scratch,
        &table,
        &[
            "--encode-format",
            "webp",
            "--encode-quality",
            "60",
            "--oom-shard-count",
            "3",
            "--samples-per-shard",
            "100",
        ],
    ));
    // 100 a shard: 2 digits of index, 3 of shard.
    let image = std::fs::read(scratch.output().join("000/00000.webp")).unwrap();
    assert_eq!(&image[..4], b"RIFF");
    assert_eq!(&image[12..16], b"VP8 ", "a lossy WebP");
    assert!(scratch.output().join("000_stats.json").is_file());
    assert!(scratch.output().join("000.parquet").is_file());
    let stats: Value =
        serde_json::from_slice(&std::fs::read(scratch.output().join("stats.json")).unwrap())
            .unwrap();
    assert_eq!(stats["successes"], 1);
    // `grab dataset stats` finds shards of any digits.
    let rebuilt = grab(&["dataset", "stats", &scratch.output_arg(), "--json"], None);
    assert!(rebuilt.status.success(), "{}", stderr_of(&rebuilt));
}

#[test]
fn help_lists_the_recipe_flags() {
    let help = grab(&["dataset", "--help"], None);
    let text = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--oom-shard-count",
        "--compute-hash",
        "--verify-hash-col",
        "--verify-hash-type",
        "--bbox-col",
        "--extract-exif",
        "--disable-all-reencoding",
    ] {
        assert!(text.contains(flag), "{flag} missing from:\n{text}");
    }
}
