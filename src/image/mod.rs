//! The image layer: what every command that looks inside an image shares.
//! Knows no command.
//!
//! - `blur`: boxes blurred as img2dataset's blurrer does (`--bbox-col`);
//! - `exif`: EXIF tags as img2dataset's `exif` field holds them;
//! - `header`: format and declared size before any pixel, bombs refused;
//! - `jpeg`: the one JPEG encoder and the whole decode, by libjpeg-turbo
//!   (OpenCV's and Pillow's bytes and pixels);
//! - `mime`: media types, extensions, `--accept` patterns, sniffing;
//! - `reduced`: JPEGs decoded at 1/8, 1/4 or 1/2 scale by libjpeg-turbo's DCT scaling;
//! - `resize`: one body to a resized, re-encoded image, as img2dataset's
//!   resize modes mean.

pub(crate) mod blur;
pub(crate) mod exif;
pub(crate) mod header;
pub(crate) mod jpeg;
pub(crate) mod mime;
mod reduced;
pub mod resize;
