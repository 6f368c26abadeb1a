//! One downloaded body to one dataset image: the header is read first and an
//! image too large, too small or too elongated is refused before its pixels are
//! allocated; then it is decoded (JPEG, PNG, WebP, the first frame of a GIF),
//! turned upright by its EXIF orientation, flattened onto white if it has
//! alpha, resized as img2dataset's `resize_mode` means, its boxes blurred
//! when it has any (`--bbox-col`: after resizing, before the crop or the
//! border, where img2dataset blurs), and encoded.
//!
//! Resizing follows img2dataset's resizer.py: `keep_ratio` and `center_crop`
//! bring the shortest side to `image_size`, `keep_ratio_largest` and `border`
//! the longest; `center_crop` then cuts the centred square, `border` pads to the
//! square with white, centred; new sides are `round(side x scale)` (half to
//! even, as Python's `round`). Downscaling is a box-filter convolution
//! (fast_image_resize `Convolution(Box)`: each output pixel the mean of the
//! source pixels its footprint covers, OpenCV's `INTER_AREA` up to the
//! treatment of partly covered edge pixels); upscaling is Lanczos3, as
//! img2dataset's default `lanczos`.

use std::cell::Cell;
use std::io::Cursor;

use fast_image_resize as resize;
use image::{ColorType, DynamicImage, ImageDecoder, Limits};

use super::blur::{RelativeBox, blur_boxes};
use super::header::{Header, ImageError, read_header};
use super::jpeg;
use super::reduced;

/// How an image is brought to `--image-size` (img2dataset's meanings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResizeMode {
    No,
    Border,
    KeepRatio,
    KeepRatioLargest,
    CenterCrop,
}

named!(ResizeMode {
    No => "no": "keep the size",
    Border => "border": "longest side to the size, then pad with white to a centred square",
    KeepRatio => "keep_ratio": "shortest side to the size, keeping the ratio",
    KeepRatioLargest => "keep_ratio_largest": "longest side to the size, keeping the ratio",
    CenterCrop => "center_crop": "shortest side to the size, then the centred square",
});

/// The format images are saved in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodeFormat {
    Jpg,
    Png,
    Webp,
}

named!(EncodeFormat {
    Jpg => "jpg": "JPEG at --encode-quality (0-100)",
    Png => "png": "PNG; --encode-quality 0-9 is the compression effort",
    Webp => "webp": "WebP, lossy at --encode-quality (0-100); 101 is lossless, as OpenCV means it",
});

impl EncodeFormat {
    /// The file extension, which is also the member suffix in a tar.
    pub fn extension(self) -> &'static str {
        match self {
            EncodeFormat::Jpg => "jpg",
            EncodeFormat::Png => "png",
            EncodeFormat::Webp => "webp",
        }
    }

    fn matches(self, format: image::ImageFormat) -> bool {
        matches!(
            (self, format),
            (EncodeFormat::Jpg, image::ImageFormat::Jpeg)
                | (EncodeFormat::Png, image::ImageFormat::Png)
                | (EncodeFormat::Webp, image::ImageFormat::WebP)
        )
    }
}

/// What the pipeline does to each image.
#[derive(Debug, Clone)]
pub struct ImageSettings {
    pub image_size: u32,
    pub resize_mode: ResizeMode,
    /// Leave images that already fit alone (never upscale).
    pub resize_only_if_bigger: bool,
    pub encode_format: EncodeFormat,
    /// JPEG and WebP quality 0-100 (101: lossless WebP), or PNG compression effort 0-9.
    pub encode_quality: u8,
    /// Keep the downloaded bytes when nothing would change them.
    pub skip_reencode: bool,
    /// Refuse images whose shortest side is shorter.
    pub min_image_size: u32,
    /// Refuse images declaring more pixels, before decoding.
    pub max_image_area: u64,
    /// Refuse images whose longest side is more than this times the shortest.
    pub max_aspect_ratio: f64,
}

impl Default for ImageSettings {
    /// img2dataset's defaults, except a finite area limit: 178 million pixels,
    /// Pillow's decompression-bomb threshold.
    fn default() -> ImageSettings {
        ImageSettings {
            image_size: 256,
            resize_mode: ResizeMode::Border,
            resize_only_if_bigger: false,
            encode_format: EncodeFormat::Jpg,
            encode_quality: 95,
            skip_reencode: false,
            min_image_size: 0,
            max_image_area: 178_956_970,
            max_aspect_ratio: f64::INFINITY,
        }
    }
}

/// An image ready to be stored.
#[derive(Debug, Clone)]
pub struct Processed {
    pub bytes: Vec<u8>,
    pub sizes: Sizes,
}

/// A stored image's sides, and those of the upright image it was made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Sizes {
    pub width: u32,
    pub height: u32,
    /// Upright, before resizing.
    pub original_width: u32,
    pub original_height: u32,
}

impl Sizes {
    /// The four sides: width, height, original width, original height.
    pub fn sides(self) -> [u32; 4] {
        [
            self.width,
            self.height,
            self.original_width,
            self.original_height,
        ]
    }
}

/// Runs the whole pipeline on one body.
pub fn process(body: &[u8], settings: &ImageSettings) -> Result<Processed, ImageError> {
    process_blurring(body, settings, &[])
}

