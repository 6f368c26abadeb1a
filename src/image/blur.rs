//! Blurring boxes of an image, as img2dataset's `BoundingBoxBlurrer`
//! (blurrer.py, after the ImageNet face-obfuscation code) does it:
//!
//! - each box `[x0, y0, x1, y1]` is relative to the image (0 to 1), turned to
//!   pixels by truncation, grown by a tenth of its larger side on every side,
//!   and clipped to the image (to `side - 1`, the box's end excluded);
//! - the union of the grown boxes is a 0/1 mask;
//! - one Gaussian blur, `sigma = 0.1 x` the largest box side and a kernel of
//!   `max(3, 2 ceil(sigma) + 1)` taps with OpenCV's sigma for that size
//!   (`0.3 ((k - 1) / 2 - 1) + 0.8`, and its fixed taps up to 9), blurs both
//!   the image and the mask, edges reflected as OpenCV's default
//!   (`BORDER_REFLECT_101`);
//! - the result is `image x (1 - mask') + blurred x mask'` in 32-bit floats
//!   on `[0, 1]`, truncated back to bytes: so the blur fades out over about
//!   a kernel's width around each box instead of stopping at its edge.
//!
//! Against OpenCV the values can differ by a unit where its SIMD rounds
//! otherwise; the area, the radius and the feathering are the same. Only the
//! part of the image the blurred mask reaches is computed: a few small faces
//! in a large photo cost little.

use image::RgbImage;

/// A box in coordinates relative to the image: `[x0, y0, x1, y1]`, each in `[0, 1]`.
pub type RelativeBox = [f64; 4];

/// OpenCV's `getGaussianKernel(size, 0)`: fixed taps for sizes up to 9,
/// otherwise sampled with the sigma it derives from the size.
pub fn gaussian_kernel(size: usize) -> Vec<f32> {
    match size {
        1 => vec![1.0],
        3 => vec![0.25, 0.5, 0.25],
        5 => vec![0.0625, 0.25, 0.375, 0.25, 0.0625],
        7 => vec![
            0.03125, 0.109375, 0.21875, 0.28125, 0.21875, 0.109375, 0.03125,
        ],
        9 => vec![
            0.015625, 0.05078125, 0.1171875, 0.19921875, 0.234375, 0.19921875, 0.1171875,
            0.05078125, 0.015625,
        ],
        _ => {
            let sigma = 0.3 * ((size as f64 - 1.0) * 0.5 - 1.0) + 0.8;
            let middle = (size as f64 - 1.0) / 2.0;
            let weights: Vec<f64> = (0..size)
                .map(|index| {
                    let offset = index as f64 - middle;
                    (-offset * offset / (2.0 * sigma * sigma)).exp()
                })
                .collect();
            let sum: f64 = weights.iter().sum();
            weights.iter().map(|weight| (weight / sum) as f32).collect()
        }
    }
}

/// The taps img2dataset's blurrer uses for boxes whose largest side is
/// `max_diagonal` pixels.
pub fn kernel_size(max_diagonal: i64) -> usize {
    let sigma = 0.1 * max_diagonal as f64;
    let size = (2.0 * sigma.ceil() + 1.0).max(3.0) as usize;
    size | 1
}

/// Index `position` reflected into `0..length` as OpenCV's `BORDER_REFLECT_101`
/// (`gfedcb|abcdefgh|gfedcba`).
fn reflect(mut position: i64, length: i64) -> usize {
    if length == 1 {
        return 0;
    }
    let period = 2 * (length - 1);
    position = position.rem_euclid(period);
    if position >= length {
        position = period - position;
    }
    position as usize
}

