//! Image filter kernels that reproduce Python Pillow's results pixel for pixel:
//! `ImageFilter.BLUR`, `ImageFilter.SHARPEN`, `ImageFilter.CONTOUR`,
//! `convert("L")` and `ImageEnhance.Contrast(image).enhance(factor)`, on an
//! interleaved 8-bit buffer ([`Pixels`]) with 1 (L), 2 (LA), 3 (RGB) or 4 (RGBA)
//! channels.
//!
//! Pillow convolves in `float` and then adds 0.5, clamps to 0..=255 and
//! truncates. Every weight of these three kernels divided by its scale is a
//! power of two, so that float sum is exact and each filter has an exact integer
//! form, which is what this module computes (checked against Pillow 9.4 and 13.0):
//!
//! - BLUR (5x5, ones on the outer ring, scale 16): `(ring + 8) >> 4`.
//! - SHARPEN (3x3, -2 around 32, scale 16): `(17 * centre - box3x3 + 4) >> 3`,
//!   clamped to 0..=255. The shift is a floor, which equals Pillow's
//!   "add 0.5 then truncate" wherever the result survives the clamp, because
//!   anything below zero becomes 0 either way.
//! - CONTOUR (3x3, -1 around 8, scale 1, offset 255):
//!   `9 * centre - box3x3 + 255`, clamped to 0..=255.
//!
//! Like Pillow, the filters leave the outer 1 (3x3) or 2 (5x5) pixels of each
//! side unchanged, return an unchanged copy of an image smaller than the kernel,
//! and filter every channel, alpha included.
//!
//! [`grayscale`] is Pillow's ITU-R 601-2 luma in 16-bit fixed point,
//! `(19595 R + 38470 G + 7471 B + 0x8000) >> 16`; for LA it keeps L.
//! [`contrast`] blends every colour channel away from the gray mean `m`
//! (the mean of [`grayscale`], rounded half up) exactly as Pillow's
//! `Image.blend` does in C: `m + factor * (p - m)` in `f32`, clamped to 0..=255
//! and truncated, never rounded; alpha stays as it is.
//!
//! Speed comes from row-wise passes: the vertical part of each kernel is summed
//! into a small `u16` row buffer, the horizontal part reads that buffer at fixed
//! channel offsets, and every inner loop runs over equal-length slices with
//! 16-bit arithmetic so the compiler vectorises it without bounds checks.
//! Each public kernel is compiled twice, for the baseline target and for AVX2,
//! and picks the AVX2 copy at run time when the CPU has it (see
//! `dispatch_simd!`): twice the vector width, and the only way the stride-3
//! RGB loops of [`grayscale`] and [`contrast`] vectorise at all.
//!
//! Every kernel has an `_into` twin that writes into a buffer handed in, so a
//! pipeline can pass two image buffers back and forth instead of allocating a
//! fresh one per filter: at a few megabytes each, fresh buffers come from the
//! kernel page by page, and those page faults cost more than a filter.

/// Defines a public function whose body is compiled twice: as is, and with
/// AVX2 enabled, so the auto-vectoriser can use 256-bit registers without the
/// crate being built for a newer CPU than the baseline. The AVX2 copy runs
/// when the CPU reports AVX2 (std caches the check). Everything the body calls
/// in its hot loops is `#[inline(always)]` so that it lands in the AVX2 copy
/// too.
macro_rules! dispatch_simd {
    (
        $(#[$attribute:meta])*
        pub fn $name:ident($($argument:ident: $type:ty),* $(,)?) -> $output:ty $body:block
    ) => {
        $(#[$attribute])*
        pub fn $name($($argument: $type),*) -> $output {
            #[inline(always)]
            fn portable($($argument: $type),*) -> $output $body

            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                fn avx2($($argument: $type),*) -> $output {
                    portable($($argument),*)
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: a `target_feature` function may only run on a
                    // CPU with that feature, and AVX2 was detected just now.
                    #[allow(unused_unsafe)] // Safe when built with AVX2 on.
                    let output = unsafe { avx2($($argument),*) };
                    return output;
                }
            }
            portable($($argument),*)
        }
    };
}

/// An interleaved 8-bit image: row after row, each pixel's `channels` bytes
/// side by side (L, LA, RGB or RGBA), with no padding between rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pixels {
    pub width: u32,
    pub height: u32,
    pub channels: u8,
    pub data: Vec<u8>,
}

