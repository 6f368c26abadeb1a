//! The gallery's routes: generated images and files, and the indexes that list them.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;

use crate::gallery::{self, Format, ImageCache};

/// The longest latency a request may ask for.
const MAX_DELAY_MS: u64 = 60_000;
/// The most URLs an index lists.
const MAX_INDEX_COUNT: usize = 1_000_000;
/// The largest generated file.
const MAX_FILE_BYTES: u64 = 16 << 30;

/// State shared by the gallery's handlers.
pub struct Shared {
    pub images: ImageCache,
}

/// Common query parameters; anything missing takes its default.
#[derive(Debug, Default, Deserialize)]
pub struct Params {
    w: Option<u32>,
    h: Option<u32>,
    delay_ms: Option<u64>,
    count: Option<usize>,
    size: Option<u64>,
    format: Option<String>,
}

impl Params {
    pub async fn delay(&self) {
        if let Some(milliseconds) = self.delay_ms.filter(|&milliseconds| milliseconds > 0) {
            tokio::time::sleep(Duration::from_millis(milliseconds.min(MAX_DELAY_MS))).await;
        }
    }

    fn size(&self) -> (u32, u32) {
        let side =
            |value: Option<u32>, default| value.unwrap_or(default).clamp(1, gallery::MAX_SIDE);
        (side(self.w, 640), side(self.h, 480))
    }

    /// The query string an index passes on to the URLs it lists.
    fn forwarded(&self, keys: &[&str]) -> String {
        let mut pairs = Vec::new();
        for key in keys {
            let value = match *key {
                "w" => self.w.map(|value| value.to_string()),
                "h" => self.h.map(|value| value.to_string()),
                "delay_ms" => self.delay_ms.map(|value| value.to_string()),
                "size" => self.size.map(|value| value.to_string()),
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

fn plain(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message.into(),
    )
        .into_response()
}

/// The scheme and host the client used, for absolute URLs in an index.
fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

pub async fn image_index(Query(params): Query<Params>, headers: HeaderMap) -> Response {
    params.delay().await;
    let count = params.count.unwrap_or(50).min(MAX_INDEX_COUNT);
    let extension = match params.format.as_deref() {
        None | Some("jpg") | Some("jpeg") => "jpg",
        Some("png") => "png",
        Some(other) => {
            return plain(
                StatusCode::BAD_REQUEST,
                format!("unknown format {other}: use jpg or png"),
            );
        }
    };
    numbered_index(
        &headers,
        "images",
        "image",
        extension,
        count,
        &params.forwarded(&["w", "h", "delay_ms"]),
    )
}

pub async fn image(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    Query(params): Query<Params>,
) -> Response {
    let Some(format) = Format::from_name(&name) else {
        return plain(
            StatusCode::NOT_FOUND,
            format!("no such image: {name} (ask for .jpg or .png)"),
        );
    };
    params.delay().await;
    let (width, height) = params.size();
    let bytes = match shared.images.get(&name, width, height, format) {
        Some(bytes) => bytes,
        None => {
            // Drawing and encoding take milliseconds of CPU: off the async threads.
            let drawn_name = name.clone();
            let drawn = tokio::task::spawn_blocking(move || {
                gallery::encode(&drawn_name, width, height, format)
            })
            .await;
            match drawn {
                Ok(bytes) => {
                    shared
                        .images
                        .insert(&name, width, height, format, bytes.clone());
                    bytes
                }
                Err(error) => {
                    return plain(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("drawing {name} failed: {error}"),
                    );
                }
            }
        }
    };
    ([(header::CONTENT_TYPE, format.content_type())], bytes).into_response()
}

pub async fn file_index(Query(params): Query<Params>, headers: HeaderMap) -> Response {
    params.delay().await;
    let count = params.count.unwrap_or(100).min(MAX_INDEX_COUNT);
    numbered_index(
        &headers,
        "files",
        "file",
        "bin",
        count,
        &params.forwarded(&["size", "delay_ms"]),
    )
}

/// `count` URLs under `/FOLDER/`, `STEM-0001.EXTENSION` onwards, zero-padded so
/// they sort in order, each with the `forwarded` query.
fn numbered_index(
    headers: &HeaderMap,
    folder: &str,
    stem: &str,
    extension: &str,
    count: usize,
    forwarded: &str,
) -> Response {
    let base = base_url(headers);
    let width = count.to_string().len().max(4);
    let mut text = String::new();
    for number in 1..=count {
        text += &format!("{base}/{folder}/{stem}-{number:0width$}.{extension}{forwarded}\n");
    }
    plain(StatusCode::OK, text)
}

/// `bytes=START-` or `bytes=START-END`, the single ranges downloaders ask for.
fn parse_range(value: &str, size: u64) -> Option<(u64, u64)> {
    let (start, end) = value.trim().strip_prefix("bytes=")?.split_once('-')?;
    let start: u64 = start.trim().parse().ok()?;
    let end = match end.trim() {
        "" => size.checked_sub(1)?,
        end => end.parse::<u64>().ok()?.min(size.checked_sub(1)?),
    };
    (start <= end).then_some((start, end))
}

/// Seeded bytes, with validators and single-range support so downloads can resume.
pub async fn file(
    Path(name): Path<String>,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> Response {
    params.delay().await;
    let size = params.size.unwrap_or(20_000).min(MAX_FILE_BYTES);
    let seed = gallery::seed_of(&name);
    let etag = format!("\"{seed:016x}-{size}\"");
    // If-Range with another validator means the client's copy is of another file:
    // it gets the whole body.
    let if_range_holds = headers
        .get(header::IF_RANGE)
        .is_none_or(|value| value.to_str().is_ok_and(|value| value == etag));
    let range = headers
        .get(header::RANGE)
        .and_then(|value| value.to_str().ok())
        .filter(|_| if_range_holds)
        .map(|value| parse_range(value, size));
    let (status, start, end) = match range {
        None => (StatusCode::OK, 0, size),
        Some(Some((start, end))) => (StatusCode::PARTIAL_CONTENT, start, end + 1),
        Some(None) => {
            return Response::builder()
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{size}"))
                .body(Body::empty())
                .expect("static headers are valid");
        }
    };
    let mut generator = gallery::Generator::new(seed);
    generator.skip(start);
    let mut response = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, end - start)
        .header(header::ETAG, &etag)
        .header(header::LAST_MODIFIED, "Thu, 01 Jan 2026 00:00:00 GMT")
        .header(header::ACCEPT_RANGES, "bytes");
    if status == StatusCode::PARTIAL_CONTENT {
        response = response.header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{size}", end - 1),
        );
    }
    const CHUNK: u64 = 64 * 1024;
    let body = if end - start <= CHUNK {
        let mut buffer = vec![0u8; (end - start) as usize];
        generator.fill(&mut buffer);
        Body::from(buffer)
    } else {
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
    };
    response.body(body).expect("static headers are valid")
}
