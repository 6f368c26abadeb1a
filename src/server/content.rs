//! The gallery's routes: generated images and files, and the indexes that list them.
//! Each route takes a fixed set of query parameters: an unknown one is a JSON 400
//! naming those the route takes, a value that is not a whole number is a 400 saying
//! what the number counts, and a value outside its range is a 400 naming the range
//! (never silently clamped). Images and files carry a
//! strong ETag and a fixed Last-Modified and honour `If-None-Match`,
//! `If-Modified-Since`, `If-Range` and single `Range`s, so downloaders can resume
//! and re-runs can skip.

use std::io;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::operations::{
    error_response, given_twice, not_a_number, not_one_of, out_of_range, unknown_parameter,
};
use crate::gallery::{self, Format, ImageCache};

/// A numeric query parameter: its name, what its number counts (for messages
/// and the page at `/`), and the values it may take.
pub struct Parameter {
    pub name: &'static str,
    pub unit: &'static str,
    pub allowed: RangeInclusive<u64>,
}

pub const WIDTH: Parameter = Parameter {
    name: "w",
    unit: "pixels",
    allowed: 1..=gallery::MAX_SIDE as u64,
};
pub const HEIGHT: Parameter = Parameter {
    name: "h",
    unit: "pixels",
    allowed: 1..=gallery::MAX_SIDE as u64,
};
/// The latency a request may ask for before its answer.
pub const DELAY: Parameter = Parameter {
    name: "delay_ms",
    unit: "milliseconds",
    allowed: 0..=60_000,
};
/// How many URLs an index may list.
pub const COUNT: Parameter = Parameter {
    name: "count",
    unit: "URLs",
    allowed: 0..=1_000_000,
};
/// The size of a generated file.
pub const SIZE: Parameter = Parameter {
    name: "size",
    unit: "bytes",
    allowed: 0..=16 << 30,
};
/// The one parameter that is not a number: an image index's file type.
pub const FORMAT: &str = "format";
/// The values `format` takes.
pub const FORMATS: &[&str] = &["jpg", "png"];

/// The parameters each gallery route takes, in the order `/` lists them.
pub const IMAGE_PARAMETERS: &[&str] = &["w", "h", "delay_ms"];
pub const IMAGE_INDEX_PARAMETERS: &[&str] = &["count", "delay_ms", "w", "h", "format"];
pub const FILE_PARAMETERS: &[&str] = &["size", "delay_ms"];
pub const FILE_INDEX_PARAMETERS: &[&str] = &["count", "size", "delay_ms"];

/// Defaults of the parameters a request leaves out.
pub const DEFAULT_WIDTH: u64 = 640;
pub const DEFAULT_HEIGHT: u64 = 480;
pub const DEFAULT_IMAGE_COUNT: u64 = 50;
pub const DEFAULT_FILE_COUNT: u64 = 100;
pub const DEFAULT_FILE_SIZE: u64 = 20_000;
/// Every generated image and file is the same forever, so one fixed date serves as
/// their modification time: `-c` and re-runs see the same validator every time.
pub const LAST_MODIFIED: &str = "Thu, 01 Jan 2026 00:00:00 GMT";

/// State shared by the gallery's handlers.
pub struct Shared {
    pub images: ImageCache,
    /// One permit per CPU: a 4096x4096 drawing takes 48 MiB, so only this many
    /// are drawn at once, however many requests ask.
    pub drawing: tokio::sync::Semaphore,
}

/// The query parameters a request gave, each one its route takes and each
/// number a whole number; [`within`] checks their ranges.
#[derive(Debug, Default)]
pub struct Params {
    w: Option<u64>,
    h: Option<u64>,
    delay_ms: Option<u64>,
    count: Option<u64>,
    size: Option<u64>,
    format: Option<String>,
}

/// A parameter's value, or its default, checked against its allowed range.
fn within(parameter: &Parameter, value: Option<u64>, default: u64) -> Result<u64, Refused> {
    let value = value.unwrap_or(default);
    if parameter.allowed.contains(&value) {
        Ok(value)
    } else {
        Err(out_of_range(
            parameter.name,
            value,
            *parameter.allowed.start(),
            *parameter.allowed.end(),
        )
        .into())
    }
}

