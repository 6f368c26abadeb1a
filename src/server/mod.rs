//! `grab serve`: the local HTTP server that makes every demo, test and benchmark
//! work with no internet, and the classic asynchronous-server demo. [`app`] builds
//! the whole service, so tests can call it in-process; [`run`] serves it on a
//! listener the caller bound (tests bind `127.0.0.1:0`) until the shutdown future
//! resolves, then lets requests in flight finish within a grace period.
//!
//! Routes:
//! - `/`: JSON describing the endpoints, or for a browser a page with the
//!   gallery's thumbnails and the endpoints.
//! - `/fast`, `/medium`, `/slow` (`/rapido`, `/medio`, `/lento`): wait a random
//!   0.1-0.3 s, 0.5-1.5 s, 2-4 s; `/mixed` (`/mixto`): all three at once;
//!   `/sequential` (`/secuencial`): one after another; `/fail`: a JSON 500.
//! - `/images/NAME.jpg`, `/images/NAME.png`: a picture drawn from NAME
//!   (`w`, `h`: size, default 640x480; `delay_ms`: latency before answering).
//! - `/images/index.txt?count=N&delay_ms=D&w=W&h=H&format=jpg|png`: N image URLs.
//! - `/files/NAME?size=BYTES&delay_ms=D`: BYTES of seeded noise, streamed.
//! - `/files/index.txt?count=N&size=BYTES&delay_ms=D`: N file URLs.
//!
//! A gallery route refuses a parameter it does not take, naming those it does.
//!
//! Every response carries its handling time as `X-Response-Time` (seconds) and
//! `Server-Timing`, and every request is logged (target `grab::server`).

mod content;
mod index;
mod limits;
mod operations;

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;

use crate::gallery::ImageCache;
pub use content::LAST_MODIFIED;
pub use limits::Limits;

/// The whole service, with the default request timeout.
pub fn app() -> Router {
    app_with(&Limits::default())
}

/// The whole service.
pub fn app_with(limits: &Limits) -> Router {
    let shared = Arc::new(content::Shared {
        images: ImageCache::new(limits.image_cache_bytes),
        drawing: tokio::sync::Semaphore::new(
            std::thread::available_parallelism().map_or(2, |count| count.get()),
        ),
    });
    Router::new()
        .route("/", get(index::index))
        .route("/fast", get(operations::fast))
        .route("/rapido", get(operations::fast))
        .route("/medium", get(operations::medium))
        .route("/medio", get(operations::medium))
        .route("/slow", get(operations::slow))
        .route("/lento", get(operations::slow))
        .route("/mixed", get(operations::mixed))
        .route("/mixto", get(operations::mixed))
        .route("/sequential", get(operations::sequential))
        .route("/secuencial", get(operations::sequential))
        .route("/fail", get(operations::fail))
        .route("/images/index.txt", get(content::image_index))
        .route("/images/{name}", get(content::image))
        .route("/files/index.txt", get(content::file_index))
        .route("/files/{name}", get(content::file))
        .fallback(operations::not_found)
        .method_not_allowed_fallback(operations::method_not_allowed)
        .with_state(shared)
        .layer(middleware::from_fn_with_state(
            limits.request_timeout,
            answer_within,
        ))
        .layer(CatchPanicLayer::custom(|_| {
            operations::error_response(StatusCode::INTERNAL_SERVER_ERROR, "the handler panicked")
        }))
        .layer(middleware::from_fn(time_and_log))
}

/// Answers 503 with a JSON error when a handler has not answered within the
/// request timeout. 408 would tell the client that it was slow to send; here the
/// server was slow to answer. Only the wait for the response's head is bounded: a
/// body that streams for longer is the client's choice (the write-stall limit
/// guards against clients that stop reading).
async fn answer_within(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            let mut response = operations::error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!(
                    "not answered within the server's request timeout of {:.3} s",
                    limit.as_secs_f64()
                ),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
    }
}

