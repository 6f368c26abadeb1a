//! An image's header, read before any pixel exists: its format from its
//! first bytes, its declared size, and the refusal of a decompression bomb.
//! Every command that decodes an image (`dataset`, `filter`) starts here.

use std::io::{BufRead, Seek};

use image::{ImageDecoder, ImageReader};

/// Why an image was not stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    #[error("cannot decode: {0}")]
    Decode(String),
    #[error("cannot decode: not a known image format")]
    UnknownFormat,
    #[error("image area too large: {width}x{height} declared")]
    AreaTooLarge { width: u32, height: u32 },
    #[error("image too small: {width}x{height}")]
    TooSmall { width: u32, height: u32 },
    #[error("aspect ratio too large: {width}x{height}")]
    AspectRatio { width: u32, height: u32 },
    #[error("cannot resize: {0}")]
    Resize(String),
    #[error("cannot encode: {0}")]
    Encode(String),
}

impl ImageError {
    /// The reason without the particulars, for counting failures.
    pub fn reason(&self) -> &'static str {
        match self {
            ImageError::Decode(_) | ImageError::UnknownFormat => "cannot decode",
            ImageError::AreaTooLarge { .. } => "image area too large",
            ImageError::TooSmall { .. } => "image too small",
            ImageError::AspectRatio { .. } => "aspect ratio too large",
            ImageError::Resize(_) => "cannot resize",
            ImageError::Encode(_) => "cannot encode",
        }
    }
}

/// What an image's header declares, read before any pixel buffer exists, and
/// the decoder that read it.
pub struct Header<'a> {
    pub format: image::ImageFormat,
    pub decoder: Box<dyn ImageDecoder + 'a>,
    pub width: u32,
    pub height: u32,
}

/// Reads an image's header only: its format from the first bytes (not the
/// name), then its declared dimensions; an image declaring more than `max_area`
/// pixels is refused here, before anything is allocated for its pixels. The
/// dataset pipeline and `grab filter` both start with this check.
pub fn read_header<'a, R: BufRead + Seek + 'a>(
    reader: R,
    max_area: u64,
) -> Result<Header<'a>, ImageError> {
    let decode = |error: image::ImageError| ImageError::Decode(error.to_string());
    let mut reader = ImageReader::new(reader)
        .with_guessed_format()
        .map_err(|error| ImageError::Decode(error.to_string()))?;
    // The decoder's default limits would refuse a bomb in words of their own;
    // the caller sets its own once the header is read.
    reader.no_limits();
    let format = reader.format().ok_or(ImageError::UnknownFormat)?;
    let decoder = reader.into_decoder().map_err(decode)?;
    let (width, height) = decoder.dimensions();
    if u64::from(width) * u64::from(height) > max_area {
        return Err(ImageError::AreaTooLarge { width, height });
    }
    Ok(Header {
        format,
        decoder: Box::new(decoder),
        width,
        height,
    })
}