impl Params {
    /// The query string of `uri` read by hand rather than by serde, so that each
    /// refusal is a sentence about the parameter (`w must be a whole number of
    /// pixels, got "abc"`) and a parameter the route does not take (a typo, one
    /// meant for another route) is refused rather than ignored.
    fn parse(uri: &Uri, known: &[&str]) -> Result<Params, Refused> {
        let mut params = Params::default();
        let query = uri.query().unwrap_or_default();
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            if !known.contains(&&*name) {
                return Err(unknown_parameter(&name, uri.path(), known).into());
            }
            if name == FORMAT {
                if params.format.is_some() {
                    return Err(given_twice(FORMAT).into());
                }
                params.format = Some(value.into_owned());
                continue;
            }
            let (slot, parameter) = match &*name {
                "w" => (&mut params.w, &WIDTH),
                "h" => (&mut params.h, &HEIGHT),
                "delay_ms" => (&mut params.delay_ms, &DELAY),
                "count" => (&mut params.count, &COUNT),
                "size" => (&mut params.size, &SIZE),
                other => unreachable!("{other} is in a route's list but has no slot"),
            };
            if slot.is_some() {
                return Err(given_twice(parameter.name).into());
            }
            // Digits only: u64's parser would also take a leading `+`.
            if value.is_empty() || !value.bytes().all(|byte| byte.is_ascii_digit()) {
                return Err(not_a_number(parameter.name, parameter.unit, &value).into());
            }
            // All digits but past u64 is a whole number, out of range.
            let Ok(number) = value.parse::<u64>() else {
                return Err(out_of_range(
                    parameter.name,
                    &*value,
                    *parameter.allowed.start(),
                    *parameter.allowed.end(),
                )
                .into());
            };
            *slot = Some(number);
        }
        Ok(params)
    }

    /// Waits the requested latency, once it is known to be allowed.
    async fn delay(&self) -> Result<(), Refused> {
        let milliseconds = within(&DELAY, self.delay_ms, 0)?;
        if milliseconds > 0 {
            tokio::time::sleep(Duration::from_millis(milliseconds)).await;
        }
        Ok(())
    }

    fn size(&self) -> Result<(u32, u32), Refused> {
        let width = within(&WIDTH, self.w, DEFAULT_WIDTH)?;
        let height = within(&HEIGHT, self.h, DEFAULT_HEIGHT)?;
        // Both ranges end at gallery::MAX_SIDE, a u32.
        Ok((width as u32, height as u32))
    }

    /// The query string an index passes on to the URLs it lists.
    fn forwarded(&self, keys: &[&str]) -> String {
        let mut pairs = Vec::new();
        for key in keys {
            let value = match *key {
                "w" => self.w,
                "h" => self.h,
                "delay_ms" => self.delay_ms,
                "size" => self.size,
                _ => None,
            };
            if let Some(value) = value {
                pairs.push(format!("{key}={value}"));
            }
        }
        if pairs.is_empty() {
            String::new()
        } else {
            format!("?{}", pairs.join("&"))
        }
    }
}

/// A request refused before its answer was made: the JSON error it gets. Boxed,
/// so the `Result`s that carry it stay small.
struct Refused(Box<Response>);

impl From<Response> for Refused {
    fn from(response: Response) -> Refused {
        Refused(Box::new(response))
    }
}

/// Turns a handler's early exits into its answer.
fn either(result: Result<Response, Refused>) -> Response {
    result.unwrap_or_else(|refused| *refused.0)
}

/// The scheme and host the client used, for absolute URLs in an index.
fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

pub async fn image_index(uri: Uri, headers: HeaderMap) -> Response {
    either(
        async {
            let params = Params::parse(&uri, IMAGE_INDEX_PARAMETERS)?;
            params.size()?;
            let count = within(&COUNT, params.count, DEFAULT_IMAGE_COUNT)?;
            let extension = match params.format.as_deref() {
                None | Some("jpg") | Some("jpeg") => "jpg",
                Some("png") => "png",
                Some(other) => return Err(not_one_of(FORMAT, other, FORMATS).into()),
            };
            params.delay().await?;
            Ok(numbered_index(
                &headers,
                "images",
                "image",
                extension,
                count,
                &params.forwarded(IMAGE_PARAMETERS),
            ))
        }
        .await,
    )
}

/// The strong validator of an image: every input that decides its bytes.
fn image_etag(name: &str, width: u32, height: u32, format: Format) -> String {
    let key = format!("image\0{name}\0{width}x{height}\0{}", format.content_type());
    format!("\"{:016x}\"", gallery::seed_of(&key))
}