/// Blurs `boxes` of `image` in place; no boxes, no change.
pub fn blur_boxes(image: &mut RgbImage, boxes: &[RelativeBox]) {
    if boxes.is_empty() {
        return;
    }
    let (width, height) = (i64::from(image.width()), i64::from(image.height()));
    if width == 0 || height == 0 {
        return;
    }
    let mut mask = vec![0f32; (width * height) as usize];
    let mut max_diagonal = 0i64;
    // The union of the mask's rectangles: (left, top, right, bottom), ends excluded.
    let mut covered: Option<(i64, i64, i64, i64)> = None;
    for relative in boxes {
        // Python's int(): truncation toward zero.
        let mut pixels = [
            (relative[0] * width as f64) as i64,
            (relative[1] * height as f64) as i64,
            (relative[2] * width as f64) as i64,
            (relative[3] * height as f64) as i64,
        ];
        let diagonal = (pixels[2] - pixels[0]).max(pixels[3] - pixels[1]);
        max_diagonal = max_diagonal.max(diagonal);
        let grow = 0.1 * diagonal as f64;
        pixels[0] = ((pixels[0] as f64 - grow) as i64).clamp(0, width - 1);
        pixels[1] = ((pixels[1] as f64 - grow) as i64).clamp(0, height - 1);
        pixels[2] = ((pixels[2] as f64 + grow) as i64).clamp(0, width - 1);
        pixels[3] = ((pixels[3] as f64 + grow) as i64).clamp(0, height - 1);
        let [left, top, right, bottom] = pixels;
        if left >= right || top >= bottom {
            continue;
        }
        for y in top..bottom {
            let row = (y * width) as usize;
            mask[row + left as usize..row + right as usize].fill(1.0);
        }
        covered = Some(match covered {
            None => (left, top, right, bottom),
            Some((l, t, r, b)) => (l.min(left), t.min(top), r.max(right), b.max(bottom)),
        });
    }
    // Without any pixel to blur, img2dataset's round trip through floats
    // gives every byte back unchanged.
    let Some((left, top, right, bottom)) = covered else {
        return;
    };
    let size = kernel_size(max_diagonal);
    let kernel = gaussian_kernel(size);
    let radius = (size / 2) as i64;
    // Where the blurred mask is not zero.
    let (area_left, area_top) = ((left - radius).max(0), (top - radius).max(0));
    let (area_right, area_bottom) = ((right + radius).min(width), (bottom + radius).min(height));
    let area_width = (area_right - area_left) as usize;
    let pixel = |x: i64, y: i64| image.get_pixel(x as u32, y as u32).0;
    // Horizontal pass over the rows the vertical pass reads: 3 channels and the mask.
    let rows: Vec<i64> = (area_top - radius..area_bottom + radius).collect();
    let mut horizontal = vec![[0f32; 4]; rows.len() * area_width];
    for (row_index, &y) in rows.iter().enumerate() {
        let y = reflect(y, height) as i64;
        for column in 0..area_width {
            let x = area_left + column as i64;
            let mut sum = [0f32; 4];
            for (tap, weight) in kernel.iter().enumerate() {
                let source_x = reflect(x + tap as i64 - radius, width) as i64;
                let [red, green, blue] = pixel(source_x, y);
                sum[0] += weight * (f32::from(red) / 255.0);
                sum[1] += weight * (f32::from(green) / 255.0);
                sum[2] += weight * (f32::from(blue) / 255.0);
                sum[3] += weight * mask[(y * width + source_x) as usize];
            }
            horizontal[row_index * area_width + column] = sum;
        }
    }
    for y in area_top..area_bottom {
        // Row y's window in `horizontal` starts at row y - radius, index y - area_top.
        let first = (y - area_top) as usize;
        for column in 0..area_width {
            let mut sum = [0f32; 4];
            for (tap, weight) in kernel.iter().enumerate() {
                let value = horizontal[(first + tap) * area_width + column];
                for (total, part) in sum.iter_mut().zip(value) {
                    *total += weight * part;
                }
            }
            let blurred_mask = sum[3];
            if blurred_mask == 0.0 {
                continue;
            }
            let x = area_left + column as i64;
            let original = image.get_pixel_mut(x as u32, y as u32);
            for (byte, blurred) in original.0.iter_mut().zip(sum) {
                let value = f32::from(*byte) / 255.0;
                let mixed = value * (1.0 - blurred_mask) + blurred * blurred_mask;
                *byte = (mixed * 255.0).clamp(0.0, 255.0) as u8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_are_opencvs() {
        assert_eq!(gaussian_kernel(5), [0.0625, 0.25, 0.375, 0.25, 0.0625]);
        // OpenCV's getGaussianKernel(11, 0).
        let eleven = gaussian_kernel(11);
        assert!((eleven[0] - 0.008_812_23).abs() < 1e-6);
        assert!((eleven[5] - 0.200_565_41).abs() < 1e-6);
        assert!((eleven.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert_eq!(kernel_size(0), 3);
        assert_eq!(kernel_size(10), 3);
        assert_eq!(kernel_size(11), 5);
        assert_eq!(kernel_size(100), 21);
    }

    #[test]
    fn reflection_is_border_reflect_101() {
        let reflected: Vec<usize> = (-3..8).map(|position| reflect(position, 5)).collect();
        assert_eq!(reflected, [3, 2, 1, 0, 1, 2, 3, 4, 3, 2, 1]);
    }

    /// A checkerboard: every pixel differs from its neighbours, so any blur shows.
    fn checkerboard(side: u32) -> RgbImage {
        RgbImage::from_fn(side, side, |x, y| {
            let value = if (x + y) % 2 == 0 { 0 } else { 255 };
            image::Rgb([value, value, value])
        })
    }

    #[test]
    fn only_the_grown_box_and_its_fade_change() {
        let mut image = checkerboard(100);
        let original = image.clone();
        // 20 x 20 pixels at (40, 40): grown by 2 to 38..62; the kernel has
        // 5 taps, so the fade reaches 2 more pixels out.
        blur_boxes(&mut image, &[[0.4, 0.4, 0.6, 0.6]]);
        for (x, y, pixel) in image.enumerate_pixels() {
            let inside = (38..62).contains(&x) && (38..62).contains(&y);
            let near = (36..64).contains(&x) && (36..64).contains(&y);
            if inside {
                // The middle of the box is fully blurred: grey, not black or white.
                if (45..55).contains(&x) && (45..55).contains(&y) {
                    assert!((100..=160).contains(&pixel[0]), "{x},{y}: {pixel:?}");
                }
            } else if !near {
                assert_eq!(pixel, original.get_pixel(x, y), "{x},{y}");
            }
        }
        assert_ne!(image, original);
    }

    #[test]
    fn no_box_or_an_empty_box_changes_nothing() {
        let mut image = checkerboard(10);
        let original = image.clone();
        blur_boxes(&mut image, &[]);
        blur_boxes(&mut image, &[[0.5, 0.5, 0.5, 0.5]]);
        assert_eq!(image, original);
    }
}
