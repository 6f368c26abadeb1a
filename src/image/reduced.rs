//! JPEGs decoded at a reduced scale, for images that are shrunk anyway:
//! libjpeg-turbo (MozJPEG's copy of it, through the `mozjpeg` crate) computes
//! an eighth, a quarter or a half of each side straight from the DCT
//! coefficients, so most of the inverse transform, the chroma upsampling and
//! the colour conversion of the full-size image never run. It runs on the
//! calling thread (no helper threads, unlike `jpeg-decoder`'s reduced
//! decode). Its SIMD code is assembled with nasm when grab is built (`./test`
//! and CI install it); a build without nasm still works, at about 10% more
//! CPU per image.
//!
//! Anything libjpeg refuses or even warns about (CMYK, arithmetic coding, data
//! it would patch over with grey) gives `None`, and the caller decodes the
//! whole image as before: a corrupt image fails as it always did.

use std::os::raw::c_int;
use std::panic::{self, AssertUnwindSafe};

use super::jpeg::strict_errors;
use image::metadata::Orientation;

/// Reductions libjpeg may decode to, as numerators over 8, most reduced first:
/// an eighth (each block's DC coefficient, the mean of its 8x8 pixels: an
/// exact area average, with no inverse transform to run), a quarter, then a
/// half when libjpeg-turbo runs its SIMD code (built with nasm, on a CPU that
/// has it). CPU per image of a whole `bench/dataset.sh 1000 0` run (download,
/// decode, resize, encode, shards), same rounds: a quarter alone, without SIMD
/// 2.67 - 2.69 ms, with SIMD 2.39 - 2.43 ms; a quarter or a half with SIMD
/// 2.10 - 2.12 ms. Without SIMD a half costs more than zune-jpeg's full-scale
/// decode (2.57 - 2.95 against 2.36 - 2.61 ms), so such a build keeps to a
/// quarter. The eighth, on the 1500 - 2600 px set (`IMAGES=large`), cut CPU per
/// image by about 12% (10.2 - 10.7 ms to 9.1 - 9.2 ms, a busy machine), the
/// quarter's 2x2 inverse transform having been 13% of all CPU; its output stays
/// as close to the whole decode's as the quarter's (mean 0.45 - 0.57 levels).
pub fn reductions() -> &'static [u8] {
    if simd() { &[1, 2, 4] } else { &[1, 2] }
}

/// Whether libjpeg-turbo converts colours with SIMD code here: built with
/// it (nasm was there at build time), and the CPU has it (libjpeg-turbo asks).
fn simd() -> bool {
    // Defined by libjpeg-turbo's jsimd.c, or by jsimd_none.c (always 0) in a
    // build without SIMD: every build of mozjpeg-sys has it.
    unsafe extern "C" {
        fn jsimd_can_ycc_rgb() -> c_int;
    }
    static SIMD: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    // SAFETY: takes nothing, reads the CPU's features once, returns a flag.
    *SIMD.get_or_init(|| unsafe { jsimd_can_ycc_rgb() } != 0)
}

/// The numerator over 8 of the most reduced decode whose sides still cover the
/// `target` size (so what is left is a downscale, never an enlargement), or 8
/// for a full-scale decode. Sides are those stored in the file.
pub fn numerator_for(width: u32, height: u32, target: (u32, u32)) -> u8 {
    numerator_among(reductions(), width, height, target)
}

fn numerator_among(numerators: &[u8], width: u32, height: u32, target: (u32, u32)) -> u8 {
    let covers = |side: u32, wanted: u32, numerator: u8| {
        u64::from(side) * u64::from(numerator) >= u64::from(wanted) * 8
    };
    numerators
        .iter()
        .copied()
        .find(|&numerator| {
            covers(width, target.0, numerator) && covers(height, target.1, numerator)
        })
        .unwrap_or(8)
}

/// A reduced decode.
pub struct Reduced {
    pub pixels: image::RgbImage,
    /// How much of `pixels` the picture covers, from the top-left corner:
    /// libjpeg rounds a reduced side up, so its last column and row can stand
    /// for less source than the others. Resizing only this region keeps the
    /// scale exact (resizing the whole buffer moved edges by up to a pixel).
    pub covered: (f64, f64),
}

/// Decodes `body` at `numerator`/8 of each side, or `None` when libjpeg refuses
/// it, warns about it, or reads other dimensions than `declared` (those of the
/// header check, which already refused an image too large).
pub fn decode(body: &[u8], numerator: u8, declared: (u32, u32)) -> Option<Reduced> {
    // libjpeg reports errors by calling back, and the callbacks below unwind
    // out of it (the `mozjpeg` crate's way): caught here, they mean `None`.
    panic::catch_unwind(AssertUnwindSafe(|| {
        decode_unwinding(body, numerator, declared)
    }))
    .ok()
    .flatten()
}

