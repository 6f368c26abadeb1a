//! Megapixels per second of each filter kernel on one core, and of the codecs
//! around them, on a 1600x1200 sample picture (the size `bench/filter.sh` uses):
//! `cargo bench --bench kernels`. Plain `std::time`, best of several rounds, so
//! that a busy moment of the machine does not count against a kernel.

use std::hint::black_box;
use std::time::{Duration, Instant};

use grab::filter::{self, Pixels};
use grab::gallery::{self, Format};
use image::ImageFormat;

const WIDTH: u32 = 1600;
const HEIGHT: u32 = 1200;
const ROUNDS: usize = 7;
/// Each round runs the operation this often, so a round lasts long enough to time.
const REPEATS: usize = 10;

/// The best time of one run of `operation` over the rounds.
fn best(mut operation: impl FnMut()) -> Duration {
    operation();
    (0..ROUNDS)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..REPEATS {
                operation();
            }
            started.elapsed() / REPEATS as u32
        })
        .min()
        .expect("at least one round")
}

fn report(name: &str, time: Duration) {
    let megapixels = f64::from(WIDTH * HEIGHT) / 1e6;
    println!(
        "{name:<28} {:>8.2} ms  {:>8.0} MP/s",
        time.as_secs_f64() * 1e3,
        megapixels / time.as_secs_f64()
    );
}

fn main() {
    let picture = gallery::draw("bench.jpg", WIDTH, HEIGHT);
    let rgb = Pixels::new(WIDTH, HEIGHT, 3, picture.into_raw());
    let rgba = Pixels::new(
        WIDTH,
        HEIGHT,
        4,
        rgb.data
            .chunks_exact(3)
            .flat_map(|pixel| [pixel[0], pixel[1], pixel[2], 255])
            .collect(),
    );
    let gray = filter::grayscale(&rgb);

    println!("{WIDTH}x{HEIGHT}, one core, best of {ROUNDS} rounds:");
    for (label, image) in [("RGB", &rgb), ("L", &gray), ("RGBA", &rgba)] {
        report(
            &format!("blur {label}"),
            best(|| {
                black_box(filter::blur(black_box(image)));
            }),
        );
        report(
            &format!("sharpen {label}"),
            best(|| {
                black_box(filter::sharpen(black_box(image)));
            }),
        );
        report(
            &format!("contour {label}"),
            best(|| {
                black_box(filter::contour(black_box(image)));
            }),
        );
        report(
            &format!("contrast {label}"),
            best(|| {
                black_box(filter::contrast(black_box(image), 1.5));
            }),
        );
        if image.channels > 1 {
            report(
                &format!("grayscale {label}"),
                best(|| {
                    black_box(filter::grayscale(black_box(image)));
                }),
            );
        }
    }

    // The codecs around the kernels, for the per-image budget.
    let jpeg = gallery::encode("bench.jpg", WIDTH, HEIGHT, Format::Jpeg);
    let directory = std::env::temp_dir().join(format!("grab-bench-{}", std::process::id()));
    std::fs::create_dir_all(&directory).expect("temporary folder");
    let path = directory.join("bench.jpg");
    std::fs::write(&path, &jpeg).expect("write the sample");
    let settings = filter::Settings::with_filters(Vec::new());
    report(
        "decode JPEG (RGB)",
        best(|| {
            black_box(filter::decode(&path, &settings).expect("decodes"));
        }),
    );
    report(
        "encode JPEG q90 (RGB)",
        best(|| {
            black_box(filter::encode(&rgb, ImageFormat::Jpeg, 90).expect("encodes"));
        }),
    );
    report(
        "encode JPEG q90 (L)",
        best(|| {
            black_box(filter::encode(&gray, ImageFormat::Jpeg, 90).expect("encodes"));
        }),
    );
    report(
        "encode PNG (RGB)",
        best(|| {
            black_box(filter::encode(&rgb, ImageFormat::Png, 90).expect("encodes"));
        }),
    );
    let _ = std::fs::remove_dir_all(&directory);
}