impl Pixels {
    /// Wraps `data` as a `width` x `height` image of `channels` bytes per pixel.
    ///
    /// # Panics
    /// If `channels` is not 1 to 4 or `data` has not exactly
    /// `width * height * channels` bytes.
    pub fn new(width: u32, height: u32, channels: u8, data: Vec<u8>) -> Pixels {
        let pixels = Pixels {
            width,
            height,
            channels,
            data,
        };
        pixels.check();
        pixels
    }

    /// Bytes in one row.
    pub fn stride(&self) -> usize {
        self.width as usize * self.channels as usize
    }

    /// The public fields can be set to anything, so every kernel checks them once
    /// up front instead of failing somewhere in the middle of a row.
    fn check(&self) {
        assert!(
            (1..=4).contains(&self.channels),
            "pixels have {} channels; only 1 to 4 are supported",
            self.channels
        );
        assert_eq!(
            self.data.len(),
            self.stride() * self.height as usize,
            "pixel data does not match {}x{} with {} channels",
            self.width,
            self.height,
            self.channels
        );
    }

    /// A new image of the same size and channels with other data.
    fn with_data(&self, data: Vec<u8>) -> Pixels {
        Pixels {
            width: self.width,
            height: self.height,
            channels: self.channels,
            data,
        }
    }
}

/// Pillow's `ImageFilter.BLUR`: the mean of the 16 pixels on the ring at
/// distance 2, rounded half up; the 2-pixel border is copied.
pub fn blur(image: &Pixels) -> Pixels {
    blur_into(image, Vec::new())
}

dispatch_simd! {
    /// [`blur`], written into `buffer` (its contents are discarded, its
    /// allocation reused).
    pub fn blur_into(image: &Pixels, buffer: Vec<u8>) -> Pixels {
        image.check();
        let (width, height) = (image.width as usize, image.height as usize);
        if width < 5 || height < 5 {
            return image.with_data(copy_into(&image.data, buffer));
        }
        let stride = image.stride();
        let step = image.channels as usize;
        let rows: Vec<&[u8]> = image.data.chunks_exact(stride).collect();
        let mut output = empty(buffer, image.data.len());
        output.extend_from_slice(rows[0]);
        output.extend_from_slice(rows[1]);

        // Rows y-2 and y+2 count in all five columns, rows y-1..=y+1 only in
        // columns x-2 and x+2. So with `outer` = rows y-2 + y+2 and `full` = all
        // five rows, the ring is full[x-2] + outer[x-1] + outer[x] + outer[x+1] +
        // full[x+2]: five row-buffer reads per value instead of sixteen pixels.
        let mut outer = vec![0u16; stride];
        let mut full = vec![0u16; stride];
        let mut line = vec![0u8; stride];
        let inner = stride - 4 * step;
        for y in 2..height - 2 {
            let (up2, up1, centre, down1, down2) =
                (rows[y - 2], rows[y - 1], rows[y], rows[y + 1], rows[y + 2]);
            let sums = outer.iter_mut().zip(full.iter_mut());
            for ((((((outer, full), a), b), c), d), e) in
                sums.zip(up2).zip(down2).zip(up1).zip(centre).zip(down1)
            {
                let ends = u16::from(*a) + u16::from(*b);
                *outer = ends;
                *full = ends + u16::from(*c) + u16::from(*d) + u16::from(*e);
            }

            // Slicing every neighbour column to the same length up front is what
            // lets the loop below run without bounds checks and vectorise.
            let far_left = &full[..inner];
            let near_left = &outer[step..step + inner];
            let straight = &outer[2 * step..2 * step + inner];
            let near_right = &outer[3 * step..3 * step + inner];
            let far_right = &full[4 * step..4 * step + inner];
            let destination = &mut line[2 * step..2 * step + inner];
            for i in 0..inner {
                // At most 16 * 255 + 8, so u16 cannot overflow.
                let ring =
                    far_left[i] + near_left[i] + straight[i] + near_right[i] + far_right[i];
                destination[i] = ((ring + 8) >> 4) as u8;
            }
            line[..2 * step].copy_from_slice(&centre[..2 * step]);
            line[stride - 2 * step..].copy_from_slice(&centre[stride - 2 * step..]);
            output.extend_from_slice(&line);
        }

        output.extend_from_slice(rows[height - 2]);
        output.extend_from_slice(rows[height - 1]);
        image.with_data(output)
    }
}

