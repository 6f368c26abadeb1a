//! `grab filter`, `grab samples` and `grab get --filter`: pixels against Pillow's
//! golden PNGs (tests/golden, made by bench/make_golden.py), every strategy, and
//! the inputs that must fail alone: corrupt, truncated, not an image, too many
//! pixels; EXIF orientation, one-channel grayscale output, 16-bit input.

use std::fs;
use std::path::{Path, PathBuf};

use grab::Named;
use grab::filter::{self, Filter, Job, Settings};
use image::ImageEncoder;

use super::support::{Scratch, files_in, gallery as start_gallery, grab, stderr_of};

const GOLDEN_INPUTS: [&str; 4] = ["rgb", "rgba", "l", "tiny_rgb"];
const GOLDEN_CHAINS: [&[Filter]; 7] = [
    &[Filter::Blur],
    &[Filter::Sharpen],
    &[Filter::Contour],
    &[Filter::Grayscale],
    &[Filter::Contrast],
    &[Filter::Blur, Filter::Contrast, Filter::Grayscale],
    &[Filter::Sharpen, Filter::Contour],
];

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

fn chain_name(chain: &[Filter]) -> String {
    let names: Vec<&str> = chain.iter().map(|filter| filter.name()).collect();
    names.join("_")
}

/// Fails unless two image files decode to the same colour type and pixels.
fn assert_same_pixels(actual: &Path, expected: &Path) {
    let actual_image = image::open(actual).unwrap();
    let expected_image = image::open(expected).unwrap();
    assert_eq!(
        (
            actual_image.color(),
            actual_image.width(),
            actual_image.height()
        ),
        (
            expected_image.color(),
            expected_image.width(),
            expected_image.height()
        ),
        "{} against {}",
        actual.display(),
        expected.display()
    );
    let differing = actual_image
        .as_bytes()
        .iter()
        .zip(expected_image.as_bytes())
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(
        differing,
        0,
        "{} differs from Pillow's {} in {differing} bytes",
        actual.display(),
        expected.display()
    );
}

#[test]
fn every_filter_and_chain_matches_pillow_exactly() {
    let scratch = Scratch::new();
    for input in GOLDEN_INPUTS {
        for chain in GOLDEN_CHAINS {
            let job = Job {
                replace: true,
                input: golden(&format!("input_{input}.png")),
                output: scratch
                    .root
                    .path()
                    .join(format!("{input}__{}.png", chain_name(chain))),
            };
            let outcome = filter::filter_file(&job, &Settings::with_filters(chain.to_vec()));
            let filtered = outcome.result.unwrap();
            let expected = golden(&format!("input_{input}__{}.png", chain_name(chain)));
            assert_same_pixels(&job.output, &expected);
            let grayscale = chain.contains(&Filter::Grayscale) || input == "l";
            assert_eq!(
                filtered.channels == 1,
                grayscale,
                "{}",
                job.output.display()
            );
        }
    }
}

/// Runs `grab filter` on the golden inputs with a strategy and checks every
/// output against Pillow's: the PNGs' pixels, and the JPEG's bytes (the
/// golden photo, decoded, filtered and written at quality 90 by Pillow).
fn strategy_matches_pillow(strategy: &str) {
    let scratch = Scratch::new();
    let output_dir = scratch.output_arg();
    let inputs: Vec<String> = GOLDEN_INPUTS
        .iter()
        .map(|input| golden(&format!("input_{input}.png")))
        .chain([golden("photo.jpg")])
        .map(|path| path.display().to_string())
        .collect();
    let mut arguments = vec![
        "filter",
        "-s",
        strategy,
        "-j",
        "2",
        "-f",
        "blur,contrast,grayscale",
        "-o",
        &output_dir,
    ];
    arguments.extend(inputs.iter().map(String::as_str));
    let output = grab(&arguments, None);
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("filtered 5 of 5 images;"), "{stderr}");
    assert_eq!(stderr.matches("filtered  ").count(), 5, "{stderr}");
    for input in GOLDEN_INPUTS {
        assert_same_pixels(
            &scratch
                .output()
                .join(format!("blur_contrast_grayscale_input_{input}.png")),
            &golden(&format!("input_{input}__blur_contrast_grayscale.png")),
        );
    }
    let jpeg = fs::read(scratch.output().join("blur_contrast_grayscale_photo.jpg")).unwrap();
    assert!(jpeg == fs::read(golden("photo__blur_contrast_grayscale.jpg")).unwrap());
    assert_eq!(files_in(&scratch.output()).len(), 5);
}

#[test]
fn sequential_matches_pillow() {
    strategy_matches_pillow("sequential");
}

