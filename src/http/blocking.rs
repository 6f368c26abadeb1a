//! The blocking driver (ureq), for `sequential`, `threads` and worker processes:
//! a thin loop around the shared [`Transfer`] and retry decision.
//!
//! ureq speaks HTTP/1.1 only. Rather than a third client, an attempt that
//! may meet HTTP/2 is sent through the async driver ([`super::asynchronous`])
//! from the calling thread, on one runtime this client keeps
//! ([`tokio::runtime::Runtime::block_on`]): its connections are shared by every
//! thread, so a host that speaks h2 gets one connection carrying each
//! thread's request as a stream. Which hosts those are is learned from the
//! answers: an https origin goes through the async driver (offering h2 and
//! http/1.1 by ALPN) until one of its responses comes in HTTP/1.1, and from
//! then on through ureq, the leaner path for HTTP/1.1 (no hop between threads
//! for every chunk). `--http1.1` keeps everything on ureq; cleartext h2
//! (`--http2-prior-knowledge`) and anything through an `https://` proxy go
//! through the async driver (see [`super::proxy`] for why the proxy). One
//! response policy either way: both drivers feed the same [`Transfer`].

use std::io::{self, Read};
use std::sync::{Arc, OnceLock};

use rustls::pki_types::CertificateDer;

use super::asynchronous::{AsyncClient, attempt_async, shared_async_client};
use super::error::{
    certificate_failure, certificate_words, from_io_kind, io_kind_in_chain, out_of_files_in_chain,
    resolve_failure,
};
use super::proxy;
use super::resolve::{ForUreq, Resolver};
use super::retry::Attempts;
use super::settings::HttpVersion;
use super::split::{self, Claim, Pieces, Step};
use super::transfer::{Head, PiecesStart, Transfer};
use super::{Context, DownloadError, Outcome, Saved, Settings};
use crate::http::request::Job;

/// The blocking clients for downloads, each keeping up to `pool` connections
/// alive so `pool` threads can each reuse one: one for plain http, made at
/// once, and one for https, made at the first https request with the trusted
/// roots. A run that meets no https never loads the trust store (hundreds of
/// files when SSL_CERT_DIR is set: tens of milliseconds).
pub struct BlockingClient {
    pool: usize,
    resolver: Arc<Resolver>,
    plain: ureq::Agent,
    secure: OnceLock<Result<ureq::Agent, String>>,
    /// Made at the first request that needs it.
    bridge: OnceLock<Result<Bridge, String>>,
}

/// The async driver as the blocking strategies use it: its client and the
/// runtime that drives its connections (one thread: the calling threads
/// poll their own requests).
struct Bridge {
    /// Always `Some` until dropped.
    runtime: Option<tokio::runtime::Runtime>,
    client: AsyncClient,
}

impl Bridge {
    fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime
            .as_ref()
            .expect("the runtime lives as long as the bridge")
            .block_on(future)
    }
}