/// Pillow's `ImageFilter.SHARPEN`: `(32 * centre - 2 * neighbours) / 16`,
/// rounded half up and clamped; the 1-pixel border is copied.
pub fn sharpen(image: &Pixels) -> Pixels {
    sharpen_into(image, Vec::new())
}

dispatch_simd! {
    /// [`sharpen`], written into `buffer` (its contents are discarded, its
    /// allocation reused).
    pub fn sharpen_into(image: &Pixels, buffer: Vec<u8>) -> Pixels {
        // 32c - 2n over 16, plus 0.5, floored, is floor((16c - n + 4) / 8) with
        // n = box - c; the arithmetic shift is that floor. The value before the
        // shift lies in -2036..=4084, so i16 lanes hold it.
        convolve3x3(image, buffer, |centre, box_sum| {
            let value = (17 * i16::from(centre) - box_sum as i16 + 4) >> 3;
            value.clamp(0, 255) as u8
        })
    }
}

/// Pillow's `ImageFilter.CONTOUR`: `8 * centre - neighbours + 255`, clamped;
/// the 1-pixel border is copied. Flat areas become white, edges dark.
pub fn contour(image: &Pixels) -> Pixels {
    contour_into(image, Vec::new())
}

dispatch_simd! {
    /// [`contour`], written into `buffer` (its contents are discarded, its
    /// allocation reused).
    pub fn contour_into(image: &Pixels, buffer: Vec<u8>) -> Pixels {
        // Integer weights and offset: Pillow's +0.5 and truncation change
        // nothing. The value lies in -1785..=2295, so i16 lanes hold it.
        convolve3x3(image, buffer, |centre, box_sum| {
            let value = 9 * i16::from(centre) - box_sum as i16 + 255;
            value.clamp(0, 255) as u8
        })
    }
}

/// The shared 3x3 pass: `finish` turns a channel value and the sum of the 3x3
/// box around it (centre included, at most 9 * 255) into the output value.
#[inline(always)]
fn convolve3x3(image: &Pixels, buffer: Vec<u8>, finish: impl Fn(u8, u16) -> u8) -> Pixels {
    image.check();
    let (width, height) = (image.width as usize, image.height as usize);
    if width < 3 || height < 3 {
        return image.with_data(copy_into(&image.data, buffer));
    }
    let stride = image.stride();
    let step = image.channels as usize;
    let rows: Vec<&[u8]> = image.data.chunks_exact(stride).collect();
    let mut output = empty(buffer, image.data.len());
    output.extend_from_slice(rows[0]);

    let mut columns = vec![0u16; stride];
    let mut line = vec![0u8; stride];
    let inner = stride - 2 * step;
    for y in 1..height - 1 {
        let (up, centre, down) = (rows[y - 1], rows[y], rows[y + 1]);
        for (((sum, a), b), c) in columns.iter_mut().zip(up).zip(centre).zip(down) {
            *sum = u16::from(*a) + u16::from(*b) + u16::from(*c);
        }

        let left = &columns[..inner];
        let middle = &columns[step..step + inner];
        let right = &columns[2 * step..2 * step + inner];
        let centres = &centre[step..step + inner];
        let destination = &mut line[step..step + inner];
        for i in 0..inner {
            destination[i] = finish(centres[i], left[i] + middle[i] + right[i]);
        }
        line[..step].copy_from_slice(&centre[..step]);
        line[stride - step..].copy_from_slice(&centre[stride - step..]);
        output.extend_from_slice(&line);
    }

    output.extend_from_slice(rows[height - 1]);
    image.with_data(output)
}

/// Pillow's `convert("L")`: one channel of ITU-R 601-2 luma for RGB and RGBA
/// (alpha ignored), the L channel of LA, and a copy of an L image.
pub fn grayscale(image: &Pixels) -> Pixels {
    grayscale_into(image, Vec::new())
}

