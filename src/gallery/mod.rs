//! The gallery: real, decodable images drawn deterministically from their names
//! (the same name always gives the same bytes), and opaque files of any size from
//! a seeded generator. The local server hands them out, `grab samples` writes
//! them (`samples`), and tests decode them. No internet needed for any demo,
//! test or benchmark.

pub(crate) mod samples;

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::Mutex;

use bytes::Bytes;
use image::{ImageEncoder, RgbImage};
use sha2::{Digest, Sha256};

/// Largest side the server draws, so a request cannot ask for gigapixels.
pub const MAX_SIDE: u32 = 4096;

/// Image formats the gallery serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Jpeg,
    Png,
}

impl Format {
    /// The format a file name asks for, by its extension.
    pub fn from_name(name: &str) -> Option<Format> {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".jpg") || lower.ends_with(".jpeg") {
            Some(Format::Jpeg)
        } else if lower.ends_with(".png") {
            Some(Format::Png)
        } else {
            None
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Jpeg => "image/jpeg",
            Format::Png => "image/png",
        }
    }
}

/// A 64-bit seed from a name, stable across runs and machines.
pub fn seed_of(name: &str) -> u64 {
    let digest = Sha256::digest(name.as_bytes());
    u64::from_le_bytes(
        digest[..8]
            .try_into()
            .expect("a SHA-256 digest has 32 bytes"),
    )
}

/// splitmix64 as a counter-based stream: word `i` is a hash of the seed and `i`,
/// so any position is reached in O(1) (a `Range` deep into a 16 GiB file costs
/// nothing); quality is irrelevant here.
pub struct Generator {
    seed: u64,
    /// Words handed out so far.
    position: u64,
    /// The unused tail of the last word, when a fill ended mid-word.
    carried: [u8; 8],
    carried_count: usize,
}

impl Generator {
    pub fn new(seed: u64) -> Generator {
        Generator {
            seed,
            position: 0,
            carried: [0; 8],
            carried_count: 0,
        }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.position += 1;
        let mut z = self
            .seed
            .wrapping_add(self.position.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Fills the buffer with the next bytes of the stream. A fill that ends in the
    /// middle of a word keeps the rest of that word for the next call, so the stream
    /// is the same however it is cut into buffers.
    pub fn fill(&mut self, buffer: &mut [u8]) {
        let mut position = 0;
        while position < buffer.len() && self.carried_count > 0 {
            buffer[position] = self.carried[8 - self.carried_count];
            self.carried_count -= 1;
            position += 1;
        }
        for chunk in buffer[position..].chunks_mut(8) {
            let value = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&value[..chunk.len()]);
            if chunk.len() < 8 {
                self.carried = value;
                self.carried_count = 8 - chunk.len();
            }
        }
    }

    /// Moves `count` bytes along the stream, in constant time.
    pub fn skip(&mut self, count: u64) {
        let from_carried = count.min(self.carried_count as u64);
        self.carried_count -= from_carried as usize;
        let rest = count - from_carried;
        self.position += rest / 8;
        let within_word = (rest % 8) as usize;
        if within_word > 0 {
            let mut discarded = [0u8; 8];
            self.fill(&mut discarded[..within_word]);
        }
    }
}

/// Draws the picture for a name: a two-colour gradient, soft rings and a few
/// discs, so there are edges and texture for filters to work on and the JPEG
/// encoder has something real to compress.
pub fn draw(name: &str, width: u32, height: u32) -> RgbImage {
    let mut generator = Generator::new(seed_of(name));
    let mut colour = || -> [f32; 3] { [0, 1, 2].map(|_| (generator.next_u64() % 256) as f32) };
    let (start, end, disc_colour) = (colour(), colour(), colour());
    let unit = |generator: &mut Generator| (generator.next_u64() % 10_000) as f32 / 10_000.0;
    let ring_centre = (
        unit(&mut generator) * width as f32,
        unit(&mut generator) * height as f32,
    );
    let ring_period = 8.0 + unit(&mut generator) * 24.0;
    let discs: Vec<(f32, f32, f32)> = (0..4)
        .map(|_| {
            let radius = (0.05 + unit(&mut generator) * 0.2) * width.min(height) as f32;
            (
                unit(&mut generator) * width as f32,
                unit(&mut generator) * height as f32,
                radius,
            )
        })
        .collect();
    RgbImage::from_fn(width, height, |x, y| {
        let (fx, fy) = (x as f32, y as f32);
        let along = (fx / width.max(1) as f32 + fy / height.max(1) as f32) / 2.0;
        let distance = ((fx - ring_centre.0).powi(2) + (fy - ring_centre.1).powi(2)).sqrt();
        let ring = 0.5 + 0.5 * (distance / ring_period).sin();
        let inside = discs
            .iter()
            .any(|(cx, cy, r)| (fx - cx).powi(2) + (fy - cy).powi(2) < r * r);
        let pixel = [0, 1, 2].map(|channel| {
            let base = start[channel] + (end[channel] - start[channel]) * along;
            let value = if inside {
                disc_colour[channel]
            } else {
                base * (0.75 + 0.25 * ring)
            };
            value.clamp(0.0, 255.0) as u8
        });
        image::Rgb(pixel)
    })
}

/// A small, well-formed PNG whose header declares `width` x `height` RGB
/// pixels that its few bytes of data do not hold: the image bomb that decoders
/// must refuse by the header, before allocating.
pub fn png_declaring(width: u32, height: u32) -> Vec<u8> {
    let mut header = width.to_be_bytes().to_vec();
    header.extend_from_slice(&height.to_be_bytes());
    header.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [
        (&b"IHDR"[..], header),
        (b"IDAT", vec![0x78, 0x9c, 0x63, 0, 0, 0, 1, 0, 1]),
        (b"IEND", Vec::new()),
    ] {
        let mut chunk = kind.to_vec();
        chunk.extend_from_slice(&data);
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        png.extend_from_slice(&chunk);
        png.extend_from_slice(&crc32fast::hash(&chunk).to_be_bytes());
    }
    png
}

/// Draws and encodes an image.
pub fn encode(name: &str, width: u32, height: u32, format: Format) -> Bytes {
    let picture = draw(name, width, height);
    let mut out = Cursor::new(Vec::new());
    let result = match format {
        Format::Jpeg => image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
            .write_image(
                picture.as_raw(),
                width,
                height,
                image::ExtendedColorType::Rgb8,
            ),
        Format::Png => image::codecs::png::PngEncoder::new(&mut out).write_image(
            picture.as_raw(),
            width,
            height,
            image::ExtendedColorType::Rgb8,
        ),
    };
    result.expect("encoding into memory cannot fail for valid dimensions");
    Bytes::from(out.into_inner())
}

type Key = (String, u32, u32, Format);

/// Encoded images by name and size. Encoding costs milliseconds, and benchmarks ask
/// for the same gallery run after run. The cache holds at most `budget` bytes of
/// images: an image larger than the whole budget is not kept, and room for a new
/// one is made by dropping others.
pub struct ImageCache {
    entries: Mutex<Cached>,
    budget: usize,
}

#[derive(Default)]
struct Cached {
    images: HashMap<Key, Bytes>,
    bytes: usize,
}

impl ImageCache {
    pub fn new(budget: usize) -> ImageCache {
        ImageCache {
            entries: Mutex::new(Cached::default()),
            budget,
        }
    }