impl Drop for Bridge {
    /// Without waiting for the connections' tasks, so a client dropped where
    /// blocking is not allowed (inside another runtime) does not panic.
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl BlockingClient {
    /// Whether a request to `url` goes through the async driver.
    fn bridged(&self, url: &url::Url, settings: &Settings) -> bool {
        if settings.proxies.for_url(url).is_some_and(proxy::is_tls) {
            return true;
        }
        match (settings.http_version, url.scheme()) {
            (HttpVersion::Http1Only, _) => false,
            (HttpVersion::Http2PriorKnowledge, "http") => true,
            (_, "https") => !self
                .bridge
                .get()
                .and_then(|bridge| bridge.as_ref().ok())
                .is_some_and(|bridge| bridge.client.speaks_http1(url)),
            _ => false,
        }
    }

    fn bridge(&self, settings: &Settings) -> Result<&Bridge, DownloadError> {
        self.bridge
            .get_or_init(|| {
                let runtime = super::one_thread_runtime("grab-http2", "the HTTP/2 runtime")?;
                let client = shared_async_client(settings, &self.resolver, self.pool)
                    .map_err(|error| format!("{error:#}"))?;
                Ok(Bridge {
                    runtime: Some(runtime),
                    client,
                })
            })
            .as_ref()
            .map_err(|message| DownloadError::Network(message.clone()))
    }

    /// The agent for a request to `url`.
    fn agent(&self, url: &url::Url, settings: &Settings) -> Result<&ureq::Agent, DownloadError> {
        if url.scheme() != "https" {
            return Ok(&self.plain);
        }
        self.secure
            .get_or_init(|| {
                let roots = settings.trust.roots().map_err(|error| error.to_string())?;
                Ok(agent(settings, &self.resolver, self.pool, Some(&roots)))
            })
            .as_ref()
            .map_err(|message| DownloadError::Trust(message.clone()))
    }
}

/// The blocking client for `pool` threads, looking names up with `resolver`
/// (the async driver it borrows for HTTP/2 too).
pub fn blocking_agent(
    settings: &Settings,
    resolver: &Arc<Resolver>,
    pool: usize,
) -> BlockingClient {
    BlockingClient {
        pool,
        resolver: resolver.clone(),
        plain: agent(settings, resolver, pool, None),
        secure: OnceLock::new(),
        bridge: OnceLock::new(),
    }
}

/// One agent; with `roots` it trusts them (and only them) over https.
fn agent(
    settings: &Settings,
    resolver: &Arc<Resolver>,
    pool: usize,
    roots: Option<&[CertificateDer<'static>]>,
) -> ureq::Agent {
    let mut tls = ureq::tls::TlsConfig::builder().disable_verification(settings.trust.insecure);
    if let Some(roots) = roots {
        let roots: Vec<ureq::tls::Certificate<'static>> = roots
            .iter()
            .map(|root| ureq::tls::Certificate::from_der(root.as_ref()).to_owned())
            .collect();
        tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&roots));
    }
    let config = ureq::Agent::config_builder()
        .tls_config(tls.build())
        // Proxies are decided by grab (see the proxy module), not read by ureq.
        .proxy(None)
        .http_status_as_error(false)
        .timeout_connect(Some(settings.timeouts.connect))
        .timeout_per_read(Some(settings.timeouts.read()))
        .timeout_per_write(Some(settings.timeouts.idle))
        .max_idle_connections(pool.max(1))
        .max_idle_connections_per_host(pool.max(1))
        // Redirects are followed by the transfer, the same way for both clients.
        .max_redirects(0)
        .user_agent(settings.user_agent.as_str())
        .build();
    proxy::agent_with_proxies(config, &settings.proxies, ForUreq(resolver.clone()))
}

fn from_ureq(error: &ureq::Error, settings: &Settings) -> DownloadError {
    match error {
        ureq::Error::Timeout(ureq::Timeout::Connect) => DownloadError::TimedOut {
            seconds: settings.timeouts.connect.as_secs(),
        },
        ureq::Error::Timeout(_) => DownloadError::TimedOut {
            seconds: settings.timeouts.read().as_secs(),
        },
        ureq::Error::HostNotFound => DownloadError::Resolve,
        ureq::Error::TooManyRedirects => DownloadError::TooManyRedirects,
        ureq::Error::Io(io_error) => from_io(io_error, settings),
        ureq::Error::Rustls(rustls::Error::InvalidCertificate(reason)) => {
            DownloadError::Certificate(certificate_words(reason))
        }
        other => resolve_failure(other)
            .or_else(|| certificate_failure(other))
            .or_else(|| out_of_files_in_chain(other))
            .or_else(|| io_kind_in_chain(other).and_then(|kind| from_io_kind(kind, settings)))
            .unwrap_or_else(|| DownloadError::Network(other.to_string())),
    }
}

fn from_io(error: &io::Error, settings: &Settings) -> DownloadError {
    // ureq hands its own errors through `Read` wrapped in io::Error.
    if let Some(inner) = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<ureq::Error>())
    {
        return from_ureq(inner, settings);
    }
    if let Some(reason) = resolve_failure(error)
        .or_else(|| certificate_failure(error))
        .or_else(|| out_of_files_in_chain(error))
    {
        return reason;
    }
    from_io_kind(error.kind(), settings)
        .unwrap_or_else(|| DownloadError::Network(error.to_string()))
}