fn decode_unwinding(body: &[u8], numerator: u8, declared: (u32, u32)) -> Option<Reduced> {
    let mut decompress = mozjpeg::Decompress::with_err(strict_errors())
        .from_mem(body)
        .ok()?;
    if (decompress.width(), decompress.height()) != (declared.0 as usize, declared.1 as usize) {
        return None;
    }
    decompress.scale(numerator);
    let mut started = decompress.rgb().ok()?;
    let (width, height) = (
        u32::try_from(started.width()).ok()?,
        u32::try_from(started.height()).ok()?,
    );
    // Into the thread's kept buffer: zeroed only where it grows.
    let mut pixels = super::resize::spare_pixels(width as usize * height as usize * 3);
    started.read_scanlines_into(&mut pixels[..]).ok()?;
    started.finish().ok()?;
    let scale = f64::from(numerator) / 8.0;
    Some(Reduced {
        pixels: image::RgbImage::from_raw(width, height, pixels)?,
        covered: (f64::from(declared.0) * scale, f64::from(declared.1) * scale),
    })
}

/// Where the region `covered` (anchored at the top-left of the stored image,
/// `size` the stored image's size) lies once `orientation` is applied, as
/// `(left, top, width, height)`.
pub fn oriented_region(
    size: (u32, u32),
    covered: (f64, f64),
    orientation: Orientation,
) -> (f64, f64, f64, f64) {
    use Orientation::*;
    let (width, height) = super::resize::turned(size, orientation);
    let (region_width, region_height) = super::resize::turned(covered, orientation);
    // The corner where the stored image's top-left corner lands.
    let (right, bottom) = match orientation {
        NoTransforms | Rotate90FlipH => (false, false),
        Rotate90 | FlipHorizontal => (true, false),
        Rotate180 | Rotate270FlipH => (true, true),
        Rotate270 | FlipVertical => (false, true),
    };
    let left = if right {
        f64::from(width) - region_width
    } else {
        0.0
    };
    let top = if bottom {
        f64::from(height) - region_height
    } else {
        0.0
    };
    (left, top, region_width, region_height)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The corners in [`oriented_region`] are where the image crate's own
    /// `apply_orientation` moves the top-left pixel.
    #[test]
    fn the_region_follows_the_orientation() {
        use Orientation::*;
        for orientation in [
            NoTransforms,
            Rotate90,
            Rotate180,
            Rotate270,
            FlipHorizontal,
            FlipVertical,
            Rotate90FlipH,
            Rotate270FlipH,
        ] {
            let mut marked = image::GrayImage::new(3, 2);
            marked.put_pixel(0, 0, image::Luma([1]));
            let mut oriented = image::DynamicImage::ImageLuma8(marked);
            oriented.apply_orientation(orientation);
            let oriented = oriented.into_luma8();
            let (x, y, _) = oriented
                .enumerate_pixels()
                .find(|(_, _, pixel)| pixel[0] == 1)
                .unwrap();
            let (left, top, width, height) = oriented_region((3, 2), (1.0, 1.0), orientation);
            assert_eq!((width, height), (1.0, 1.0));
            assert_eq!((left, top), (f64::from(x), f64::from(y)), "{orientation:?}");
        }
        // A partial last column of a 3 x 2 decode, turned a quarter clockwise.
        assert_eq!(
            oriented_region((3, 2), (2.5, 2.0), Rotate90),
            (0.0, 0.0, 2.0, 2.5)
        );
        assert_eq!(
            oriented_region((3, 2), (2.5, 2.0), Rotate180),
            (0.5, 0.0, 2.5, 2.0)
        );
    }

    #[test]
    fn a_reduction_is_chosen_only_when_it_keeps_enough_pixels() {
        // (width, height, target): the numerator (of 8) chosen where a
        // quarter and a half are offered, and where only a quarter is.
        let choices = [
            // 1000 x 800 to 256 x 205: a quarter (250 x 200) is too small in
            // both sides, a half (500 x 400) is enough, where a half is offered.
            ((1000, 800, (256, 205)), 4, Some(8)),
            // 1100 x 880 to 256 x 205: a quarter is 275 x 220, enough.
            ((1100, 880, (256, 205)), 2, Some(2)),
            // Exactly enough counts: 1024 / 4 = 256, 512 / 2 = 256.
            ((1024, 1024, (256, 256)), 2, None),
            ((1023, 1024, (256, 256)), 4, None),
            ((1024, 1023, (256, 256)), 4, None),
            ((512, 512, (256, 256)), 4, None),
            ((511, 512, (256, 256)), 8, None),
            // One side too short for a quarter, or for a half.
            ((1100, 4000, (256, 1000)), 2, None),
            ((1100, 4000, (256, 1001)), 4, None),
            ((1100, 4000, (551, 1000)), 8, None),
            // Enlarging: never reduced.
            ((100, 100, (256, 256)), 8, None),
        ];
        for ((width, height, target), both, quarter_only) in choices {
            let case = format!("{width} x {height} to {target:?}");
            let among = |numerators: &[u8]| numerator_among(numerators, width, height, target);
            assert_eq!(among(&[2, 4]), both, "{case}");
            if let Some(quarter_only) = quarter_only {
                assert_eq!(among(&[2]), quarter_only, "{case}");
            }
        }
    }
}