    pub fn get(&self, name: &str, width: u32, height: u32, format: Format) -> Option<Bytes> {
        let entries = crate::lock(&self.entries);
        entries
            .images
            .get(&(name.to_string(), width, height, format))
            .cloned()
    }

    pub fn insert(&self, name: &str, width: u32, height: u32, format: Format, bytes: Bytes) {
        if bytes.len() > self.budget {
            return;
        }
        let mut entries = crate::lock(&self.entries);
        let key = (name.to_string(), width, height, format);
        if let Some(old) = entries.images.remove(&key) {
            entries.bytes -= old.len();
        }
        // Which images go does not matter much for a demo gallery; any will do.
        while entries.bytes + bytes.len() > self.budget {
            let Some(victim) = entries.images.keys().next().cloned() else {
                break;
            };
            if let Some(old) = entries.images.remove(&victim) {
                entries.bytes -= old.len();
            }
        }
        entries.bytes += bytes.len();
        entries.images.insert(key, bytes);
    }

    /// The bytes of images held now.
    pub fn bytes(&self) -> usize {
        crate::lock(&self.entries).bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_name_same_bytes_and_decodable() {
        let first = encode("cat.png", 64, 48, Format::Png);
        assert_eq!(first, encode("cat.png", 64, 48, Format::Png));
        assert_ne!(first, encode("dog.png", 64, 48, Format::Png));
        let decoded = image::load_from_memory(&first).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (64, 48));
        let jpeg = encode("cat.jpg", 64, 48, Format::Jpeg);
        assert_eq!(
            image::guess_format(&jpeg).unwrap(),
            image::ImageFormat::Jpeg
        );
        assert!(image::load_from_memory(&jpeg).is_ok());
    }

    #[test]
    fn stream_is_the_same_however_it_is_cut() {
        let mut whole = vec![0u8; 1000];
        Generator::new(7).fill(&mut whole);
        let mut pieces = Generator::new(7);
        let mut cut = Vec::new();
        for size in [3, 1, 13, 8, 200, 775] {
            let mut piece = vec![0u8; size];
            pieces.fill(&mut piece);
            cut.extend(piece);
        }
        assert_eq!(cut, whole);
        let mut skipped = Generator::new(7);
        skipped.skip(333);
        let mut rest = vec![0u8; 667];
        skipped.fill(&mut rest);
        assert_eq!(rest, whole[333..]);
        // Skips that start and end mid-word, after a fill that ended mid-word.
        let mut mixed = Generator::new(7);
        let mut head = [0u8; 5];
        mixed.fill(&mut head);
        mixed.skip(2);
        mixed.skip(17);
        let mut tail = vec![0u8; 100];
        mixed.fill(&mut tail);
        assert_eq!(head, whole[..5]);
        assert_eq!(tail, whole[24..124]);
    }

    #[test]
    fn the_image_cache_stays_within_its_bytes() {
        let cache = ImageCache::new(1000);
        for number in 0..50u32 {
            cache.insert("a.png", number, 1, Format::Png, Bytes::from(vec![0u8; 300]));
            assert!(cache.bytes() <= 1000, "{} bytes held", cache.bytes());
        }
        assert_eq!(cache.bytes(), 900);
        assert!(cache.get("a.png", 49, 1, Format::Png).is_some());
        // Larger than the whole budget: served, never kept.
        cache.insert("big.png", 1, 1, Format::Png, Bytes::from(vec![0u8; 1001]));
        assert!(cache.get("big.png", 1, 1, Format::Png).is_none());
        assert_eq!(cache.bytes(), 900);
    }

    #[test]
    fn pictures_are_not_flat() {
        let picture = draw("x", 32, 32);
        let first = picture.get_pixel(0, 0);
        assert!(picture.pixels().any(|pixel| pixel != first));
    }
}