dispatch_simd! {
    /// [`grayscale`], written into `buffer` (its contents are discarded, its
    /// allocation reused).
    pub fn grayscale_into(image: &Pixels, buffer: Vec<u8>) -> Pixels {
        image.check();
        let mut data = empty(buffer, image.data.len() / usize::from(image.channels));
        match image.channels {
            1 => data.extend_from_slice(&image.data),
            2 => data.extend(image.data.as_chunks::<2>().0.iter().map(|&[l, _]| l)),
            3 => data.extend(image.data.as_chunks::<3>().0.iter().map(|&[r, g, b]| luma(r, g, b))),
            _ => {
                let pixels = image.data.as_chunks::<4>().0.iter();
                data.extend(pixels.map(|&[r, g, b, _]| luma(r, g, b)));
            }
        }
        Pixels {
            width: image.width,
            height: image.height,
            channels: 1,
            data,
        }
    }
}

/// Pillow's fixed-point luma; the weights add up to 65536, so white stays 255.
#[inline(always)]
fn luma(red: u8, green: u8, blue: u8) -> u8 {
    ((19595 * u32::from(red) + 38470 * u32::from(green) + 7471 * u32::from(blue) + 0x8000) >> 16)
        as u8
}

/// Pillow's `ImageEnhance.Contrast(image).enhance(factor)`: every colour
/// channel moves `factor` times its distance away from the rounded gray mean;
/// alpha is kept. 0 gives flat gray, 1 the image itself.
pub fn contrast(image: &Pixels, factor: f32) -> Pixels {
    contrast_into(image, factor, Vec::new())
}

dispatch_simd! {
    /// [`contrast`], written into `buffer` (its contents are discarded, its
    /// allocation reused).
    pub fn contrast_into(image: &Pixels, factor: f32, buffer: Vec<u8>) -> Pixels {
        image.check();
        let mean = f32::from(gray_mean(image));
        let mut data = empty(buffer, image.data.len());
        // ImagingBlend: in1 + alpha * (in2 - in1) in f32, with in1 the flat
        // mean image, clipped to 0..=255 and truncated by the cast. The same
        // f32 operations on 8 lanes at a time give the same bits as one at a
        // time (Rust never fuses the multiply and add), and run several times
        // faster than a 256-entry table, whose lookups do not vectorise.
        let blend = |value: u8| (mean + factor * (f32::from(value) - mean)).clamp(0.0, 255.0);
        if factor.is_finite() {
            data.extend(image.data.iter().map(|&value| {
                // SAFETY: with a finite factor the blend is a number, clamped
                // to 0..=255, so it fits i32. Unlike `as`, this truncation
                // needs no saturation checks, so it vectorises.
                unsafe { blend(value).to_int_unchecked::<i32>() as u8 }
            }));
        } else {
            // Infinity times zero is NaN, which only `as` takes safely (as 0).
            data.extend(image.data.iter().map(|&value| blend(value) as u8));
        }
        // Pillow's degenerate image carries the original alpha, and blending a
        // value with itself gives it back, so alpha is copied back afterwards:
        // one strided pass is cheaper than keeping alpha out of the mapping.
        match image.channels {
            2 => restore_last_channel::<2>(&mut data, &image.data),
            4 => restore_last_channel::<4>(&mut data, &image.data),
            _ => {}
        }
        image.with_data(data)
    }
}

/// Copies the last channel of every `N`-channel pixel of `source` into `target`.
#[inline(always)]
fn restore_last_channel<const N: usize>(target: &mut [u8], source: &[u8]) {
    // As a masked blend of whole pixels, which vectorises; a strided store of
    // single bytes does not.
    let last: [u8; N] = std::array::from_fn(|index| if index == N - 1 { 0xFF } else { 0 });
    let pixels = target.as_chunks_mut::<N>().0.iter_mut();
    for (pixel, original) in pixels.zip(source.as_chunks::<N>().0) {
        for ((value, original), mask) in pixel.iter_mut().zip(original).zip(last) {
            *value = (*value & !mask) | (original & mask);
        }
    }
}

/// `buffer` emptied, with room for `length` bytes: an output that reuses the
/// allocation of an image no longer needed.
#[inline(always)]
fn empty(mut buffer: Vec<u8>, length: usize) -> Vec<u8> {
    buffer.clear();
    buffer.reserve(length);
    buffer
}