#[test]
fn threads_match_pillow() {
    strategy_matches_pillow("threads");
}

#[test]
fn processes_match_pillow() {
    strategy_matches_pillow("processes");
}

fn write_jpeg(path: &Path, width: u16, height: u16, pixels: &[u8], exif: Option<&[u8]>) {
    let mut bytes = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut bytes, 95);
    if let Some(exif) = exif {
        encoder.add_exif_metadata(exif).unwrap();
    }
    encoder
        .encode(pixels, width, height, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    fs::write(path, bytes).unwrap();
}

/// A folder with one good JPEG and one broken file of each kind, through every
/// strategy: each broken file fails alone with its name in the message.
fn broken_inputs_fail_alone(strategy: &str) {
    let scratch = Scratch::new();
    let inputs = scratch.root.path().join("inputs");
    fs::create_dir(&inputs).unwrap();
    let good = gallery_jpeg(&inputs, "good.jpg");
    let bytes = fs::read(&good).unwrap();
    fs::write(inputs.join("truncated.jpg"), &bytes[..bytes.len() / 2]).unwrap();
    // Still a JPEG by its first bytes, with garbage from the headers on.
    let mut corrupt = bytes.clone();
    corrupt[20..600].fill(0x55);
    fs::write(inputs.join("corrupt.jpg"), corrupt).unwrap();
    fs::write(inputs.join("notes.png"), "not an image at all").unwrap();
    fs::write(inputs.join("empty.png"), "").unwrap();
    let missing = scratch
        .root
        .path()
        .join("missing.jpg")
        .display()
        .to_string();
    let output_dir = scratch.output_arg();
    let inputs_arg = inputs.display().to_string();
    let output = grab(
        &[
            "filter",
            "-s",
            strategy,
            "-f",
            "grayscale",
            "-o",
            &output_dir,
            &inputs_arg,
            &missing,
        ],
        None,
    );
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("filtered 1 of 6 images, 5 failed;"),
        "{stderr}"
    );
    assert_failures(
        &stderr,
        &[
            ("truncated.jpg", "truncated"),
            ("corrupt.jpg", "cannot decode"),
            ("notes.png", "not a JPEG or PNG image"),
            ("empty.png", "not a JPEG or PNG image"),
            ("missing.jpg", "No such file"),
        ],
    );
    assert_eq!(files_in(&scratch.output()), ["grayscale_good.jpg"]);
}

/// Fails unless each named file has a failure line on stderr giving its reason.
fn assert_failures(stderr: &str, expected: &[(&str, &str)]) {
    for (name, reason) in expected {
        let line = stderr
            .lines()
            .find(|line| line.starts_with("failed") && line.contains(name))
            .unwrap_or_else(|| panic!("no failure line for {name}: {stderr}"));
        assert!(line.contains(reason), "{line}");
    }
}

/// A gallery picture as a JPEG file, 96x64.
fn gallery_jpeg(folder: &Path, name: &str) -> PathBuf {
    let path = folder.join(name);
    let bytes = grab::gallery::encode(name, 96, 64, grab::gallery::Format::Jpeg);
    fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn broken_inputs_fail_alone_sequential() {
    broken_inputs_fail_alone("sequential");
}

#[test]
fn broken_inputs_fail_alone_threads() {
    broken_inputs_fail_alone("threads");
}

#[test]
fn broken_inputs_fail_alone_processes() {
    broken_inputs_fail_alone("processes");
}

/// A PNG whose header claims `width` x `height` and whose data is a few bytes:
/// decoding it would allocate for every claimed pixel.
fn bomb_png(width: u32, height: u32) -> Vec<u8> {
    let mut header = Vec::new();
    header.extend_from_slice(&width.to_be_bytes());
    header.extend_from_slice(&height.to_be_bytes());
    header.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    // An empty zlib stream stands in for the pixel data.
    for (kind, data) in [
        (&b"IHDR"[..], &header[..]),
        (b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]),
        (b"IEND", &[]),
    ] {
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let chunk = [kind, data].concat();
        png.extend_from_slice(&chunk);
        png.extend_from_slice(&crc32(&chunk).to_be_bytes());
    }
    png
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn images_over_the_pixel_limit_are_refused_before_decoding() {
    let scratch = Scratch::new();
    let bomb = scratch.root.path().join("bomb.png");
    fs::write(&bomb, bomb_png(60_000, 60_000)).unwrap();
    let small = gallery_jpeg(scratch.root.path(), "small.jpg");
    let output_dir = scratch.output_arg();
    let (bomb_arg, small_arg) = (bomb.display().to_string(), small.display().to_string());
    let output = grab(
        &[
            "filter",
            "-f",
            "blur",
            "-o",
            &output_dir,
            &bomb_arg,
            &small_arg,
        ],
        None,
    );
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("bomb.png: 60000x60000 is over the limit of 100000000 pixels"),
        "{stderr}"
    );
    assert_eq!(files_in(&scratch.output()), ["blur_small.jpg"]);

    // 96 x 64 = 6144 pixels: one over a limit of 6143.
    let output = grab(
        &[
            "filter",
            "-f",
            "blur",
            "--max-pixels",
            "6143",
            "-o",
            &output_dir,
            &small_arg,
        ],
        None,
    );
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("96x64 is over the limit of 6143 pixels"),
        "{stderr}"
    );
}