pub async fn image(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    either(
        async {
            let params = Params::parse(&uri, IMAGE_PARAMETERS)?;
            let Some(format) = Format::from_name(&name) else {
                return Err(error_response(
                    StatusCode::NOT_FOUND,
                    &format!("no such image: {name} (ask for NAME.jpg or NAME.png)"),
                )
                .into());
            };
            let (width, height) = params.size()?;
            params.delay().await?;
            let etag = image_etag(&name, width, height, format);
            // A client that has the image is told so before anything is drawn.
            if not_modified(&headers, &etag) {
                return Ok(validated(StatusCode::NOT_MODIFIED, &etag)
                    .body(Body::empty())
                    .expect("static headers are valid"));
            }
            let bytes = match shared.images.get(&name, width, height, format) {
                Some(bytes) => bytes,
                None => {
                    // Drawing and encoding take milliseconds of CPU: off the async threads.
                    let _permit = shared
                        .drawing
                        .acquire()
                        .await
                        .expect("the semaphore is never closed");
                    let drawn_name = name.clone();
                    let drawn = tokio::task::spawn_blocking(move || {
                        gallery::encode(&drawn_name, width, height, format)
                    })
                    .await
                    .map_err(|error| {
                        Refused::from(error_response(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            &format!("drawing {name} failed: {error}"),
                        ))
                    })?;
                    shared
                        .images
                        .insert(&name, width, height, format, drawn.clone());
                    drawn
                }
            };
            Ok(ranged(
                &headers,
                &etag,
                bytes.len() as u64,
                format.content_type(),
                |start, end| Body::from(bytes.slice(start as usize..end as usize)),
            ))
        }
        .await,
    )
}

pub async fn file_index(uri: Uri, headers: HeaderMap) -> Response {
    either(
        async {
            let params = Params::parse(&uri, FILE_INDEX_PARAMETERS)?;
            within(&SIZE, params.size, DEFAULT_FILE_SIZE)?;
            let count = within(&COUNT, params.count, DEFAULT_FILE_COUNT)?;
            params.delay().await?;
            Ok(numbered_index(
                &headers,
                "files",
                "file",
                "bin",
                count,
                &params.forwarded(FILE_PARAMETERS),
            ))
        }
        .await,
    )
}

/// `count` URLs under `/FOLDER/`, `STEM-0001.EXTENSION` onwards, zero-padded so
/// they sort in order, each with the `forwarded` query.
fn numbered_index(
    headers: &HeaderMap,
    folder: &str,
    stem: &str,
    extension: &str,
    count: u64,
    forwarded: &str,
) -> Response {
    let prefix = format!("{}/{folder}/{stem}-", base_url(headers));
    let suffix = format!(".{extension}{forwarded}\n");
    let width = count.to_string().len().max(4);
    // Made a thousand lines at a time as the client reads: a million-line index
    // never sits in memory whole.
    const LINES: u64 = 1000;
    let chunks = (0..count.div_ceil(LINES)).map(move |chunk| {
        let mut text = String::new();
        for number in chunk * LINES + 1..=((chunk + 1) * LINES).min(count) {
            text += &format!("{prefix}{number:0width$}{suffix}");
        }
        Ok::<_, std::convert::Infallible>(Bytes::from(text))
    });
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        Body::from_stream(futures_util::stream::iter(chunks)),
    )
        .into_response()
}

/// Whether `If-None-Match` (or, without it, `If-Modified-Since`) says the client
/// already holds this representation. `If-None-Match` compares weakly, as RFC 9110
/// asks.
fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    if let Some(value) = headers.get(header::IF_NONE_MATCH) {
        let Ok(value) = value.to_str() else {
            return false;
        };
        return value.split(',').map(str::trim).any(|candidate| {
            candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag
        });
    }
    let since = headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| httpdate::parse_http_date(value).ok());
    let modified = httpdate::parse_http_date(LAST_MODIFIED).expect("a valid HTTP date");
    since.is_some_and(|since| modified <= since)
}

/// A response builder with the validators every generated body carries.
fn validated(status: StatusCode, etag: &str) -> axum::http::response::Builder {
    Response::builder()
        .status(status)
        .header(header::ETAG, etag)
        .header(header::LAST_MODIFIED, LAST_MODIFIED)
        .header(header::ACCEPT_RANGES, "bytes")
}

/// What a `Range` header asks of a body of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
enum Wanted {
    /// No range, or one this server does not serve (several ranges, other
    /// units): the whole body, as RFC 9110 allows.
    Whole,
    /// Bytes `start..end`.
    Part(u64, u64),
    /// A range that starts past the end: 416.
    Unsatisfiable,
}

/// `bytes=START-`, `bytes=START-END` or `bytes=-SUFFIX`, the single ranges
/// downloaders ask for.
fn parse_range(value: &str, size: u64) -> Wanted {
    let Some((start, end)) = value
        .trim()
        .strip_prefix("bytes=")
        .and_then(|spec| spec.split_once('-'))
    else {
        return Wanted::Whole;
    };
    let (start, end) = (start.trim(), end.trim());
    if start.is_empty() {
        return match end.parse::<u64>() {
            Ok(0) => Wanted::Unsatisfiable,
            Ok(suffix) if size > 0 => Wanted::Part(size - suffix.min(size), size),
            Ok(_) => Wanted::Unsatisfiable,
            Err(_) => Wanted::Whole,
        };
    }
    let Ok(start) = start.parse::<u64>() else {
        return Wanted::Whole;
    };
    let end = match end {
        "" => size,
        end => match end.parse::<u64>() {
            Ok(last) if last >= start => last.saturating_add(1).min(size),
            _ => return Wanted::Whole,
        },
    };
    if start >= size {
        Wanted::Unsatisfiable
    } else {
        Wanted::Part(start, end)
    }
}