/// Adds the handling time to every response and logs the request.
async fn time_and_log(request: Request, next: Next) -> Response {
    let started = Instant::now();
    // Only copy the request line when it will be logged: this runs on every request.
    let logged = tracing::enabled!(target: "grab::server", tracing::Level::INFO)
        .then(|| (request.method().clone(), request.uri().path().to_string()));
    let mut response = next.run(request).await;
    let seconds = started.elapsed().as_secs_f64();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&format!("{seconds:.4}")) {
        headers.insert("x-response-time", value);
    }
    if let Ok(value) = HeaderValue::from_str(&format!("total;dur={:.3}", seconds * 1000.0)) {
        headers.insert("server-timing", value);
    }
    if let Some((method, path)) = logged {
        tracing::info!(target: "grab::server", %method, path, status = response.status().as_u16(), duration_ms = format_args!("{:.2}", seconds * 1000.0), "request");
    }
    response
}

/// Binds a listening socket with a deep accept backlog. tokio's default of 1024
/// overflows when a couple of thousand clients connect at once, and every dropped
/// SYN costs its client a one-second retransmission; the kernel caps the depth at
/// `net.core.somaxconn`.
pub fn bind(address: std::net::SocketAddr) -> io::Result<TcpListener> {
    let socket = if address.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(65_535)
}

/// Serves [`app`] on `listener` until `shutdown` resolves, with the default limits.
pub async fn run(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    run_with(listener, shutdown, Limits::default()).await
}

/// Serves on `listener` until `shutdown` resolves; then stops accepting and lets
/// requests in flight finish, for at most `limits.grace`.
///
/// A small accept loop over hyper's HTTP/1 connection builder rather than
/// `axum::serve`, because `axum::serve` offers no header-read timeout, header
/// size cap or write timeout, and without them silent or stalled sockets hold
/// connection slots forever. HTTP/1 only: the auto (HTTP/1 + h2c) builder waits
/// for a silent socket's first bytes with no timeout at all, and downloaders
/// speak HTTP/2 only over TLS, which this server does not offer.
pub async fn run_with(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    limits: Limits,
) -> io::Result<()> {
    let service = hyper_util::service::TowerToHyperService::new(app_with(&limits));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_header_size(limits.max_header_bytes)
        // The read buffer bounds a request line plus headers; hyper wants 8 KiB at least.
        .max_buf_size((limits.max_header_bytes + 8192).max(8192));
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let connections = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = accept_within(&listener, &slots) => accepted,
        };
        let (stream, permit) = accepted;
        let io =
            hyper_util::rt::TokioIo::new(limits::Guarded::new(stream, limits.send_timeout, permit));
        let connection = connections.watch(http.serve_connection(io, service.clone()));
        tokio::spawn(async move {
            // Timeouts, oversize heads and resets end connections; none is the
            // server's failure.
            if let Err(error) = connection.await {
                tracing::debug!(target: "grab::server", "connection closed: {error}");
            }
        });
    }
    drop(listener);
    let grace = limits.grace;
    tokio::select! {
        () = connections.shutdown() => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!(target: "grab::server", "grace period of {grace:?} over; closing the connections still open");
        }
    }
    Ok(())
}

/// The next connection, once a slot under the cap is free.
async fn accept_within(
    listener: &TcpListener,
    slots: &Arc<tokio::sync::Semaphore>,
) -> (tokio::net::TcpStream, tokio::sync::OwnedSemaphorePermit) {
    let permit = slots
        .clone()
        .acquire_owned()
        .await
        .expect("the semaphore is never closed");
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                // Small responses must not wait for Nagle's algorithm.
                let _ = stream.set_nodelay(true);
                return (stream, permit);
            }
            Err(error) => {
                // Out of file descriptors and the like: wait a little and retry
                // rather than spin or stop serving.
                tracing::warn!(target: "grab::server", "accept failed: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
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
        Background::start_with(address, Limits::default())
    }

    /// [`Background::start`] with other limits.
    pub fn start_with(address: std::net::SocketAddr, limits: Limits) -> io::Result<Background> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let listener = runtime.block_on(async { bind(address) })?;
        let address = listener.local_addr()?;
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("server".to_string())
            .spawn(move || {
                runtime.block_on(run_with(
                    listener,
                    async move {
                        let _ = stopped.await;
                    },
                    limits,
                ))
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