/// Files are judged by their header before they are read whole: a PNG declaring
/// 50000x50000, text named .jpg and a link to /dev/zero named .jpg (read whole,
/// it would never end) each fail alone, naming their path; the good images among
/// them are filtered.
#[cfg(unix)]
fn headers_are_checked_before_the_whole_read(strategy: &str) {
    let scratch = Scratch::new();
    let inputs = scratch.root.path().join("inputs");
    fs::create_dir(&inputs).unwrap();
    gallery_jpeg(&inputs, "first.jpg");
    gallery_jpeg(&inputs, "second.jpg");
    fs::write(
        inputs.join("bomb.png"),
        grab::gallery::png_declaring(50_000, 50_000),
    )
    .unwrap();
    fs::write(
        inputs.join("text.jpg"),
        "just some words, no picture\n".repeat(100),
    )
    .unwrap();
    let endless = scratch.root.path().join("endless.jpg");
    std::os::unix::fs::symlink("/dev/zero", &endless).unwrap();
    let output_dir = scratch.output_arg();
    let inputs_arg = inputs.display().to_string();
    let endless_arg = endless.display().to_string();
    let output = grab(
        &[
            "filter",
            "-s",
            strategy,
            "-f",
            "blur",
            "-o",
            &output_dir,
            &inputs_arg,
            &endless_arg,
        ],
        None,
    );
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("filtered 2 of 5 images, 3 failed;"),
        "{stderr}"
    );
    assert_failures(
        &stderr,
        &[
            (
                "bomb.png",
                "50000x50000 is over the limit of 100000000 pixels",
            ),
            ("text.jpg", "not a JPEG or PNG image"),
            ("endless.jpg", "not a JPEG or PNG image"),
        ],
    );
    assert_eq!(
        files_in(&scratch.output()),
        ["blur_first.jpg", "blur_second.jpg"]
    );
}

#[cfg(unix)]
#[test]
fn headers_are_checked_before_the_whole_read_sequential() {
    headers_are_checked_before_the_whole_read("sequential");
}

#[cfg(unix)]
#[test]
fn headers_are_checked_before_the_whole_read_threads() {
    headers_are_checked_before_the_whole_read("threads");
}

#[cfg(unix)]
#[test]
fn headers_are_checked_before_the_whole_read_processes() {
    headers_are_checked_before_the_whole_read("processes");
}

/// A JPEG larger than the header read: its header comes from the first
/// megabyte, the rest is read once the header passed.
#[test]
fn jpegs_larger_than_the_header_read_decode_whole() {
    let scratch = Scratch::new();
    let path = scratch.root.path().join("noise.jpg");
    let (width, height) = (1200u16, 1000u16);
    let mut state = 0x2545_f491_u32;
    let pixels: Vec<u8> = (0..usize::from(width) * usize::from(height) * 3)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect();
    write_jpeg(&path, width, height, &pixels, None);
    assert!(fs::metadata(&path).unwrap().len() > filter::HEADER_BYTES);
    let decoded = filter::decode(&path, &Settings::with_filters(vec![Filter::Blur])).unwrap();
    assert_eq!((decoded.pixels.width, decoded.pixels.height), (1200, 1000));
    let expected = image::open(&path).unwrap().into_rgb8();
    let (_, largest) = differences(&decoded.pixels.data, expected.as_raw());
    assert!(largest <= 4, "decoded bytes differ by up to {largest}");
}

