#!/usr/bin/env python3
"""Make the golden images that pin `src/filter/kernels.rs` to Pillow.

Writes small, deterministic, lossless test inputs and Pillow's results for
each kernel (and two chains of kernels) into tests/golden/ as PNG:

    input_<name>.png                           the input
    input_<name>__<step>[_<step>...].png       Pillow's output of those steps

Steps: blur, sharpen, contour (ImageFilter.BLUR / SHARPEN / CONTOUR),
grayscale (convert("L")) and contrast (ImageEnhance.Contrast(...).enhance(1.5)),
plus the chains blur_contrast_grayscale and sharpen_contour.

Inputs use no randomness from Python's or Pillow's versions: the noise is a
fixed 32-bit xorshift, so the inputs are identical everywhere. The outputs were
checked identical under Pillow 9.4 (Debian's python3-pil) and 13.0 (PyPI).

For JPEG, where decoders may differ, one more set pins how far grab's decoder
(zune-jpeg) is from Pillow's (libjpeg-turbo): photo.jpg (a smooth picture
with edges and noise, saved by Pillow at quality 90), Pillow's decoding of it
as photo__decoded.png, and its blur_contrast_grayscale as
photo__blur_contrast_grayscale.png and, at quality 90 (grab filter's default),
as photo__blur_contrast_grayscale.jpg. The committed photo.jpg is the input from
then on (Pillow 9.4 and 13.0 write and decode it byte for byte alike).

And Pillow's JPEG files of input_rgb and input_l at qualities 75 and 95
(input_<name>__q<quality>.jpg), which grab's encoder must match byte for byte;
with OpenCV installed (pip install opencv-python-headless), its bytes are
compared too.

Run from anywhere:  python3 bench/make_golden.py   (needs Pillow)
"""

from pathlib import Path

from PIL import Image, ImageEnhance, ImageFilter

CONTRAST_FACTOR = 1.5
OUTPUT = Path(__file__).resolve().parent.parent / "tests" / "golden"


class Noise:
    """xorshift32: the same bytes on every Python."""

    def __init__(self, seed):
        self.state = seed

    def byte(self):
        x = self.state
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.state = x
        return x >> 24