/// Answers a request for a generated body of `size` bytes with validator `etag`:
/// 304 when the client holds it, 206 with the part a `Range` asks for (when
/// `If-Range`, if sent, still names this body), 416 for a range past the end, else
/// 200. `body(start, end)` makes bytes `start..end`.
fn ranged(
    headers: &HeaderMap,
    etag: &str,
    size: u64,
    content_type: &str,
    body: impl FnOnce(u64, u64) -> Body,
) -> Response {
    if not_modified(headers, etag) {
        return validated(StatusCode::NOT_MODIFIED, etag)
            .body(Body::empty())
            .expect("static headers are valid");
    }
    // If-Range with another validator means the client's copy is of another body:
    // it gets the whole one.
    let if_range_holds = headers.get(header::IF_RANGE).is_none_or(|value| {
        value
            .to_str()
            .is_ok_and(|value| value == etag || value == LAST_MODIFIED)
    });
    let wanted = headers
        .get(header::RANGE)
        .and_then(|value| value.to_str().ok())
        .filter(|_| if_range_holds)
        .map_or(Wanted::Whole, |value| parse_range(value, size));
    let (status, start, end) = match wanted {
        Wanted::Whole => (StatusCode::OK, 0, size),
        Wanted::Part(start, end) => (StatusCode::PARTIAL_CONTENT, start, end),
        Wanted::Unsatisfiable => {
            return validated(StatusCode::RANGE_NOT_SATISFIABLE, etag)
                .header(header::CONTENT_RANGE, format!("bytes */{size}"))
                .body(Body::empty())
                .expect("static headers are valid");
        }
    };
    let mut response = validated(status, etag)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CONTENT_LENGTH, end - start);
    if status == StatusCode::PARTIAL_CONTENT {
        response = response.header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{size}", end - 1),
        );
    }
    response
        .body(body(start, end))
        .expect("static headers are valid")
}

/// Seeded bytes, with validators and single-range support so downloads can resume.
pub async fn file(Path(name): Path<String>, uri: Uri, headers: HeaderMap) -> Response {
    either(
        async {
            let params = Params::parse(&uri, FILE_PARAMETERS)?;
            let size = within(&SIZE, params.size, DEFAULT_FILE_SIZE)?;
            params.delay().await?;
            let seed = gallery::seed_of(&name);
            let etag = format!("\"{seed:016x}-{size}\"");
            Ok(ranged(
                &headers,
                &etag,
                size,
                "application/octet-stream",
                |start, end| seeded_body(seed, start, end),
            ))
        }
        .await,
    )
}

/// Bytes `start..end` of the stream seeded with `seed`.
fn seeded_body(seed: u64, start: u64, end: u64) -> Body {
    let mut generator = gallery::Generator::new(seed);
    generator.skip(start);
    const CHUNK: u64 = 64 * 1024;
    if end - start <= CHUNK {
        let mut buffer = vec![0u8; (end - start) as usize];
        generator.fill(&mut buffer);
        return Body::from(buffer);
    }
    // Large files are generated as they are sent, so memory stays flat.
    let stream = futures_util::stream::unfold(
        (generator, end - start),
        |(mut generator, left)| async move {
            if left == 0 {
                return None;
            }
            let mut buffer = vec![0u8; left.min(CHUNK) as usize];
            generator.fill(&mut buffer);
            let left = left - buffer.len() as u64;
            Some((Ok::<_, io::Error>(Bytes::from(buffer)), (generator, left)))
        },
    );
    Body::from_stream(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_as_downloaders_send_them() {
        assert_eq!(parse_range("bytes=0-", 10), Wanted::Part(0, 10));
        assert_eq!(parse_range("bytes=3-5", 10), Wanted::Part(3, 6));
        assert_eq!(parse_range("bytes=3-99", 10), Wanted::Part(3, 10));
        assert_eq!(parse_range("bytes=-4", 10), Wanted::Part(6, 10));
        assert_eq!(parse_range("bytes=-40", 10), Wanted::Part(0, 10));
        assert_eq!(parse_range("bytes=10-", 10), Wanted::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), Wanted::Unsatisfiable);
        // Not served, so ignored: the whole body.
        assert_eq!(parse_range("bytes=0-1,4-5", 10), Wanted::Whole);
        assert_eq!(parse_range("items=0-1", 10), Wanted::Whole);
        assert_eq!(parse_range("bytes=5-2", 10), Wanted::Whole);
    }
}