/// A memory budget smaller than two images at once: every image that fits
/// waits its turn and is filtered; one larger than the whole budget is refused
/// by its header, naming its path and the sizes, and the rest go on.
fn images_wait_for_memory_and_the_oversized_are_refused(strategy: &str) {
    let scratch = Scratch::new();
    let inputs = scratch.root.path().join("inputs");
    fs::create_dir(&inputs).unwrap();
    // 96x64 RGB: about 74 KiB of pixel buffers and a few KiB of file each.
    let names: Vec<String> = (0..6).map(|index| format!("small-{index}.jpg")).collect();
    for name in &names {
        gallery_jpeg(&inputs, name);
    }
    // 600x400 RGB: 2.7 MiB of buffers, over the whole budget.
    let large = inputs.join("large.png");
    fs::write(
        &large,
        grab::gallery::encode("large", 600, 400, grab::gallery::Format::Png),
    )
    .unwrap();
    let output_dir = scratch.output_arg();
    let inputs_arg = inputs.display().to_string();
    // With 3 workers, three quarters of 200 KiB is left for images in flight:
    // two small ones at a time.
    let output = grab(
        &[
            "filter",
            "-s",
            strategy,
            "-j",
            "3",
            "-f",
            "sharpen",
            "--memory-limit",
            "200k",
            "-o",
            &output_dir,
            &inputs_arg,
        ],
        None,
    );
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("filtered 6 of 7 images, 1 failed;"),
        "{stderr}"
    );
    let refusal = stderr
        .lines()
        .find(|line| line.starts_with("failed") && line.contains("large.png"))
        .unwrap_or_else(|| panic!("no refusal of large.png: {stderr}"));
    assert!(
        refusal.contains("MiB to filter, more than the 150.0 KiB"),
        "{refusal}"
    );
    let expected: Vec<String> = names.iter().map(|name| format!("sharpen_{name}")).collect();
    assert_eq!(files_in(&scratch.output()), expected);
}

#[test]
fn images_wait_for_memory_sequential() {
    images_wait_for_memory_and_the_oversized_are_refused("sequential");
}

#[test]
fn images_wait_for_memory_threads() {
    images_wait_for_memory_and_the_oversized_are_refused("threads");
}

#[test]
fn images_wait_for_memory_processes() {
    images_wait_for_memory_and_the_oversized_are_refused("processes");
}

/// An input whose name is 250 bytes gets an output name within the
/// filesystem's 255: the stem is cut, the filters and the extension stay, and
/// two such inputs that differ only at the end get two outputs.
#[test]
fn long_input_names_give_outputs_within_255_bytes() {
    let scratch = Scratch::new();
    let inputs = scratch.root.path().join("inputs");
    fs::create_dir(&inputs).unwrap();
    let names = [
        format!("{}1a.jpg", "ü".repeat(122)),
        format!("{}2a.jpg", "ü".repeat(122)),
    ];
    for name in &names {
        assert_eq!(name.len(), 250);
        gallery_jpeg(&inputs, name);
    }
    let output_dir = scratch.output_arg();
    let inputs_arg = inputs.display().to_string();
    let output = grab(
        &[
            "filter",
            "-f",
            "grayscale,contrast",
            "-o",
            &output_dir,
            &inputs_arg,
        ],
        None,
    );
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("filtered 2 of 2 images;"), "{stderr}");
    let outputs = files_in(&scratch.output());
    assert_eq!(outputs.len(), 2, "{outputs:?}");
    for name in &outputs {
        assert!(name.len() <= 255, "{} bytes: {name}", name.len());
        assert!(name.starts_with("grayscale_contrast_ü"), "{name}");
        assert!(name.ends_with(".jpg"), "{name}");
        let image = image::open(scratch.output().join(name)).unwrap();
        assert_eq!((image.width(), image.height()), (96, 64));
    }
}

/// A big-endian TIFF block holding only the orientation tag, as cameras write it
/// inside their EXIF segment.
fn exif_orientation(orientation: u16) -> Vec<u8> {
    let mut exif = b"MM\x00\x2a\x00\x00\x00\x08".to_vec();
    exif.extend_from_slice(&1u16.to_be_bytes());
    exif.extend_from_slice(&0x0112u16.to_be_bytes());
    exif.extend_from_slice(&3u16.to_be_bytes());
    exif.extend_from_slice(&1u32.to_be_bytes());
    exif.extend_from_slice(&orientation.to_be_bytes());
    exif.extend_from_slice(&[0, 0]);
    exif.extend_from_slice(&0u32.to_be_bytes());
    exif
}