def channel_value(x, y, width, height, channel, noise):
    """Varied content per region, so every kernel meets gradients, noise,
    sharp edges and saturated values (sums far below 0 and above 255)."""
    if x < width // 3:
        # Smooth gradients, different per channel.
        return [
            x * 255 // max(1, width // 3 - 1),
            y * 255 // max(1, height - 1),
            (x + y) * 4 % 256,
            255 - y * 5 % 256,
        ][channel]
    if x < 2 * width // 3:
        if y < height // 2:
            # Noise.
            return noise.byte()
        # Hard edges: a checkerboard of 0 and 255 with 3-pixel squares,
        # shifted per channel.
        return 255 if ((x + channel) // 3 + y // 3) % 2 else 0
    if y < height // 3:
        # Isolated single bright and dark pixels on mid grey.
        if (x * 7 + y * 3 + channel) % 11 == 0:
            return 255
        if (x * 5 + y * 2 + channel) % 13 == 0:
            return 0
        return 128
    # Rectangles of flat colour with sharp borders, plus faint noise.
    base = [20, 235, 90, 250][channel] if (x // 5 + y // 4) % 2 else [240, 15, 160, 60][channel]
    return max(0, min(255, base + noise.byte() % 5 - 2))


def make_input(mode, width, height, seed):
    channels = len(mode)
    noise = Noise(seed)
    data = bytearray()
    for y in range(height):
        for x in range(width):
            for channel in range(channels):
                data.append(channel_value(x, y, width, height, channel, noise))
    return Image.frombytes(mode, (width, height), bytes(data))


def contrast(image):
    return ImageEnhance.Contrast(image).enhance(CONTRAST_FACTOR)


STEPS = {
    "blur": lambda image: image.filter(ImageFilter.BLUR),
    "sharpen": lambda image: image.filter(ImageFilter.SHARPEN),
    "contour": lambda image: image.filter(ImageFilter.CONTOUR),
    "grayscale": lambda image: image.convert("L"),
    "contrast": contrast,
}

CHAINS = [
    ["blur"],
    ["sharpen"],
    ["contour"],
    ["grayscale"],
    ["contrast"],
    ["blur", "contrast", "grayscale"],
    ["sharpen", "contour"],
]

INPUTS = {
    "rgb": ("RGB", 67, 45, 0x1234567),
    "rgba": ("RGBA", 67, 45, 0x2345678),
    "l": ("L", 67, 45, 0x3456789),
    # Smaller than the 5x5 blur (copied unchanged) with a 2x1 interior for
    # the 3x3 kernels.
    "tiny_rgb": ("RGB", 4, 3, 0x456789A),
}


def make_photo(width, height, seed):
    """Smooth gradients, a ring pattern, hard-edged discs and a little noise:
    what a JPEG of a photo holds, to compare decoders on."""
    import math

    noise = Noise(seed)
    data = bytearray()
    for y in range(height):
        for x in range(width):
            ring = 0.5 + 0.5 * math.sin(math.hypot(x - width * 0.3, y - height * 0.6) / 5.0)
            inside = (x - width * 0.7) ** 2 + (y - height * 0.3) ** 2 < (height * 0.2) ** 2
            for channel in range(3):
                if inside:
                    value = [230, 40, 60][channel]
                else:
                    base = [40 + 180 * x // width, 60 + 150 * y // height, 200 - 120 * x // width][channel]
                    value = base * (0.75 + 0.25 * ring)
                data.append(max(0, min(255, int(value) + noise.byte() % 9 - 4)))
    return Image.frombytes("RGB", (width, height), bytes(data))


def main():
    OUTPUT.mkdir(parents=True, exist_ok=True)
    written = 0
    photo = OUTPUT / "photo.jpg"
    make_photo(160, 120, 0x56789AB).save(photo, quality=90)
    decoded = Image.open(photo)
    decoded.load()
    decoded.save(OUTPUT / "photo__decoded.png")
    result = decoded
    for step in ["blur", "contrast", "grayscale"]:
        result = STEPS[step](result)
    result.save(OUTPUT / "photo__blur_contrast_grayscale.png")
    result.save(OUTPUT / "photo__blur_contrast_grayscale.jpg", quality=90)
    written += 3
    for name, (mode, width, height, seed) in INPUTS.items():
        image = make_input(mode, width, height, seed)
        image.save(OUTPUT / f"input_{name}.png")
        written += 1
        for chain in CHAINS:
            result = image
            for step in chain:
                result = STEPS[step](result)
            result.save(OUTPUT / f"input_{name}__{'_'.join(chain)}.png")
            written += 1
    total = sum(path.stat().st_size for path in OUTPUT.glob("*.png"))
    print(f"wrote {written} PNGs to {OUTPUT} ({total} bytes in all)")
    write_jpegs()


def write_jpegs():
    """Pillow's JPEGs of two inputs at two qualities: grab's encoder
    (src/image/jpeg.rs) must give the same bytes. Where OpenCV is installed
    (img2dataset's encoder), its bytes are checked to be the same too."""
    try:
        import cv2
        import numpy
    except ImportError:
        cv2 = None
    for name in ["rgb", "l"]:
        image = Image.open(OUTPUT / f"input_{name}.png")
        for quality in [75, 95]:
            path = OUTPUT / f"input_{name}__q{quality}.jpg"
            image.save(path, quality=quality)
            if cv2 is not None:
                pixels = numpy.asarray(image)
                if pixels.ndim == 3:
                    pixels = pixels[:, :, ::-1].copy()  # OpenCV's order is BGR
                _, encoded = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, quality])
                same = encoded.tobytes() == path.read_bytes()
                print(f"{path.name}: OpenCV {cv2.__version__} gives {'the same' if same else 'OTHER'} bytes")
    print(f"wrote 4 JPEGs to {OUTPUT}")


if __name__ == "__main__":
    main()