/// The pipeline with `boxes` (relative to the upright image) blurred.
pub fn process_blurring(
    body: &[u8],
    settings: &ImageSettings,
    boxes: &[RelativeBox],
) -> Result<Processed, ImageError> {
    let decode = |error: image::ImageError| ImageError::Decode(error.to_string());
    let Header {
        format,
        mut decoder,
        width: declared_width,
        height: declared_height,
    } = read_header(Cursor::new(body), settings.max_image_area)?;
    // A decoder that finds more than its header said is stopped too.
    let mut limits = Limits::default();
    limits.max_image_width = Some(declared_width);
    limits.max_image_height = Some(declared_height);
    limits.max_alloc = Some(settings.max_image_area.saturating_mul(8).max(1 << 20));
    decoder.set_limits(limits).map_err(decode)?;
    let orientation = decoder.orientation().map_err(decode)?;
    let (width, height) = turned((declared_width, declared_height), orientation);
    if width.min(height) < settings.min_image_size {
        return Err(ImageError::TooSmall { width, height });
    }
    if f64::from(width.max(height)) / f64::from(width.min(height).max(1))
        > settings.max_aspect_ratio
    {
        return Err(ImageError::AspectRatio { width, height });
    }
    let (target, crop, pad) = plan(width, height, settings);
    // Turning back is the same swap.
    let stored_target = turned(target, orientation);
    let numerator = match format {
        image::ImageFormat::Jpeg => {
            reduced::numerator_for(declared_width, declared_height, stored_target)
        }
        _ => 8,
    };
    let reduced = (numerator < 8)
        .then(|| reduced::decode(body, numerator, (declared_width, declared_height)))
        .flatten();
    let upright = orientation == image::metadata::Orientation::NoTransforms;
    let (rgb, region, opaque) = match reduced {
        Some(reduced) => {
            let stored_size = reduced.pixels.dimensions();
            let mut image = DynamicImage::ImageRgb8(reduced.pixels);
            image.apply_orientation(orientation);
            let region = reduced::oriented_region(stored_size, reduced.covered, orientation);
            (image.into_rgb8(), Some(region), true)
        }
        None if upright => {
            let (rgb, opaque) = decode_whole(decoder, settings.max_image_area).map_err(decode)?;
            (rgb, None, opaque)
        }
        None => {
            let mut image = DynamicImage::from_decoder(decoder).map_err(decode)?;
            image.apply_orientation(orientation);
            let opaque = !image.color().has_alpha();
            (flatten_on_white(image), None, opaque)
        }
    };
    let resized = target != rgb.dimensions() || region.is_some();
    // Blurred pixels must be encoded: unlike img2dataset, which with
    // skip_reencode could keep the original bytes and lose the blur.
    let blurring = !boxes.is_empty();
    if settings.skip_reencode
        && !blurring
        && !resized
        && !pad
        && crop.is_none()
        && upright
        && opaque
        && settings.encode_format.matches(format)
    {
        return Ok(Processed {
            bytes: body.to_vec(),
            sizes: Sizes {
                width,
                height,
                original_width: width,
                original_height: height,
            },
        });
    }
    let mut pixels = if pad && blurring {
        // Blurred before the border is added, as img2dataset does: the
        // reflected edges are the image's, not the white border's.
        let mut image = if resized {
            resized_whole(rgb, region, target)?
        } else {
            rgb
        };
        blur_boxes(&mut image, boxes);
        let (mut canvas, offset) = white_canvas(target, settings.image_size);
        image::imageops::replace(
            &mut canvas,
            &image,
            i64::from(offset.0),
            i64::from(offset.1),
        );
        canvas
    } else if pad {
        // Resized straight into the white square: no second image to copy into.
        let (mut canvas, offset) = white_canvas(target, settings.image_size);
        if resized {
            resize_onto(&rgb, region, &mut canvas, offset, target)?;
        } else {
            image::imageops::replace(&mut canvas, &rgb, i64::from(offset.0), i64::from(offset.1));
        }
        keep_pixels(rgb);
        canvas
    } else if resized {
        resized_whole(rgb, region, target)?
    } else {
        rgb
    };
    if blurring && !pad {
        blur_boxes(&mut pixels, boxes);
    }
    if let Some(side) = crop {
        pixels = center_crop(&pixels, side);
    }
    let bytes = encode(&pixels, settings)?;
    Ok(Processed {
        bytes,
        sizes: Sizes {
            width: pixels.width(),
            height: pixels.height(),
            original_width: width,
            original_height: height,
        },
    })
}

/// A pair of sides as they show once `orientation` is applied: swapped when it
/// turns the image a quarter.
pub fn turned<T>(sides: (T, T), orientation: image::metadata::Orientation) -> (T, T) {
    use image::metadata::Orientation::*;
    match orientation {
        Rotate90 | Rotate270 | Rotate90FlipH | Rotate270FlipH => (sides.1, sides.0),
        _ => sides,
    }
}

/// The largest pixel buffer an image thread keeps between images: enough for
/// a 4,000 x 4,000 RGBA picture; a rarer giant is given back after use.
const KEPT_PIXELS_MOST: usize = 64 << 20;