#[test]
fn exif_orientation_is_applied_unless_asked_not_to() {
    let scratch = Scratch::new();
    // 32x16, left half black and right half white, stored sideways: orientation
    // 6 says "rotate 90 degrees clockwise to view", which puts black on top.
    let (width, height) = (32u16, 16u16);
    let pixels: Vec<u8> = (0..height)
        .flat_map(|_| (0..width).flat_map(|x| [if x < width / 2 { 0 } else { 255 }; 3]))
        .collect();
    let photo = scratch.root.path().join("photo.jpg");
    write_jpeg(&photo, width, height, &pixels, Some(&exif_orientation(6)));
    let photo_arg = photo.display().to_string();

    let upright = scratch.root.path().join("upright");
    let upright_arg = upright.display().to_string();
    let output = grab(
        &["filter", "-f", "grayscale", "-o", &upright_arg, &photo_arg],
        None,
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let result = image::open(upright.join("grayscale_photo.jpg"))
        .unwrap()
        .into_luma8();
    assert_eq!(result.dimensions(), (16, 32));
    assert!(result.get_pixel(8, 4).0[0] < 30, "top is black");
    assert!(result.get_pixel(8, 28).0[0] > 225, "bottom is white");

    let stored = scratch.root.path().join("stored");
    let stored_arg = stored.display().to_string();
    let output = grab(
        &[
            "filter",
            "-f",
            "grayscale",
            "--no-auto-orient",
            "-o",
            &stored_arg,
            &photo_arg,
        ],
        None,
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let result = image::open(stored.join("grayscale_photo.jpg")).unwrap();
    assert_eq!((result.width(), result.height()), (32, 16));
}

#[test]
fn grayscale_is_written_with_one_channel_and_drops_alpha() {
    let scratch = Scratch::new();
    let photo = gallery_jpeg(scratch.root.path(), "photo.jpg");
    let output_dir = scratch.output_arg();
    let (photo_arg, rgba_arg) = (
        photo.display().to_string(),
        golden("input_rgba.png").display().to_string(),
    );
    let output = grab(
        &[
            "filter",
            "-f",
            "contrast,grayscale",
            "-o",
            &output_dir,
            &photo_arg,
            &rgba_arg,
        ],
        None,
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    for name in [
        "contrast_grayscale_photo.jpg",
        "contrast_grayscale_input_rgba.png",
    ] {
        let result = image::open(scratch.output().join(name)).unwrap();
        assert_eq!(result.color(), image::ColorType::L8, "{name}");
    }
    // Alpha is kept by the other filters.
    let output = grab(
        &["filter", "-f", "blur", "-o", &output_dir, &rgba_arg],
        None,
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let result = image::open(scratch.output().join("blur_input_rgba.png")).unwrap();
    assert_eq!(result.color(), image::ColorType::Rgba8);
}

#[test]
fn sixteen_bit_pngs_are_filtered_on_their_high_byte() {
    let scratch = Scratch::new();
    let (width, height) = (9u32, 7u32);
    let samples: Vec<u16> = (0..width * height * 3)
        .map(|index| (index * 2477 % 65536) as u16)
        .collect();
    let path = scratch.root.path().join("deep.png");
    let mut encoded = Vec::new();
    // `write_image` takes 16-bit samples in native order (PNG stores them
    // big-endian).
    let native: Vec<u8> = samples
        .iter()
        .flat_map(|sample| sample.to_ne_bytes())
        .collect();
    image::codecs::png::PngEncoder::new(&mut encoded)
        .write_image(&native, width, height, image::ExtendedColorType::Rgb16)
        .unwrap();
    fs::write(&path, encoded).unwrap();

    let output = scratch.root.path().join("blur_deep.png");
    let job = Job {
        replace: true,
        input: path,
        output: output.clone(),
    };
    filter::filter_file(&job, &Settings::with_filters(vec![Filter::Blur]))
        .result
        .unwrap();
    let high_bytes: Vec<u8> = samples.iter().map(|sample| (sample >> 8) as u8).collect();
    let expected = filter::blur(&filter::Pixels::new(width, height, 3, high_bytes));
    let result = image::open(&output).unwrap();
    assert_eq!(result.color(), image::ColorType::Rgb8);
    assert_eq!(result.into_bytes(), expected.data);
}

#[test]
fn a_rerun_replaces_outputs_and_leaves_no_temporary_files() {
    let scratch = Scratch::new();
    let photo = gallery_jpeg(scratch.root.path(), "photo.jpg");
    let output_dir = scratch.output_arg();
    let photo_arg = photo.display().to_string();
    for _ in 0..2 {
        let output = grab(
            &["filter", "-f", "sharpen", "-o", &output_dir, &photo_arg],
            None,
        );
        assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    }
    assert_eq!(files_in(&scratch.output()), ["sharpen_photo.jpg"]);
    let result = image::open(scratch.output().join("sharpen_photo.jpg")).unwrap();
    assert_eq!(
        (result.width(), result.height(), result.color()),
        (96, 64, image::ColorType::Rgb8)
    );
}

#[test]
fn usage_errors_exit_2() {
    let unknown = grab(&["filter", "-f", "emboss", "x.jpg"], None);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(stderr_of(&unknown).contains("emboss"));
    let no_filters = grab(&["filter", "x.jpg"], None);
    assert_eq!(no_filters.status.code(), Some(2));
    let no_paths = grab(&["filter", "-f", "blur"], None);
    assert_eq!(no_paths.status.code(), Some(2));
}

/// Worker programs that are shell scripts: Unix's.
#[cfg(unix)]
mod scripted_workers {
    use std::path::{Path, PathBuf};
    use std::sync::Arc;

    use grab::console::Console;
    use grab::engine::Strategy;
    use grab::engine::WorkerProgram;
    use grab::filter::{self, FilterConfig, Job, Settings};

    use super::*;

    fn pool_config(program: PathBuf, output_dir: &Path) -> FilterConfig {
        FilterConfig {
            settings: Settings::with_filters(vec![Filter::Grayscale]),
            output_dir: output_dir.to_path_buf(),
            strategy: Strategy::Processes,
            jobs: 1,
            console: Console::silent(),
            worker_program: WorkerProgram {
                path: program,
                log_filter: "warn".to_string(),
            },
            memory_limit: 1 << 30,
        }
    }

    fn write_script(path: &Path, body: &str) {
        use std::os::unix::fs::PermissionsExt;
        fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
    }

    // Its workers are shell scripts.
    #[test]
    fn a_worker_that_dies_is_replaced_and_the_image_tried_again() {
        let scratch = Scratch::new();
        let photo = gallery_jpeg(scratch.root.path(), "photo.jpg");
        fs::create_dir(scratch.output()).unwrap();
        // The first worker dies at once; the ones after it are real.
        let marker = scratch.root.path().join("died-once");
        let script = scratch.root.path().join("worker.sh");
        write_script(
            &script,
            &format!(
                "if [ ! -e '{marker}' ]; then touch '{marker}'; exit 3; fi\nexec '{grab}' \"$@\"",
                marker = marker.display(),
                grab = env!("CARGO_BIN_EXE_grab"),
            ),
        );
        let reporter = Arc::new(filter::Reporter::new(Console::silent()));
        let pool =
            filter::Pool::start(&pool_config(script, &scratch.output()), reporter.clone()).unwrap();
        for _ in 0..2 {
            pool.submit(Job {
                replace: true,
                input: photo.clone(),
                output: scratch.output().join("grayscale_photo.jpg"),
            });
        }
        pool.finish().unwrap();
        let summary = reporter.summary();
        assert_eq!((summary.processed, summary.failed), (2, 0));
        assert!(marker.exists());

        // A worker that can never run: each image fails, and the batch still ends.
        let reporter = Arc::new(filter::Reporter::new(Console::silent()));
        let broken = scratch.root.path().join("broken.sh");
        write_script(&broken, "exit 1");
        let pool =
            filter::Pool::start(&pool_config(broken, &scratch.output()), reporter.clone()).unwrap();
        for _ in 0..3 {
            pool.submit(Job {
                replace: true,
                input: photo.clone(),
                output: scratch.output().join("never.jpg"),
            });
        }
        pool.finish().unwrap();
        let summary = reporter.summary();
        assert_eq!((summary.processed, summary.failed), (0, 3));
    }
}

#[test]
fn samples_are_written_for_filter_to_use() {
    let scratch = Scratch::new();
    let samples = scratch.root.path().join("samples");
    let samples_arg = samples.display().to_string();
    let output = grab(
        &["samples", "-n", "3", "--size", "64x48", "-o", &samples_arg],
        None,
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert_eq!(
        files_in(&samples),
        ["sample-01.jpg", "sample-02.jpg", "sample-03.jpg"]
    );
    let output_dir = scratch.output_arg();
    let output = grab(
        &["filter", "-f", "contour", "-o", &output_dir, &samples_arg],
        None,
    );
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("filtered 3 of 3 images;"), "{stderr}");
}

/// `grab get --filter` with a strategy: images are filtered into the filter
/// folder as they arrive, other files are left alone, and both summaries print.
fn get_filters_while_downloading(strategy: &str) {
    let server = start_gallery();
    let base = server.base_url();
    let scratch = Scratch::new();
    let output_dir = scratch.output_arg();
    let urls = [
        format!("{base}/images/a.jpg?w=64&h=48"),
        format!("{base}/images/b.png?w=33&h=17"),
        format!("{base}/files/c.bin?size=100"),
        format!("{base}/images/missing.gif"),
    ];
    let mut arguments = vec![
        "get",
        "-s",
        strategy,
        "-j",
        "2",
        "-o",
        &output_dir,
        "--filter",
        "grayscale,blur",
    ];
    arguments.extend(urls.iter().map(String::as_str));
    let output = grab(&arguments, None);
    let stderr = stderr_of(&output);
    // The .gif is a 404: the download batch fails, the filter batch does not.
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("filtered 2 of 2 images;"), "{stderr}");
    let downloads_summary = stderr.find("downloaded 3 of 4").expect("download summary");
    let filter_summary = stderr.find("filtered 2 of 2").unwrap();
    assert!(downloads_summary < filter_summary, "{stderr}");
    let filtered = scratch.output().join("filtered");
    assert_eq!(
        files_in(&filtered),
        ["grayscale_blur_a.jpg", "grayscale_blur_b.png"]
    );
    for name in files_in(&filtered) {
        assert_eq!(
            image::open(filtered.join(&name)).unwrap().color(),
            image::ColorType::L8
        );
    }
    // The PNG is exact: compare with the library's own result on the download.
    let job = Job {
        replace: true,
        input: scratch.output().join("b.png"),
        output: scratch.root.path().join("check.png"),
    };
    filter::filter_file(
        &job,
        &Settings::with_filters(vec![Filter::Grayscale, Filter::Blur]),
    )
    .result
    .unwrap();
    assert_same_pixels(&filtered.join("grayscale_blur_b.png"), &job.output);
}

#[test]
fn get_filters_while_downloading_async() {
    get_filters_while_downloading("async");
}

#[test]
fn get_filters_while_downloading_threads() {
    get_filters_while_downloading("threads");
}

#[test]
fn get_filters_while_downloading_processes() {
    get_filters_while_downloading("processes");
}

#[test]
fn get_filter_output_dir_is_honoured() {
    let server = start_gallery();
    let base = server.base_url();
    let scratch = Scratch::new();
    let output_dir = scratch.output_arg();
    let elsewhere = scratch.root.path().join("elsewhere");
    let elsewhere_arg = elsewhere.display().to_string();
    let url = format!("{base}/images/a.jpg?w=40&h=30");
    let output = grab(
        &[
            "get",
            "-o",
            &output_dir,
            "--filter",
            "contrast",
            "--filter-output-dir",
            &elsewhere_arg,
            &url,
        ],
        None,
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert_eq!(files_in(&elsewhere), ["contrast_a.jpg"]);
    let image = image::open(elsewhere.join("contrast_a.jpg")).unwrap();
    assert_eq!((image.width(), image.height()), (40, 30));
}

/// `grab filter -o DIR DIR` twice: the second run recognises the first one's
/// outputs (by the record it wrote), neither filters them again nor counts
/// them as inputs it must not replace, and adds no file.
#[test]
fn filtering_a_folder_into_itself_is_repeatable() {
    let scratch = Scratch::new();
    let folder = scratch.root.path().join("photos");
    fs::create_dir(&folder).unwrap();
    gallery_jpeg(&folder, "a.jpg");
    gallery_jpeg(&folder, "b.jpg");
    let folder_arg = folder.display().to_string();
    let run = || {
        let output = grab(
            &["filter", "-f", "blur", "-o", &folder_arg, &folder_arg],
            None,
        );
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(0), "{stderr}");
        stderr
    };
    let first = run();
    assert!(first.contains("filtered 2 of 2 images;"), "{first}");
    let after_first = files_in(&folder);
    assert_eq!(after_first, ["a.jpg", "b.jpg", "blur_a.jpg", "blur_b.jpg"]);
    let originals: Vec<Vec<u8>> = ["a.jpg", "b.jpg"]
        .iter()
        .map(|name| fs::read(folder.join(name)).unwrap())
        .collect();
    let second = run();
    assert!(
        second.contains("filtered 2 of 2 images, 2 skipped;"),
        "{second}"
    );
    for name in ["blur_a.jpg", "blur_b.jpg"] {
        assert!(
            second
                .lines()
                .any(|line| line.starts_with("skipped") && line.contains(name)),
            "{second}"
        );
    }
    assert_eq!(files_in(&folder), after_first);
    for (name, original) in ["a.jpg", "b.jpg"].iter().zip(&originals) {
        assert_eq!(&fs::read(folder.join(name)).unwrap(), original, "{name}");
    }
}

/// `--filter-output-dir` equal to `-o`: a download whose name is the filtered
/// name of another (`blur_a.jpg` beside `a.jpg`) is never overwritten; the
/// filtered copy takes the next numbered name.
#[test]
fn filtering_beside_the_downloads_never_replaces_one() {
    let server = start_gallery();
    let base = server.base_url();
    let scratch = Scratch::new();
    let output_dir = scratch.output_arg();
    // Sequential downloads: blur_a.jpg is saved before a.jpg is filtered.
    let first = format!("{base}/images/blur_a.jpg?w=50&h=20");
    let second = format!("{base}/images/a.jpg?w=40&h=30");
    let output = grab(
        &[
            "get",
            "-s",
            "sequential",
            "-o",
            &output_dir,
            "--filter",
            "blur",
            "--filter-output-dir",
            &output_dir,
            &first,
            &second,
        ],
        None,
    );
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("filtered 2 of 2 images;"), "{stderr}");
    assert_eq!(
        files_in(&scratch.output()),
        ["a.jpg", "blur_a-1.jpg", "blur_a.jpg", "blur_blur_a.jpg"]
    );
    let size = |name: &str| {
        let image = image::open(scratch.output().join(name)).unwrap();
        (image.width(), image.height())
    };
    // The download is the server's 50x20 picture, not a.jpg filtered.
    assert_eq!(size("blur_a.jpg"), (50, 20));
    assert_eq!(size("blur_a-1.jpg"), (40, 30));
    assert_eq!(size("blur_blur_a.jpg"), (50, 20));
}

/// A re-run of `grab get --filter` skips the complete downloads, and filters
/// again exactly the one whose filtered copy was deleted.
fn rerun_filters_only_missing_copies(strategy: &str) {
    let server = start_gallery();
    let base = server.base_url();
    let scratch = Scratch::new();
    let output_dir = scratch.output_arg();
    let urls: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|name| format!("{base}/images/{name}.png?w=30&h=20"))
        .collect();
    let run = || {
        let mut arguments = vec![
            "get",
            "-s",
            strategy,
            "-o",
            &output_dir,
            "--filter",
            "contour",
        ];
        arguments.extend(urls.iter().map(String::as_str));
        let output = grab(&arguments, None);
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(0), "{stderr}");
        stderr
    };
    let first = run();
    assert!(first.contains("filtered 3 of 3 images;"), "{first}");
    let filtered = scratch.output().join("filtered");
    let names = ["contour_a.png", "contour_b.png", "contour_c.png"];
    assert_eq!(files_in(&filtered), names);
    let inode =
        |name: &str| grab::fs::identity(&fs::File::open(filtered.join(name)).unwrap()).unwrap();
    let (kept_a, kept_c) = (inode("contour_a.png"), inode("contour_c.png"));
    fs::remove_file(filtered.join("contour_b.png")).unwrap();

    let second = run();
    assert!(
        second.contains("nothing to download: 3 already complete"),
        "{second}"
    );
    assert!(
        second.contains("filtered 1 of 1 images, 2 skipped;"),
        "{second}"
    );
    assert_eq!(files_in(&filtered), names);
    // The others were left as they were: the same files, not rewritten.
    assert_eq!(
        (inode("contour_a.png"), inode("contour_c.png")),
        (kept_a, kept_c)
    );
    let image = image::open(filtered.join("contour_b.png")).unwrap();
    assert_eq!((image.width(), image.height()), (30, 20));
}

