//! `--compressed`: the encodings asked for, and a body decoded as it arrives.
//! The decoders are the codec crates' own streaming writers (flate2, brotli,
//! zstd), fed each chunk as it comes and drained into what the transfer keeps,
//! so a compressed body costs no more memory than a plain one.

use std::io::{self, Write};

/// What `Accept-Encoding` says with `--compressed`, best first.
pub const ACCEPTED: &str = "zstd, br, gzip";

/// A body's decoder, for the `Content-Encoding` it came with.
pub enum Decoder {
    Gzip(flate2::write::MultiGzDecoder<Vec<u8>>),
    Deflate(flate2::write::ZlibDecoder<Vec<u8>>),
    Brotli(Box<brotli_decompressor::DecompressorWriter<Vec<u8>>>),
    Zstd(zstd::stream::write::Decoder<'static, Vec<u8>>),
}

impl Decoder {
    /// The decoder for an encoding, `None` for `identity` or no encoding; an
    /// error names an encoding grab cannot decode.
    pub fn for_encoding(encoding: Option<&str>) -> Result<Option<Decoder>, String> {
        let Some(encoding) = encoding.map(|value| value.trim().to_ascii_lowercase()) else {
            return Ok(None);
        };
        Ok(Some(match encoding.as_str() {
            "" | "identity" => return Ok(None),
            "gzip" | "x-gzip" => Decoder::Gzip(flate2::write::MultiGzDecoder::new(Vec::new())),
            "deflate" => Decoder::Deflate(flate2::write::ZlibDecoder::new(Vec::new())),
            "br" => Decoder::Brotli(Box::new(brotli_decompressor::DecompressorWriter::new(
                Vec::new(),
                64 * 1024,
            ))),
            "zstd" => Decoder::Zstd(
                zstd::stream::write::Decoder::new(Vec::new())
                    .map_err(|error| format!("cannot start a zstd decoder: {error}"))?,
            ),
            other => return Err(format!("an encoding grab cannot decode: {other}")),
        }))
    }

    /// The bytes `encoded` decodes to, as far as they go.
    pub fn feed(&mut self, encoded: &[u8]) -> io::Result<Vec<u8>> {
        match self {
            Decoder::Gzip(writer) => drained(writer, encoded, |writer| writer.get_mut()),
            Decoder::Deflate(writer) => drained(writer, encoded, |writer| writer.get_mut()),
            Decoder::Brotli(writer) => drained(&mut **writer, encoded, |writer| writer.get_mut()),
            Decoder::Zstd(writer) => drained(writer, encoded, |writer| writer.get_mut()),
        }
    }

    /// The last decoded bytes, once the body ended; an error for a stream cut
    /// short.
    pub fn finish(self) -> io::Result<Vec<u8>> {
        match self {
            Decoder::Gzip(writer) => writer.finish(),
            Decoder::Deflate(writer) => writer.finish(),
            Decoder::Brotli(writer) => writer.into_inner().map_err(|_| {
                io::Error::new(io::ErrorKind::UnexpectedEof, "brotli stream cut short")
            }),
            Decoder::Zstd(mut writer) => {
                writer.flush()?;
                Ok(writer.into_inner())
            }
        }
    }
}

/// Feeds a decoding writer and takes what it wrote into its buffer so far.
fn drained<W: Write>(
    writer: &mut W,
    encoded: &[u8],
    output: impl FnOnce(&mut W) -> &mut Vec<u8>,
) -> io::Result<Vec<u8>> {
    writer.write_all(encoded)?;
    Ok(std::mem::take(output(writer)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(encoding: &str, encoded: &[u8]) -> Vec<u8> {
        let mut decoder = Decoder::for_encoding(Some(encoding)).unwrap().unwrap();
        let mut out = Vec::new();
        // A byte at a time: chunk borders fall anywhere.
        for byte in encoded {
            out.extend(decoder.feed(&[*byte]).unwrap());
        }
        out.extend(decoder.finish().unwrap());
        out
    }

    #[test]
    fn each_encoding_decodes_however_the_body_is_cut() {
        let body: Vec<u8> = (0..20_000u32).map(|number| (number % 251) as u8).collect();
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gzip.write_all(&body).unwrap();
        assert_eq!(decoded("gzip", &gzip.finish().unwrap()), body);
        let zstd = zstd::encode_all(&body[..], 3).unwrap();
        assert_eq!(decoded("zstd", &zstd), body);
        assert!(Decoder::for_encoding(Some("identity")).unwrap().is_none());
        assert!(Decoder::for_encoding(None).unwrap().is_none());
        assert!(Decoder::for_encoding(Some("lzma")).is_err());
    }

    #[test]
    fn a_gzip_body_cut_short_is_an_error() {
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gzip.write_all(&[7; 10_000]).unwrap();
        let encoded = gzip.finish().unwrap();
        let mut decoder = Decoder::for_encoding(Some("gzip")).unwrap().unwrap();
        decoder.feed(&encoded[..encoded.len() / 2]).unwrap();
        assert!(decoder.finish().is_err());
    }
}