thread_local! {
    /// The pixel buffer of this thread's last decoded picture, for its next.
    /// A fresh buffer of megabytes is either new pages for the kernel to
    /// fault in and zero, or memory from the allocator's free lists, which
    /// these large blocks among small ones fragment: on bench/dataset.sh's
    /// large set the process kept some 160 MB for some 100 MB in use.
    static SPARE_PIXELS: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// This thread's kept pixel buffer (empty at first), `length` bytes long:
/// zeroed only where it grows.
pub(super) fn spare_pixels(length: usize) -> Vec<u8> {
    let mut buffer = SPARE_PIXELS.take();
    buffer.resize(length, 0);
    buffer
}

/// Keeps `image`'s pixels for this thread's next picture, if larger than the
/// buffer it keeps now (and not a giant).
fn keep_pixels(image: image::RgbImage) {
    let buffer = image.into_raw();
    let kept = SPARE_PIXELS.take();
    let larger = buffer.capacity() > kept.capacity() && buffer.capacity() <= KEPT_PIXELS_MOST;
    SPARE_PIXELS.set(if larger { buffer } else { kept });
}

/// An upright picture decoded whole, as RGB on white, and whether it was
/// opaque: 8-bit RGB and RGBA (most JPEGs and PNGs) into this thread's kept
/// buffer, flattened in place; other kinds as the `image` crate converts them.
fn decode_whole(
    decoder: Box<dyn ImageDecoder + '_>,
    most_area: u64,
) -> image::ImageResult<(image::RgbImage, bool)> {
    let (width, height) = decoder.dimensions();
    let color = decoder.color_type();
    let length = decoder.total_bytes();
    // Within the limit the decoder was given (`decoder_to_vec` checks the same).
    let fits = length <= most_area.saturating_mul(8).max(1 << 20);
    if !fits || !matches!(color, ColorType::Rgb8 | ColorType::Rgba8) {
        let image = DynamicImage::from_decoder(decoder)?;
        let opaque = !image.color().has_alpha();
        return Ok((flatten_on_white(image), opaque));
    }
    let mut buffer = spare_pixels(length as usize);
    decoder.read_image(&mut buffer)?;
    let opaque = color == ColorType::Rgb8;
    if !opaque {
        flatten_rgba_in_place(&mut buffer);
    }
    let rgb = image::RgbImage::from_raw(width, height, buffer)
        .expect("a decoder's buffer holds its dimensions");
    Ok((rgb, opaque))
}

/// Alpha composited onto white, as img2dataset does: `alpha/255 x colour + 255 - alpha`.
fn flatten_on_white(image: DynamicImage) -> image::RgbImage {
    if !image.color().has_alpha() {
        return image.into_rgb8();
    }
    let rgba = image.into_rgba8();
    let (width, height) = rgba.dimensions();
    let mut rgb = image::RgbImage::new(width, height);
    for (source, target) in rgba.pixels().zip(rgb.pixels_mut()) {
        target.0 = on_white(source.0);
    }
    rgb
}

/// RGBA pixels turned into RGB on white in the same buffer, which then holds
/// three bytes a pixel: pixel `i` is written at `3i`, never past where pixel
/// `i + 1` is still to be read (at `4i + 4`).
fn flatten_rgba_in_place(buffer: &mut Vec<u8>) {
    let pixels = buffer.len() / 4;
    for index in 0..pixels {
        let source = [
            buffer[4 * index],
            buffer[4 * index + 1],
            buffer[4 * index + 2],
            buffer[4 * index + 3],
        ];
        buffer[3 * index..3 * index + 3].copy_from_slice(&on_white(source));
    }
    buffer.truncate(3 * pixels);
}

/// One RGBA pixel composited onto white.
fn on_white(rgba: [u8; 4]) -> [u8; 3] {
    let alpha = f32::from(rgba[3]);
    [0, 1, 2].map(|channel| {
        let value = alpha / 255.0 * f32::from(rgba[channel]) + 255.0 - alpha;
        value.round().clamp(0.0, 255.0) as u8
    })
}

/// Python's `round`: halves go to the even neighbour.
fn round_half_even(value: f64) -> u32 {
    let floor = value.floor();
    let rounded = match value - floor {
        fraction if fraction > 0.5 => floor + 1.0,
        fraction if fraction < 0.5 => floor,
        _ if floor % 2.0 == 0.0 => floor,
        _ => floor + 1.0,
    };
    rounded.max(1.0) as u32
}

/// The size to resize to, the square to cut afterwards, and whether to pad.
pub fn plan(width: u32, height: u32, settings: &ImageSettings) -> ((u32, u32), Option<u32>, bool) {
    let size = settings.image_size;
    let unchanged = ((width, height), None, false);
    let side = match settings.resize_mode {
        ResizeMode::No => return unchanged,
        ResizeMode::KeepRatio | ResizeMode::CenterCrop => width.min(height),
        ResizeMode::Border | ResizeMode::KeepRatioLargest => width.max(height),
    };
    if settings.resize_only_if_bigger && side <= size {
        return unchanged;
    }
    let scale = f64::from(size) / f64::from(side);
    let target = if side == size {
        (width, height)
    } else {
        (
            round_half_even(f64::from(width) * scale),
            round_half_even(f64::from(height) * scale),
        )
    };
    match settings.resize_mode {
        ResizeMode::CenterCrop => (target, Some(size), false),
        ResizeMode::Border => (target, None, true),
        _ => (target, None, false),
    }
}

/// The filter for a resize: a box over the footprint when shrinking, Lanczos3
/// when enlarging.
pub fn filter_for(from: (u32, u32), to: (u32, u32)) -> resize::FilterType {
    if u64::from(to.0) * u64::from(to.1) < u64::from(from.0) * u64::from(from.1) {
        resize::FilterType::Box
    } else {
        resize::FilterType::Lanczos3
    }
}

/// Resizes RGB pixels with the filter [`filter_for`] chooses.
pub fn resize_rgb(
    image: &image::RgbImage,
    width: u32,
    height: u32,
) -> Result<image::RgbImage, ImageError> {
    let mut resized = image::RgbImage::new(width, height);
    resize_onto(image, None, &mut resized, (0, 0), (width, height))?;
    Ok(resized)
}

thread_local! {
    /// A resizer per image thread: it keeps its scratch buffers between images.
    static RESIZER: std::cell::RefCell<resize::Resizer> =
        std::cell::RefCell::new(resize::Resizer::new());
}

/// Resizes `region` of `image` (`(left, top, width, height)`, fractional; all of
/// it when `None`) to `size`, written into `canvas` at `offset`.
fn resize_onto(
    image: &image::RgbImage,
    region: Option<(f64, f64, f64, f64)>,
    canvas: &mut image::RgbImage,
    offset: (u32, u32),
    size: (u32, u32),
) -> Result<(), ImageError> {
    let failed = |error: &dyn std::fmt::Display| ImageError::Resize(error.to_string());
    let source = resize::images::ImageRef::new(
        image.width(),
        image.height(),
        image.as_raw(),
        resize::PixelType::U8x3,
    )
    .map_err(|error| failed(&error))?;
    let (canvas_width, canvas_height) = canvas.dimensions();
    let mut target = resize::images::Image::from_slice_u8(
        canvas_width,
        canvas_height,
        canvas,
        resize::PixelType::U8x3,
    )
    .map_err(|error| failed(&error))?;
    let mut target =
        resize::images::CroppedImageMut::new(&mut target, offset.0, offset.1, size.0, size.1)
            .map_err(|error| failed(&error))?;
    let (left, top, width, height) = region.unwrap_or((
        0.0,
        0.0,
        f64::from(image.width()),
        f64::from(image.height()),
    ));
    let filter = filter_for(image.dimensions(), size);
    let options = resize::ResizeOptions::new()
        .resize_alg(resize::ResizeAlg::Convolution(filter))
        .crop(left, top, width, height);
    RESIZER
        .with_borrow_mut(|resizer| resizer.resize(&source, &mut target, &options))
        .map_err(|error| failed(&error))
}

/// `region` of `image` resized to a new image of `size`; `image`'s pixel
/// buffer is kept for this thread's next picture.
fn resized_whole(
    image: image::RgbImage,
    region: Option<(f64, f64, f64, f64)>,
    size: (u32, u32),
) -> Result<image::RgbImage, ImageError> {
    let mut canvas = image::RgbImage::new(size.0, size.1);
    resize_onto(&image, region, &mut canvas, (0, 0), size)?;
    keep_pixels(image);
    Ok(canvas)
}

/// The centred `side` x `side` square (albumentations' CenterCrop: the extra
/// row or column goes to the bottom and right).
fn center_crop(image: &image::RgbImage, side: u32) -> image::RgbImage {
    let (width, height) = image.dimensions();
    let (crop_width, crop_height) = (side.min(width), side.min(height));
    let (left, top) = ((width - crop_width) / 2, (height - crop_height) / 2);
    image::imageops::crop_imm(image, left, top, crop_width, crop_height).to_image()
}

/// A white canvas for an image of `size` padded to `side` x `side`, and where
/// the image goes on it: centred, as albumentations' PadIfNeeded (the extra row
/// or column goes to the bottom and right).
fn white_canvas(size: (u32, u32), side: u32) -> (image::RgbImage, (u32, u32)) {
    let (width, height) = (side.max(size.0), side.max(size.1));
    let canvas = image::RgbImage::from_pixel(width, height, image::Rgb([255, 255, 255]));
    (canvas, ((width - size.0) / 2, (height - size.1) / 2))
}

fn encode(pixels: &image::RgbImage, settings: &ImageSettings) -> Result<Vec<u8>, ImageError> {
    let failed = |error: &dyn std::fmt::Display| ImageError::Encode(error.to_string());
    let mut bytes = Vec::new();
    let (width, height) = pixels.dimensions();
    match settings.encode_format {
        EncodeFormat::Jpg => {
            jpeg::encode(
                &mut bytes,
                pixels.as_raw(),
                width,
                height,
                jpeg::Channels::Rgb,
                settings.encode_quality,
            )
            .map_err(|error| failed(&error))?;
        }
        EncodeFormat::Png => {
            use image::codecs::png::{CompressionType, FilterType, PngEncoder};
            let compression = match settings.encode_quality {
                0..=2 => CompressionType::Fast,
                3..=6 => CompressionType::Default,
                _ => CompressionType::Best,
            };
            let encoder =
                PngEncoder::new_with_quality(&mut bytes, compression, FilterType::Adaptive);
            image::ImageEncoder::write_image(
                encoder,
                pixels.as_raw(),
                width,
                height,
                image::ExtendedColorType::Rgb8,
            )
            .map_err(|error| failed(&error))?;
        }
        EncodeFormat::Webp => {
            // libwebp (the `webp` crate): the image crate encodes lossless
            // WebP only, and img2dataset's WebP (OpenCV's) is lossy at the
            // quality, lossless above 100.
            let quality = settings.encode_quality;
            let encoded = webp::Encoder::from_rgb(pixels.as_raw(), width, height)
                .encode_simple(quality > 100, f32::from(quality.min(100)))
                .map_err(|error| ImageError::Encode(format!("WebP: {error:?}")))?;
            bytes = encoded.to_vec();
        }
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(mode: ResizeMode, size: u32) -> ImageSettings {
        ImageSettings {
            image_size: size,
            resize_mode: mode,
            ..ImageSettings::default()
        }
    }

    /// `image` encoded as `format`: a body as a server would send it.
    fn encoded_as(image: &DynamicImage, format: image::ImageFormat) -> Vec<u8> {
        let mut bytes = Vec::new();
        image
            .write_to(&mut Cursor::new(&mut bytes), format)
            .unwrap();
        bytes
    }

    #[test]
    fn plans_follow_img2dataset() {
        use ResizeMode::*;
        // (width, height, mode): (resized size, crop, bordered), to 100.
        let plans = [
            ((400, 200, No), ((400, 200), None, false)),
            ((400, 200, KeepRatio), ((200, 100), None, false)),
            ((400, 200, KeepRatioLargest), ((100, 50), None, false)),
            ((400, 200, CenterCrop), ((200, 100), Some(100), false)),
            ((400, 200, Border), ((100, 50), None, true)),
            // Upscaled unless only bigger ones are resized.
            ((50, 40, Border), ((100, 80), None, true)),
            // 333 x 100 to 100 long: 30.03 rounds to 30.
            ((333, 100, KeepRatioLargest), ((100, 30), None, false)),
        ];
        for ((width, height, mode), planned) in plans {
            assert_eq!(
                plan(width, height, &settings(mode, 100)),
                planned,
                "{width} x {height}, {mode:?}"
            );
        }
        let only_bigger = ImageSettings {
            resize_only_if_bigger: true,
            ..settings(Border, 100)
        };
        assert_eq!(plan(50, 40, &only_bigger), ((50, 40), None, false));
        // Halves go to even.
        assert_eq!(round_half_even(2.5), 2);
        assert_eq!(round_half_even(3.5), 4);
        assert_eq!(round_half_even(0.2), 1);
    }

    #[test]
    fn white_padding_is_centred() {
        let (canvas, offset) = white_canvas((4, 2), 5);
        assert_eq!(canvas.dimensions(), (5, 5));
        assert!(canvas.pixels().all(|pixel| pixel.0 == [255, 255, 255]));
        // Left 0 (1 column to the right), top 1, bottom 2.
        assert_eq!(offset, (0, 1));
        // Wider than the side: no padding across.
        assert_eq!(white_canvas((7, 2), 5).1, (0, 1));
        assert_eq!(white_canvas((7, 2), 5).0.dimensions(), (7, 5));
    }

    #[test]
    fn rgba_flattened_in_place_is_flattened_as_a_copy_is() {
        let rgba = image::RgbaImage::from_fn(61, 7, |x, y| {
            image::Rgba([
                (x * 4) as u8,
                (y * 37) as u8,
                (x * y) as u8,
                (x * 13 + y) as u8,
            ])
        });
        let copy = flatten_on_white(DynamicImage::ImageRgba8(rgba.clone()));
        let mut buffer = rgba.into_raw();
        flatten_rgba_in_place(&mut buffer);
        assert_eq!(buffer, copy.into_raw());
    }

    /// A thread decodes into the buffer its last picture left: a larger
    /// picture, then a smaller one with alpha, then an opaque one, each
    /// exactly as the `image` crate's own decode gives it.
    #[test]
    fn pictures_decoded_into_a_kept_buffer_are_those_decoded_afresh() {
        let large = DynamicImage::ImageRgb8(image::RgbImage::from_fn(90, 70, |x, y| {
            image::Rgb([x as u8, y as u8, (x ^ y) as u8])
        }));
        let translucent = DynamicImage::ImageRgba8(image::RgbaImage::from_fn(33, 21, |x, y| {
            image::Rgba([(x * 7) as u8, (y * 11) as u8, 200, (x * y * 3) as u8])
        }));
        let small = DynamicImage::ImageRgb8(image::RgbImage::from_fn(12, 40, |x, y| {
            image::Rgb([(y * 5) as u8, 9, (x * 20) as u8])
        }));
        for (picture, opaque) in [(large, true), (translucent, false), (small, true)] {
            let bytes = encoded_as(&picture, image::ImageFormat::Png);
            let header = read_header(Cursor::new(&bytes[..]), u64::MAX).unwrap();
            let (decoded, was_opaque) = decode_whole(header.decoder, u64::MAX).unwrap();
            let afresh = flatten_on_white(image::load_from_memory(&bytes).unwrap());
            assert_eq!(decoded, afresh);
            assert_eq!(was_opaque, opaque);
            keep_pixels(decoded);
        }
    }

    #[test]
    fn alpha_is_flattened_onto_white() {
        let mut rgba = image::RgbaImage::new(1, 1);
        rgba.put_pixel(0, 0, image::Rgba([0, 100, 200, 0]));
        let flat = flatten_on_white(DynamicImage::ImageRgba8(rgba.clone()));
        assert_eq!(flat.get_pixel(0, 0).0, [255, 255, 255]);
        rgba.put_pixel(0, 0, image::Rgba([0, 100, 200, 255]));
        let flat = flatten_on_white(DynamicImage::ImageRgba8(rgba));
        assert_eq!(flat.get_pixel(0, 0).0, [0, 100, 200]);
    }

    /// OpenCV's INTER_AREA, computed here independently: each output pixel is
    /// the mean of the source area it covers, partly covered pixels weighted by
    /// the part covered.
    fn area_reference(source: &image::RgbImage, width: u32, height: u32) -> image::RgbImage {
        let (source_width, source_height) = source.dimensions();
        let (scale_x, scale_y) = (
            f64::from(source_width) / f64::from(width),
            f64::from(source_height) / f64::from(height),
        );
        let weights = |start: f64, end: f64, limit: u32| {
            let mut weights = Vec::new();
            let mut position = start.floor() as u32;
            while f64::from(position) < end && position < limit {
                let covered =
                    (end.min(f64::from(position + 1)) - start.max(f64::from(position))).max(0.0);
                weights.push((position, covered));
                position += 1;
            }
            weights
        };
        image::RgbImage::from_fn(width, height, |x, y| {
            let columns = weights(
                f64::from(x) * scale_x,
                f64::from(x + 1) * scale_x,
                source_width,
            );
            let rows = weights(
                f64::from(y) * scale_y,
                f64::from(y + 1) * scale_y,
                source_height,
            );
            let mut sum = [0.0f64; 3];
            let mut total = 0.0;
            for &(row, row_weight) in &rows {
                for &(column, column_weight) in &columns {
                    let weight = row_weight * column_weight;
                    let pixel = source.get_pixel(column, row);
                    for channel in 0..3 {
                        sum[channel] += weight * f64::from(pixel[channel]);
                    }
                    total += weight;
                }
            }
            image::Rgb(sum.map(|value| (value / total).round() as u8))
        })
    }

    fn differences(left: &image::RgbImage, right: &image::RgbImage) -> (u8, f64) {
        let pairs = left.as_raw().iter().zip(right.as_raw());
        let gaps: Vec<u8> = pairs.map(|(a, b)| a.abs_diff(*b)).collect();
        let largest = gaps.iter().copied().max().unwrap_or(0);
        let mean = gaps.iter().map(|&gap| f64::from(gap)).sum::<f64>() / gaps.len() as f64;
        (largest, mean)
    }

    /// Pillow's BOX, computed here independently: output pixel `x` averages,
    /// with equal weights, the source pixels whose centres lie in its
    /// footprint `(x + 0.5) x scale ± scale / 2` (half-open on the left).
    fn box_reference(source: &image::RgbImage, width: u32, height: u32) -> image::RgbImage {
        let taps = |output: u32, scale: f64, limit: u32| -> Vec<u32> {
            let centre = (f64::from(output) + 0.5) * scale;
            (0..limit)
                .filter(|&input| {
                    let offset = f64::from(input) + 0.5 - centre;
                    offset > -scale / 2.0 && offset <= scale / 2.0
                })
                .collect()
        };
        let (source_width, source_height) = source.dimensions();
        let (scale_x, scale_y) = (
            f64::from(source_width) / f64::from(width),
            f64::from(source_height) / f64::from(height),
        );
        image::RgbImage::from_fn(width, height, |x, y| {
            let (columns, rows) = (
                taps(x, scale_x, source_width),
                taps(y, scale_y, source_height),
            );
            let mut sum = [0.0f64; 3];
            for &row in &rows {
                for &column in &columns {
                    let pixel = source.get_pixel(column, row);
                    for channel in 0..3 {
                        sum[channel] += f64::from(pixel[channel]);
                    }
                }
            }
            let count = (rows.len() * columns.len()) as f64;
            image::Rgb(sum.map(|value| (value / count).round() as u8))
        })
    }

    /// Downscaling is a box filter: within 1 level of an independent box
    /// reference, whole or fractional factor, even on noise. Against OpenCV's
    /// INTER_AREA (exact area weights) it is exact for whole factors (within
    /// 1 level); for fractional ones the two differ only in how partly covered
    /// source pixels count: on a picture (not noise), within 0.5 level on
    /// average and 24 at worst (at hard edges; 17 measured).
    #[test]
    fn downscaling_is_a_box_filter_close_to_area() {
        let mut generator = crate::gallery::Generator::new(7);
        let noise = image::RgbImage::from_fn(400, 300, |x, y| {
            let grain = (generator.next_u64() % 64) as u8;
            image::Rgb([
                (x % 256) as u8 / 2 + grain,
                (y % 256) as u8 / 2 + grain,
                ((x + y) % 128) as u8 + grain,
            ])
        });
        for (width, height) in [(100, 75), (256, 192), (123, 77)] {
            let resized = resize_rgb(&noise, width, height).unwrap();
            let (largest, _) = differences(&resized, &box_reference(&noise, width, height));
            assert!(
                largest <= 1,
                "{width}x{height}: {largest} from the box reference"
            );
        }
        let whole = resize_rgb(&noise, 100, 75).unwrap();
        let (largest, _) = differences(&whole, &area_reference(&noise, 100, 75));
        assert!(largest <= 1, "whole factor: {largest} from area");
        let picture = crate::gallery::draw("downscale", 1000, 750);
        let resized = resize_rgb(&picture, 256, 192).unwrap();
        let (largest, mean) = differences(&resized, &area_reference(&picture, 256, 192));
        assert!(
            mean <= 0.5 && largest <= 24,
            "fractional factor on a picture: mean {mean}, largest {largest} from area"
        );
    }

    /// A JPEG of a gallery picture, encoded by jpeg-encoder as `color`
    /// (RGB, grayscale or CMYK), progressive or not, with an EXIF orientation
    /// when one is given (6: turn 90 degrees clockwise to view).
    fn jpeg(
        name: &str,
        (width, height): (u16, u16),
        color: jpeg_encoder::ColorType,
        progressive: bool,
        orientation: Option<u8>,
    ) -> Vec<u8> {
        let picture = crate::gallery::draw(name, width.into(), height.into());
        let pixels: Vec<u8> = match color {
            jpeg_encoder::ColorType::Luma => {
                DynamicImage::ImageRgb8(picture).into_luma8().into_raw()
            }
            jpeg_encoder::ColorType::Cmyk => picture
                .pixels()
                .flat_map(|pixel| [255 - pixel[0], 255 - pixel[1], 255 - pixel[2], 0])
                .collect(),
            _ => picture.into_raw(),
        };
        let mut bytes = Vec::new();
        let mut encoder = jpeg_encoder::Encoder::new(&mut bytes, 90);
        encoder.set_progressive(progressive);
        if let Some(value) = orientation {
            // TIFF header (big-endian), one IFD entry: Orientation (0x0112), SHORT, 1.
            let mut exif = b"Exif\0\0MM\0\x2a\0\0\0\x08\0\x01".to_vec();
            exif.extend_from_slice(&[0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, value, 0, 0, 0, 0, 0, 0]);
            encoder.add_app_segment(1, exif).unwrap();
        }
        encoder.encode(&pixels, width, height, color).unwrap();
        bytes
    }

    /// What `process` made before reduced decoding: the whole image decoded
    /// by zune-jpeg, turned upright, resized from full size, padded.
    fn full_decode_reference(body: &[u8], settings: &ImageSettings) -> image::RgbImage {
        let mut decoder = image::ImageReader::new(Cursor::new(body))
            .with_guessed_format()
            .unwrap()
            .into_decoder()
            .unwrap();
        let orientation = decoder.orientation().unwrap();
        let mut image = DynamicImage::from_decoder(decoder).unwrap();
        image.apply_orientation(orientation);
        let rgb = image.into_rgb8();
        let ((width, height), _, pad) = plan(rgb.width(), rgb.height(), settings);
        let resized = resize_rgb(&rgb, width, height).unwrap();
        assert!(pad, "the reference pads, as border does");
        let (mut canvas, (left, top)) = white_canvas((width, height), settings.image_size);
        image::imageops::replace(&mut canvas, &resized, i64::from(left), i64::from(top));
        canvas
    }

    /// `process` with a lossless output, read back.
    fn processed_pixels(body: &[u8], settings: &ImageSettings) -> image::RgbImage {
        let png = ImageSettings {
            encode_format: EncodeFormat::Png,
            encode_quality: 1,
            ..settings.clone()
        };
        let processed = process(body, &png).unwrap();
        image::load_from_memory(&processed.bytes)
            .unwrap()
            .into_rgb8()
    }

    /// JPEGs shrunk by at least 4 are decoded at 1/4 scale, by at least 2 at
    /// 1/2, and resized the rest of the way. Against the whole decode resized from full size,
    /// on gallery pictures (soft gradients, hard-edged discs): within 1.0 level
    /// on average and 160 at worst, at hard edges, where an edge falls in
    /// another output pixel (0.39 - 1.55 mean, 148 worst measured over the
    /// pictures of bench/dataset.sh at 1/2 and 1/4). The same holds for grayscale,
    /// progressive and EXIF-turned JPEGs; a CMYK JPEG, which libjpeg will not
    /// turn into RGB, is decoded whole as before.
    #[test]
    fn reduced_decodes_stay_close_to_whole_decodes() {
        use jpeg_encoder::ColorType::{Cmyk, Luma, Rgb};
        let border = settings(ResizeMode::Border, 256);
        // A half is offered where libjpeg-turbo runs its SIMD code.
        let half = if reduced::reductions().contains(&4) {
            4
        } else {
            8
        };
        let cases = [
            ("eighth", (2400, 1800), Rgb, false, None, 1, true),
            ("eighth, narrow", (2600, 1500), Rgb, false, None, 1, true),
            ("quarter", (1100, 830), Rgb, false, None, 2, true),
            ("half", (1000, 750), Rgb, false, None, half, half < 8),
            ("whole", (500, 375), Rgb, false, None, 8, false),
            ("tall", (749, 1039), Rgb, false, None, 2, true),
            ("gray", (1300, 1100), Luma, false, None, 2, true),
            ("progressive", (1222, 418), Rgb, true, None, 2, true),
            ("turned", (900, 1300), Rgb, false, Some(6), 2, true),
            ("cmyk", (1100, 900), Cmyk, false, None, 2, false),
        ];
        for (name, size, color, progressive, orientation, numerator, reduces) in cases {
            let body = jpeg(name, size, color, progressive, orientation);
            let (width, height) = (u32::from(size.0), u32::from(size.1));
            let (target, _, _) = plan(width, height, &border);
            assert_eq!(
                reduced::numerator_for(width, height, target),
                numerator,
                "{name}"
            );
            let decoded = (numerator < 8)
                .then(|| reduced::decode(&body, numerator, (width, height)))
                .flatten();
            assert_eq!(decoded.is_some(), reduces, "{name}");
            let reduced = processed_pixels(&body, &border);
            let reference = full_decode_reference(&body, &border);
            assert_eq!(reduced.dimensions(), reference.dimensions(), "{name}");
            let (largest, mean) = differences(&reduced, &reference);
            eprintln!("{name}: mean {mean:.3}, largest {largest}");
            assert!(
                mean <= 1.0 && largest <= 160,
                "{name}: mean {mean}, largest {largest} from the whole decode"
            );
            if !reduces {
                assert_eq!(largest, 0, "{name}: decoded whole, as before");
            }
        }
    }

    /// A JPEG libjpeg would patch over with grey (cut short here) is left to
    /// the whole decode, which refuses it as before.
    #[test]
    fn a_damaged_jpeg_is_not_decoded_reduced() {
        let mut body = jpeg(
            "damaged",
            (1100, 830),
            jpeg_encoder::ColorType::Rgb,
            false,
            None,
        );
        body.truncate(body.len() / 2);
        assert!(reduced::decode(&body, 2, (1100, 830)).is_none());
        body.truncate(200);
        body.extend_from_slice(&[0x55; 300]);
        assert!(reduced::decode(&body, 2, (1100, 830)).is_none());
        assert!(matches!(
            process(&body, &settings(ResizeMode::Border, 256)),
            Err(ImageError::Decode(_))
        ));
    }

    #[test]
    fn gif_and_webp_decode_and_every_encode_format_reads_back() {
        let picture = DynamicImage::ImageRgb8(crate::gallery::draw("formats", 30, 20));
        for format in [
            image::ImageFormat::Gif,
            image::ImageFormat::WebP,
            image::ImageFormat::Png,
        ] {
            let body = encoded_as(&picture, format);
            for encode_format in [EncodeFormat::Jpg, EncodeFormat::Png, EncodeFormat::Webp] {
                let settings = ImageSettings {
                    encode_format,
                    encode_quality: if encode_format == EncodeFormat::Png {
                        6
                    } else {
                        90
                    },
                    ..settings(ResizeMode::KeepRatioLargest, 15)
                };
                let processed = process(&body, &settings).unwrap();
                assert_eq!(
                    (processed.sizes.width, processed.sizes.height),
                    (15, 10),
                    "{format:?} to {encode_format:?}"
                );
                assert_eq!(
                    (
                        processed.sizes.original_width,
                        processed.sizes.original_height
                    ),
                    (30, 20)
                );
                let read = image::load_from_memory(&processed.bytes).unwrap();
                assert_eq!((read.width(), read.height()), (15, 10));
                assert!(encode_format.matches(image::guess_format(&processed.bytes).unwrap()));
            }
        }
    }

    #[test]
    fn skip_reencode_keeps_the_bytes_only_when_nothing_changes() {
        let picture = DynamicImage::ImageRgb8(crate::gallery::draw("keep", 40, 30));
        let body = encoded_as(&picture, image::ImageFormat::Png);
        let keep = ImageSettings {
            skip_reencode: true,
            encode_format: EncodeFormat::Png,
            ..settings(ResizeMode::No, 64)
        };
        assert_eq!(process(&body, &keep).unwrap().bytes, body);
        let resized = ImageSettings {
            resize_mode: ResizeMode::KeepRatio,
            ..keep.clone()
        };
        assert_ne!(process(&body, &resized).unwrap().bytes, body);
        let other_format = ImageSettings {
            encode_format: EncodeFormat::Jpg,
            ..keep
        };
        assert_ne!(process(&body, &other_format).unwrap().bytes, body);
    }

    #[test]
    fn size_and_ratio_limits_refuse_before_decoding() {
        let picture = DynamicImage::ImageRgb8(crate::gallery::draw("limits", 90, 30));
        let body = encoded_as(&picture, image::ImageFormat::Png);
        let (width, height) = (90, 30);
        let limits = [
            (
                ImageSettings {
                    min_image_size: 31,
                    ..settings(ResizeMode::No, 64)
                },
                ImageError::TooSmall { width, height },
            ),
            (
                ImageSettings {
                    max_aspect_ratio: 2.9,
                    ..settings(ResizeMode::No, 64)
                },
                ImageError::AspectRatio { width, height },
            ),
            (
                ImageSettings {
                    max_image_area: 2699,
                    ..settings(ResizeMode::No, 64)
                },
                ImageError::AreaTooLarge { width, height },
            ),
        ];
        for (limited, refusal) in limits {
            assert_eq!(process(&body, &limited).unwrap_err(), refusal);
        }
        let garbage = process(
            b"neither a picture nor anything else",
            &settings(ResizeMode::No, 64),
        );
        assert!(
            matches!(garbage, Err(ImageError::UnknownFormat)),
            "{garbage:?}"
        );
    }

    #[test]
    fn a_declared_bomb_is_refused_before_decoding() {
        // A PNG header for 50000 x 50000 and no pixel data at all.
        let bomb = crate::gallery::png_declaring(50_000, 50_000);
        let refused = process(&bomb, &ImageSettings::default()).unwrap_err();
        assert_eq!(
            refused,
            ImageError::AreaTooLarge {
                width: 50_000,
                height: 50_000
            }
        );
    }

    #[test]
    fn webp_is_lossy_at_the_quality_and_lossless_above_100() {
        let picture = DynamicImage::ImageRgb8(crate::gallery::draw("webp", 64, 48));
        let body = encoded_as(&picture, image::ImageFormat::Png);
        let encoded = |quality: u8| {
            let settings = ImageSettings {
                encode_format: EncodeFormat::Webp,
                encode_quality: quality,
                ..settings(ResizeMode::No, 64)
            };
            process(&body, &settings).unwrap().bytes
        };
        let (low, high, lossless) = (encoded(10), encoded(95), encoded(101));
        // RIFF....WEBP then the first chunk: VP8 (lossy) or VP8L (lossless).
        assert_eq!(&low[12..16], b"VP8 ");
        assert_eq!(&high[12..16], b"VP8 ");
        assert_eq!(&lossless[12..16], b"VP8L");
        assert!(low.len() < high.len());
        let decoded = image::load_from_memory(&lossless).unwrap().into_rgb8();
        assert_eq!(decoded, picture.into_rgb8());
    }

    #[test]
    fn boxes_are_blurred_after_resizing_and_before_the_border() {
        // A checkerboard 80 x 40: border mode keeps it 80 x 40 in an 80 x 80
        // square, the image from row 20 to 60.
        let checkerboard = image::RgbImage::from_fn(80, 40, |x, y| {
            let value = if (x + y) % 2 == 0 { 0 } else { 255 };
            image::Rgb([value, value, value])
        });
        let body = encoded_as(
            &DynamicImage::ImageRgb8(checkerboard),
            image::ImageFormat::Png,
        );
        let png = ImageSettings {
            encode_format: EncodeFormat::Png,
            ..settings(ResizeMode::Border, 80)
        };
        let plain = process(&body, &png).unwrap();
        let blurred = process_blurring(&body, &png, &[[0.0, 0.0, 0.5, 1.0]]).unwrap();
        let read = |bytes: &[u8]| image::load_from_memory(bytes).unwrap().into_rgb8();
        let (plain, blurred) = (read(&plain.bytes), read(&blurred.bytes));
        // Inside the box (its left half), grey; the right half and the white
        // border as they were.
        let middle = blurred.get_pixel(10, 40)[0];
        assert!((90..=170).contains(&middle), "{middle}");
        for x in 60..80 {
            assert_eq!(blurred.get_pixel(x, 40), plain.get_pixel(x, 40));
        }
        for x in 0..80 {
            assert_eq!(blurred.get_pixel(x, 5), &image::Rgb([255, 255, 255]));
        }
        // skip_reencode never drops the blur.
        let keep = ImageSettings {
            skip_reencode: true,
            resize_mode: ResizeMode::No,
            ..png
        };
        let kept = process_blurring(&body, &keep, &[[0.0, 0.0, 0.5, 1.0]]).unwrap();
        assert_ne!(kept.bytes, body);
    }
}