#[test]
fn rerun_filters_only_missing_copies_async() {
    rerun_filters_only_missing_copies("async");
}

#[test]
fn rerun_filters_only_missing_copies_processes() {
    rerun_filters_only_missing_copies("processes");
}

/// How many bytes differ between two equal-length buffers, and by how much at most.
fn differences(actual: &[u8], expected: &[u8]) -> (usize, u8) {
    assert_eq!(actual.len(), expected.len());
    let gaps = actual.iter().zip(expected).map(|(a, b)| a.abs_diff(*b));
    gaps.fold((0, 0), |(count, largest), gap| {
        (count + usize::from(gap > 0), largest.max(gap))
    })
}

/// A JPEG is decoded as Pillow decodes it (libjpeg-turbo at its defaults), so
/// its pixels and its filtered pixels are Pillow's, byte for byte.
#[test]
fn jpeg_decoding_is_pillows() {
    let settings = Settings::with_filters(vec![Filter::Blur, Filter::Contrast, Filter::Grayscale]);
    let decoded = filter::decode(&golden("photo.jpg"), &settings).unwrap();
    let pillow = image::open(golden("photo__decoded.png"))
        .unwrap()
        .into_rgb8();
    assert!(decoded.pixels.data == pillow.as_raw()[..]);

    let filtered = filter::apply(decoded.pixels, &settings);
    let pillow = image::open(golden("photo__blur_contrast_grayscale.png"))
        .unwrap()
        .into_luma8();
    assert!(filtered.data == pillow.as_raw()[..]);
}