/// Sends the transfer's request, following redirects: the response head and
/// the response, whose body is still to read.
fn open_blocking(
    client: &BlockingClient,
    transfer: &mut Transfer,
    settings: &Settings,
) -> Result<(Head, ureq::http::Response<ureq::Body>), DownloadError> {
    let response = loop {
        let agent = client.agent(transfer.url(), settings)?;
        let request = transfer.request_headers().into_iter().fold(
            agent.get(transfer.url().as_str()),
            |request, (name, value)| request.header(name, value),
        );
        let tunnel = proxy::connect_proxy(&settings.proxies, transfer.url());
        let time_left = transfer.time_left();
        let request = match (time_left, tunnel) {
            (None, None) => request,
            // ureq's global timeout covers the call and the body read after it.
            (time_left, tunnel) => request
                .config()
                .timeout_global(time_left)
                .proxy(tunnel)
                .build(),
        };
        let response = request
            .call()
            .map_err(|error| transfer.network_error(from_ureq(&error, settings)))?;
        transfer.keep_cookies(&every_value(response.headers(), "set-cookie"));
        let location = header_of(&response, "location");
        if !transfer.follow(response.status().as_u16(), location.as_deref())? {
            break response;
        }
    };
    let final_url = Some(transfer.url().to_string());
    let mut head = Head::read(response.status().as_u16(), final_url, |name| {
        header_of(&response, name)
    });
    head.robots = every_value(response.headers(), "x-robots-tag");
    Ok((head, response))
}

fn attempt_blocking(
    client: &BlockingClient,
    transfer: &mut Transfer,
    settings: &Settings,
    attempts: &mut Attempts,
) -> Result<Saved, DownloadError> {
    let (head, response) = open_blocking(client, transfer, settings)?;
    attempts.head_arrived();
    if !transfer.head(head)? {
        return transfer.finish();
    }
    let mut reader = response.into_body().into_reader();
    if let Some(start) = transfer.pieces()? {
        split_blocking(client, transfer, start, reader, settings)?;
        return transfer.finish();
    }
    let mut buffer = vec![0u8; transfer.read_size()];
    loop {
        match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(count) => {
                transfer.chunk(&buffer[..count])?;
                let pause = transfer.pause(count);
                if !pause.is_zero() {
                    std::thread::sleep(pause);
                }
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(transfer.network_error(from_io(&error, settings))),
        }
    }
    transfer.finish()
}

/// A split download's connections ([`super::split`]) on scoped threads of
/// this one: the first reads on the response `first` began, the others
/// (as many as `--split`, the pieces and `--per-host` allow) make their own
/// requests. Returns once every connection is done and the part is whole or
/// the download failed.
fn split_blocking(
    client: &BlockingClient,
    transfer: &mut Transfer,
    start: PiecesStart,
    first: impl Read + Send,
    settings: &Settings,
) -> Result<(), DownloadError> {
    let (job, context, url) = transfer.sharing();
    let pieces = Pieces::new(transfer, start, job, context, &url);
    // Taken before any other connection claims a piece, so the first
    // response's body is never dropped for a piece another took.
    let first = pieces.first().map(|claim| (claim, first));
    std::thread::scope(|scope| {
        let first_running = pieces.connection();
        for connection in 1..pieces.connections() {
            let Some(permit) = split::host_permit(&pieces, connection) else {
                break;
            };
            let (pieces, running) = (&pieces, pieces.connection());
            let spawned = std::thread::Builder::new()
                .name(format!("piece-{connection}"))
                .spawn_scoped(scope, move || {
                    let (_permit, _running) = (permit, running);
                    connection_blocking(
                        client,
                        pieces,
                        connection,
                        None::<(Claim, io::Empty)>,
                        settings,
                    )
                });
            if spawned.is_err() {
                // No thread for it: the connections running take its share.
                break;
            }
        }
        let pieces = &pieces;
        // The record's keeper: without a thread for it, the record is
        // still saved as bytes arrive, only not during a stall.
        let _ = std::thread::Builder::new()
            .name("pieces-record".to_string())
            .spawn_scoped(scope, move || {
                while pieces.keep_record() {
                    pieces.wait_while_running(split::KEEPER_TICK);
                }
            });
        connection_blocking(client, pieces, 0, first, settings);
        drop(first_running);
    });
    pieces.finish()
}