/// `source` copied into `buffer`.
#[inline(always)]
fn copy_into(source: &[u8], buffer: Vec<u8>) -> Vec<u8> {
    let mut output = empty(buffer, source.len());
    output.extend_from_slice(source);
    output
}

/// The mean of [`grayscale`] rounded half up, as Pillow's
/// `int(ImageStat.Stat(image.convert("L")).mean[0] + 0.5)`, in exact integers:
/// floor((sum + count / 2) / count) = (2 * sum + count) / (2 * count).
#[inline(always)]
fn gray_mean(image: &Pixels) -> u8 {
    let count = image.width as u64 * image.height as u64;
    if count == 0 {
        return 0;
    }
    let sum: u64 = match image.channels {
        1 => sum_in_blocks(&image.data, |&l| l),
        2 => sum_in_blocks(image.data.as_chunks::<2>().0, |&[l, _]| l),
        3 => sum_in_blocks(image.data.as_chunks::<3>().0, |&[r, g, b]| luma(r, g, b)),
        _ => sum_in_blocks(image.data.as_chunks::<4>().0, |&[r, g, b, _]| luma(r, g, b)),
    };
    ((2 * sum + count) / (2 * count)) as u8
}

/// Adds up `value` of every item, in u32 blocks (at most 255 * 65536 each, so
/// no overflow) because 32-bit lanes vectorise twice as wide as 64-bit ones.
#[inline(always)]
fn sum_in_blocks<T>(items: &[T], value: impl Fn(&T) -> u8) -> u64 {
    items
        .chunks(1 << 16)
        .map(|block| u64::from(block.iter().map(|item| u32::from(value(item))).sum::<u32>()))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gray(width: u32, height: u32, data: &[u8]) -> Pixels {
        Pixels::new(width, height, 1, data.to_vec())
    }

    #[test]
    fn sharpen_copies_the_border_and_rounds_half_up() {
        // Centre 1 with neighbours summing to 12: (32 - 24) / 16 = 0.5 -> 1.
        #[rustfmt::skip]
        let image = gray(3, 3, &[
            3, 0, 3,
            0, 1, 0,
            3, 0, 3,
        ]);
        let result = sharpen(&image);
        #[rustfmt::skip]
        assert_eq!(result.data, [
            3, 0, 3,
            0, 1, 0,
            3, 0, 3,
        ]);
        // Neighbours summing to 13: (32 - 26) / 16 = 0.375 -> 0.
        let image = gray(3, 3, &[3, 1, 3, 0, 1, 0, 3, 0, 3]);
        assert_eq!(sharpen(&image).data[4], 0);
    }

    #[test]
    fn sharpen_clamps_negative_and_large_sums() {
        // Dark centre in a bright field: (0 - 16 * 200) / 16 = -200 -> 0;
        // bright centre in a dark field: 32 * 200 / 16 = 400 -> 255.
        let dark = gray(3, 3, &[200, 200, 200, 200, 0, 200, 200, 200, 200]);
        assert_eq!(sharpen(&dark).data[4], 0);
        let bright = gray(3, 3, &[0, 0, 0, 0, 200, 0, 0, 0, 0]);
        assert_eq!(sharpen(&bright).data[4], 255);
        // (0 - 2 * 3) / 16 = -0.375, + 0.5 = 0.125 truncates to 0.
        let slightly_negative = gray(3, 3, &[1, 1, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(sharpen(&slightly_negative).data[4], 0);
    }

    #[test]
    fn contour_offsets_by_255_and_clamps() {
        let flat = gray(3, 3, &[7; 9]);
        assert_eq!(contour(&flat).data[4], 255);
        // 8 * 10 - 8 * 40 + 255 = 15.
        let darker_centre = gray(3, 3, &[40, 40, 40, 40, 10, 40, 40, 40, 40]);
        assert_eq!(
            contour(&darker_centre).data,
            [40, 40, 40, 40, 15, 40, 40, 40, 40]
        );
        let edge = gray(3, 3, &[0, 0, 0, 255, 0, 255, 255, 255, 255]);
        assert_eq!(contour(&edge).data[4], 0);
    }

    #[test]
    fn blur_averages_the_ring_and_copies_two_pixels_of_border() {
        // 5x5 with the ring summing to 16 * 3 + 8 (= 3.5 each, rounds to 4)
        // and a centre that must be ignored.
        let mut data = vec![3u8; 25];
        data[12] = 250;
        for index in [0, 1, 2, 3, 4, 5, 9, 10] {
            data[index] = 4;
        }
        let image = gray(5, 5, &data);
        let result = blur(&image);
        let mut expected = data.clone();
        expected[12] = 4;
        assert_eq!(result.data, expected);
        // One less in the ring: 55 / 16 = 3.4375 -> 3.
        data[0] = 3;
        assert_eq!(blur(&gray(5, 5, &data)).data[12], 3);
    }

    #[test]
    fn images_smaller_than_the_kernel_are_copied() {
        let small = gray(4, 9, &(0..36).collect::<Vec<u8>>());
        assert_eq!(blur(&small), small);
        let thin = gray(2, 5, &[9, 1, 9, 1, 9, 1, 9, 1, 9, 1]);
        assert_eq!(sharpen(&thin), thin);
        assert_eq!(contour(&thin), thin);
    }

    #[test]
    fn filters_treat_every_channel_alike_alpha_included() {
        // RGBA 3x3: channel k of every pixel is k * 50, except the centre's
        // alpha, so only the alpha of the centre changes under sharpen.
        let mut data: Vec<u8> = (0..9).flat_map(|_| [0, 50, 100, 150]).collect();
        data[4 * 4 + 3] = 110;
        let image = Pixels::new(3, 3, 4, data.clone());
        let result = sharpen(&image);
        let mut expected = data;
        // (32 * 110 - 16 * 150) / 16 = 70.
        expected[4 * 4 + 3] = 70;
        assert_eq!(result.data, expected);
    }

    #[test]
    fn grayscale_uses_pillows_fixed_point_weights() {
        let image = Pixels::new(
            5,
            1,
            3,
            vec![255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255, 10, 20, 30],
        );
        let result = grayscale(&image);
        assert_eq!(result.channels, 1);
        // 19595 * 255 + 32768 = 5029493 -> 76; 38470 * 255 -> 150;
        // 7471 * 255 -> 29; white stays 255; 10, 20, 30 -> 18.
        assert_eq!(result.data, [76, 150, 29, 255, 18]);
        let rgba = Pixels::new(1, 1, 4, vec![10, 20, 30, 0]);
        assert_eq!(grayscale(&rgba).data, [18]);
        let la = Pixels::new(2, 1, 2, vec![7, 1, 8, 2]);
        assert_eq!(grayscale(&la).data, [7, 8]);
    }

    #[test]
    fn contrast_rounds_the_mean_half_up_and_truncates_the_blend() {
        // Mean 0.5 rounds to 1; 1 + 1.5 * (0 - 1) = -0.5 clamps to 0.
        let image = gray(2, 1, &[0, 1]);
        assert_eq!(contrast(&image, 1.5).data, [0, 1]);
        // Mean 100: 101 -> 101.5 -> 101 and 99 -> 98.5 -> 98 (truncated),
        // 250 -> 325 -> 255.
        let image = gray(4, 1, &[101, 99, 250, 0]);
        assert_eq!(gray_mean(&image), 113);
        let image = gray(5, 1, &[101, 99, 100, 100, 100]);
        assert_eq!(contrast(&image, 1.5).data, [101, 98, 100, 100, 100]);
        assert_eq!(contrast(&image, 0.0).data, [100; 5]);
    }

    #[test]
    fn contrast_survives_factors_that_are_not_finite() {
        let image = gray(3, 1, &[0, 100, 200]);
        assert_eq!(contrast(&image, f32::INFINITY).data, [0, 0, 255]);
        assert_eq!(contrast(&image, f32::NAN).data, [0, 0, 0]);
    }

    #[test]
    fn contrast_keeps_alpha() {
        let image = Pixels::new(2, 1, 4, vec![200, 200, 200, 9, 0, 0, 0, 77]);
        // Gray mean 100: 200 -> 250, 0 -> -50 -> 0.
        assert_eq!(contrast(&image, 1.5).data, [250, 250, 250, 9, 0, 0, 0, 77]);
    }

    #[test]
    #[should_panic(expected = "does not match")]
    fn mismatched_data_is_rejected() {
        Pixels::new(2, 2, 3, vec![0; 11]);
    }
}
