//! `grab serve`: the local HTTP server that makes every demo, test and benchmark
//! work with no internet. [`app`] builds the whole service, so tests can call it
//! in-process; [`run`] serves it on a listener the caller bound (tests bind
//! `127.0.0.1:0`) until the shutdown future resolves.
//!
//! Routes:
//! - `/images/NAME.jpg`, `/images/NAME.png`: a picture drawn from NAME
//!   (`w`, `h`: size, default 640x480; `delay_ms`: latency before answering).
//! - `/images/index.txt?count=N&delay_ms=D&w=W&h=H&format=jpg|png`: N image URLs.
//! - `/files/NAME?size=BYTES&delay_ms=D`: BYTES of seeded noise, streamed.
//! - `/files/index.txt?count=N&size=BYTES&delay_ms=D`: N file URLs.

pub mod gallery;

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use serde::Deserialize;
use tokio::net::TcpListener;

use gallery::{Format, ImageCache};

/// The longest latency a request may ask for.
const MAX_DELAY_MS: u64 = 60_000;
/// The most URLs an index lists.
const MAX_INDEX_COUNT: usize = 1_000_000;
/// The largest generated file.
const MAX_FILE_BYTES: u64 = 16 << 30;

struct Shared {
    images: ImageCache,
}

/// The whole service.
pub fn app() -> Router {
    let shared = Arc::new(Shared {
        images: ImageCache::new(4096),
    });
    Router::new()
        .route("/images/index.txt", get(image_index))
        .route("/images/{name}", get(image))
        .route("/files/index.txt", get(file_index))
        .route("/files/{name}", get(file))
        .with_state(shared)
}

/// Serves [`app`] on `listener` until `shutdown` resolves, then lets requests in
/// flight finish.
pub async fn run(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    axum::serve(listener, app())
        .with_graceful_shutdown(shutdown)
        .await
}

/// Common query parameters; anything missing takes its default.
#[derive(Debug, Default, Deserialize)]
struct Params {
    w: Option<u32>,
    h: Option<u32>,
    delay_ms: Option<u64>,
    count: Option<usize>,
    size: Option<u64>,
    format: Option<String>,
}

impl Params {
    async fn delay(&self) {
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

fn index(
    base: &str,
    directory: &str,
    names: impl Iterator<Item = String>,
    query: &str,
) -> Response {
    let mut text = String::new();
    for name in names {
        text += &format!("{base}/{directory}/{name}{query}\n");
    }
    plain(StatusCode::OK, text)
}

async fn image_index(Query(params): Query<Params>, headers: HeaderMap) -> Response {
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
    let width = count.to_string().len().max(4);
    let names = (1..=count).map(|number| format!("image-{number:0width$}.{extension}"));
    index(
        &base_url(&headers),
        "images",
        names,
        &params.forwarded(&["w", "h", "delay_ms"]),
    )
}

async fn image(
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

async fn file_index(Query(params): Query<Params>, headers: HeaderMap) -> Response {
    params.delay().await;
    let count = params.count.unwrap_or(100).min(MAX_INDEX_COUNT);
    let width = count.to_string().len().max(4);
    let names = (1..=count).map(|number| format!("file-{number:0width$}.bin"));
    index(
        &base_url(&headers),
        "files",
        names,
        &params.forwarded(&["size", "delay_ms"]),
    )
}

async fn file(Path(name): Path<String>, Query(params): Query<Params>) -> Response {
    params.delay().await;
    let size = params.size.unwrap_or(20_000).min(MAX_FILE_BYTES);
    let mut generator = gallery::Generator::new(gallery::seed_of(&name));
    const CHUNK: u64 = 64 * 1024;
    if size <= CHUNK {
        let mut buffer = vec![0u8; size as usize];
        generator.fill(&mut buffer);
        return ([(header::CONTENT_TYPE, "application/octet-stream")], buffer).into_response();
    }
    // Large files are generated as they are sent, so memory stays flat.
    let stream =
        futures_util::stream::unfold((generator, size), |(mut generator, left)| async move {
            if left == 0 {
                return None;
            }
            let mut buffer = vec![0u8; left.min(CHUNK) as usize];
            generator.fill(&mut buffer);
            let left = left - buffer.len() as u64;
            Some((Ok::<_, io::Error>(Bytes::from(buffer)), (generator, left)))
        });
    Response::builder()
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, size)
        .body(Body::from_stream(stream))
        .expect("static headers are valid")
}

/// A server running on its own thread and runtime, for callers that are not async
/// (`grab demo`, benchmarks, tests). It stops when dropped.
pub struct Background {
    address: std::net::SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<io::Result<()>>>,
}

impl Background {
    /// Binds `address` (port 0 picks a free one) and starts serving.
    pub fn start(address: std::net::SocketAddr) -> io::Result<Background> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let listener = runtime.block_on(TcpListener::bind(address))?;
        let address = listener.local_addr()?;
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("server".to_string())
            .spawn(move || {
                runtime.block_on(run(listener, async move {
                    let _ = stopped.await;
                }))
            })?;
        Ok(Background {
            address,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// Where it listens.
    pub fn address(&self) -> std::net::SocketAddr {
        self.address
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