/// One connection of a split download: the first response's piece when it
/// has one, then piece after piece until none is left for it.
fn connection_blocking(
    client: &BlockingClient,
    pieces: &Pieces,
    connection: usize,
    first: Option<(Claim, impl Read)>,
    settings: &Settings,
) {
    if let Some((claim, reader)) = first {
        let source = pieces.first_source();
        let url = pieces.source_url(source).clone();
        let request = pieces.request(&url, &claim);
        // The first response runs to the end of the file, past its piece.
        if let Err(error) = read_piece(pieces, &claim, reader, false, &request, settings)
            && let Some(wait) = pieces.failed(&claim, source, error)
        {
            std::thread::sleep(wait);
        }
    }
    while let Some((source, claim, mut request)) = pieces.next(connection) {
        let result = open_blocking(client, &mut request, settings).and_then(|(head, response)| {
            pieces.check(&head, &claim)?;
            let bounded = head.content_length == Some(claim.end - claim.start);
            let reader = response.into_body().into_reader();
            read_piece(pieces, &claim, reader, bounded, &request, settings)
        });
        if let Err(error) = result {
            match pieces.failed(&claim, source, error) {
                Some(wait) => std::thread::sleep(wait),
                None => return,
            }
        }
    }
}

/// Reads a piece's body into the part until the piece is in (or cut short by
/// another connection taking its second half); an error when the body
/// fails or ends first. A `bounded` response (one that ends where the
/// piece does) is read to its end, so its connection goes back to the pool
/// for the next piece's request instead of being closed.
fn read_piece(
    pieces: &Pieces,
    claim: &Claim,
    mut reader: impl Read,
    bounded: bool,
    request: &Transfer,
    settings: &Settings,
) -> Result<(), DownloadError> {
    let mut buffer = vec![0u8; request.read_size()];
    loop {
        match reader.read(&mut buffer) {
            Ok(0) => return Err(split::ended_early(claim)),
            Ok(count) => match pieces.write(claim, &buffer[..count]) {
                Step::More(pause) if !pause.is_zero() => std::thread::sleep(pause),
                Step::More(_) => {}
                Step::Done => {
                    // ureq pools a connection once a read finds its body's
                    // end; with every byte of the length in, that read does
                    // no I/O.
                    if bounded {
                        let _ = reader.read(&mut buffer);
                    }
                    return Ok(());
                }
                Step::Cut | Step::Stop => return Ok(()),
            },
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(request.network_error(from_io(&error, settings))),
        }
    }
}

/// Every value of a header that may be repeated, as text.
pub(super) fn every_value(headers: &ureq::http::HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .map(str::to_string)
        .collect()
}

fn header_of(response: &ureq::http::Response<ureq::Body>, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string)
}

/// Downloads one job with a blocking client, retrying transient failures.
pub fn fetch_blocking(client: &BlockingClient, job: &Job, context: &Context) -> Outcome {
    let mut attempts = Attempts::new(job, context);
    loop {
        let mut transfer = attempts.next();
        let settings = &context.settings;
        let result = match client.bridged(transfer.url(), settings) {
            true => client.bridge(settings).and_then(|bridge| {
                bridge.block_on(attempt_async(
                    &bridge.client,
                    &mut transfer,
                    settings,
                    &mut attempts,
                ))
            }),
            false => attempt_blocking(client, &mut transfer, settings, &mut attempts),
        };
        match attempts.after(transfer, result) {
            Ok(outcome) => return outcome,
            Err(wait) => std::thread::sleep(wait),
        }
    }
}
