//! `grab samples`: deterministic JPEG pictures to try `grab filter` on offline.
//! They are the local gallery's drawings ([`crate::gallery::draw`]:
//! gradients, rings and discs, so every filter has edges and texture to work
//! on), named `sample-01.jpg`, ..., the same bytes on every run and machine.

use std::path::PathBuf;
use std::thread;

use anyhow::Context as _;

use crate::engine::{self, Task, Work};
use crate::fs::atomic::write_atomically;
use crate::gallery::{self, Format};

/// Largest side `grab samples` draws.
pub const MAX_SIDE: u32 = 16_384;

/// What `grab samples` writes.
#[derive(Debug, Clone)]
pub struct SamplesConfig {
    pub count: usize,
    pub output_dir: PathBuf,
    pub width: u32,
    pub height: u32,
}

/// `sample-01.jpg` ... with as many digits as the count needs (at least two).
pub fn sample_name(index: usize, count: usize) -> String {
    let digits = count.to_string().len().max(2);
    format!("sample-{index:0digits$}.jpg")
}

/// Draws and writes the samples on the engine's threads, one per CPU (drawing
/// is the slow part), and returns their paths in order.
pub fn write(config: &SamplesConfig) -> anyhow::Result<Vec<PathBuf>> {
    let directory = &config.output_dir;
    crate::fs::create_folder(directory, "output folder")?;
    let paths: Vec<PathBuf> = (1..=config.count)
        .map(|index| directory.join(sample_name(index, config.count)))
        .collect();
    let workers = thread::available_parallelism().map_or(1, |count| count.get());
    let drawing = Drawing {
        width: config.width,
        height: config.height,
    };
    for outcome in engine::threads::map(&drawing, workers, paths.clone())? {
        outcome?;
    }
    Ok(paths)
}

/// One sample drawn and written, as an engine task.
struct Drawing {
    width: u32,
    height: u32,
}

impl Work for Drawing {
    type Job = PathBuf;
    type Outcome = anyhow::Result<()>;
}

impl Task for Drawing {
    fn run(&self, path: PathBuf, _worker: &str) -> anyhow::Result<()> {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let bytes = gallery::encode(&name, self.width, self.height, Format::Jpeg);
        write_atomically(&path, &bytes, true)
            .with_context(|| format!("cannot write {}", path.display()))
    }
}

/// `1600x1200` as (1600, 1200), each side 1 to [`MAX_SIDE`].
pub fn parse_size(text: &str) -> Result<(u32, u32), String> {
    let invalid =
        || format!("expected WIDTHxHEIGHT such as 1600x1200, each 1 to {MAX_SIDE}, got {text}");
    let (width, height) = text.split_once(['x', 'X']).ok_or_else(invalid)?;
    let side = |value: &str| {
        value
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|side| (1..=MAX_SIDE).contains(side))
            .ok_or_else(invalid)
    };
    Ok((side(width)?, side(height)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn sizes_parse_and_are_bounded() {
        assert_eq!(parse_size("1600x1200"), Ok((1600, 1200)));
        assert_eq!(parse_size("64X48"), Ok((64, 48)));
        assert!(parse_size("0x10").is_err());
        assert!(parse_size("100").is_err());
        assert!(parse_size("99999x10").is_err());
    }

    #[test]
    fn names_are_padded_to_the_count() {
        assert_eq!(sample_name(3, 20), "sample-03.jpg");
        assert_eq!(sample_name(7, 150), "sample-007.jpg");
    }

    #[test]
    fn samples_are_deterministic_and_varied() {
        let first = tempfile::tempdir().unwrap();
        let second = tempfile::tempdir().unwrap();
        let config = |directory: &tempfile::TempDir| SamplesConfig {
            count: 3,
            output_dir: directory.path().to_path_buf(),
            width: 48,
            height: 32,
        };
        let paths = write(&config(&first)).unwrap();
        write(&config(&second)).unwrap();
        assert_eq!(paths.len(), 3);
        let bytes: Vec<Vec<u8>> = paths.iter().map(|path| fs::read(path).unwrap()).collect();
        assert_ne!(bytes[0], bytes[1]);
        assert_eq!(
            bytes[2],
            fs::read(second.path().join("sample-03.jpg")).unwrap()
        );
        let picture = image::load_from_memory(&bytes[0]).unwrap().into_rgb8();
        assert_eq!(picture.dimensions(), (48, 32));
        assert!(
            picture
                .pixels()
                .any(|pixel| pixel != picture.get_pixel(0, 0))
        );
    }
}
