//! The one JPEG encoder every command writes with (jpeg-encoder: pure Rust,
//! with SIMD), its only per-caller choice being how chroma is halved.

pub use jpeg_encoder::ColorType as Channels;

/// How the colour planes are halved both ways (4:2:0, at every quality: the
/// encoder would keep full chroma from quality 90 up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chroma {
    /// As OpenCV, img2dataset's encoder, does: one sample of each 2x2 block.
    OpenCv,
    /// As Pillow (libjpeg) does: the average of each 2x2 block.
    Pillow,
}

/// Appends the JPEG of `width` x `height` pixels laid out as `channels` to
/// `output`, at `quality` (1 to 100).
pub fn encode(
    output: &mut Vec<u8>,
    pixels: &[u8],
    width: u32,
    height: u32,
    channels: Channels,
    quality: u8,
    chroma: Chroma,
) -> Result<(), String> {
    let too_large = || format!("{width}x{height} is too large for JPEG (at most 65535 a side)");
    let width = u16::try_from(width).map_err(|_| too_large())?;
    let height = u16::try_from(height).map_err(|_| too_large())?;
    let mut encoder = jpeg_encoder::Encoder::new(output, quality.clamp(1, 100));
    encoder.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_2);
    if chroma == Chroma::Pillow {
        encoder.set_chroma_subsampling_method(jpeg_encoder::ChromaSubsamplingMethod::Average);
    }
    encoder
        .encode(pixels, width, height, channels)
        .map_err(|error| error.to_string())
}
