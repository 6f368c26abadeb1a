//! The async driver (reqwest), for `async`: the same [`Transfer`] and retry
//! decision as the blocking one, sleeping on the timer instead of a thread.
//! It speaks HTTP/2 when a server offers it by ALPN, many requests to a host
//! multiplexed on one connection; the blocking strategies borrow it for that
//! (see [`super::blocking`]).

use std::collections::HashSet;
use std::error::Error as StdError;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::header::{ACCEPT, HeaderMap, HeaderName, HeaderValue, USER_AGENT};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use rustls::pki_types::CertificateDer;
use thread_local::ThreadLocal;

use super::error::{
    certificate_failure, from_io_kind, io_kind_in_chain, out_of_files_in_chain, resolve_failure,
};
use super::proxy;
use super::resolve::{ForHyper, ForReqwest, Resolver};
use super::retry::Attempts;
use super::settings::HttpVersion;
use super::split::{self, Claim, Pieces, Step};
use super::transfer::{Head, PiecesStart, Transfer};
use super::{Context, DownloadError, Outcome, Saved, Settings};
use crate::http::request::Job;

/// The async clients, each keeping up to `pool` idle connections per host:
/// one for plain http and one for https, made at the first https request with
/// the trusted roots, so a run that meets no https never loads the trust store
/// (see [`super::blocking::BlockingClient`]). Each runtime thread of the engine
/// has its own pair: a pooled connection is driven by a task on the runtime
/// that opened it, and a request from another thread would wake that one for
/// every read, or find its connection gone when that runtime ends first. The
/// blocking strategies' client has one set for all threads instead, on the
/// one runtime that drives its connections.
pub struct AsyncClient {
    pool: usize,
    /// One for every thread's clients: one cache, one query a host.
    resolver: Arc<Resolver>,
    /// For `http://` with no proxy: hyper's pooled client alone. grab follows
    /// redirects and retries itself, and reqwest's layers for them cost about
    /// a tenth of the CPU of a small file (its redirect layer parses every URL
    /// again); reqwest keeps https and proxies, where its work is needed.
    direct: Holder<Direct>,
    plain: Holder<reqwest::Client>,
    /// For https, and for anything through an `https://` proxy (whose
    /// certificate is checked against the same roots).
    secure: Holder<Result<reqwest::Client, String>>,
    /// Read once for all threads.
    roots: OnceLock<Result<Vec<CertificateDer<'static>>, String>>,
    /// For the blocking strategies: origins (`https://host:port`) that
    /// answered in HTTP/1.1, which ureq then serves.
    http1_origins: Option<Mutex<HashSet<String>>>,
}

/// A value per runtime thread, or one for all threads (boxed: a ThreadLocal
/// is half a kilobyte of buckets).
enum Holder<T: Send> {
    PerThread(Box<ThreadLocal<T>>),
    Shared(OnceLock<T>),
}

impl<T: Send + Sync> Holder<T> {
    fn new(shared: bool) -> Holder<T> {
        match shared {
            true => Holder::Shared(OnceLock::new()),
            false => Holder::PerThread(Box::default()),
        }
    }

    fn get_or(&self, make: impl FnOnce() -> T) -> &T {
        match self {
            Holder::PerThread(each) => each.get_or(make),
            Holder::Shared(one) => one.get_or_init(make),
        }
    }

    fn get_or_try<E>(&self, make: impl FnOnce() -> Result<T, E>) -> Result<&T, E> {
        match self {
            Holder::PerThread(each) => each.get_or_try(make),
            Holder::Shared(one) => {
                if let Some(value) = one.get() {
                    return Ok(value);
                }
                // Two threads may both make one; the first set is kept.
                let value = make()?;
                Ok(one.get_or_init(|| value))
            }
        }
    }
}

impl AsyncClient {
    /// This thread's client for a request to `url`. Loading the roots blocks
    /// this runtime thread once, for milliseconds.
    fn client(
        &self,
        url: &url::Url,
        settings: &Settings,
    ) -> Result<&reqwest::Client, DownloadError> {
        let through_tls_proxy = settings.proxies.for_url(url).is_some_and(proxy::is_tls);
        if url.scheme() != "https" && !through_tls_proxy {
            return self
                .plain
                .get_or_try(|| client(settings, &self.resolver, self.pool, None))
                .map_err(|error| DownloadError::Network(format!("{error:#}")));
        }
        self.secure
            .get_or(|| {
                let roots = self
                    .roots
                    .get_or_init(|| settings.trust.roots().map_err(|error| error.to_string()))
                    .as_ref()?;
                client(settings, &self.resolver, self.pool, Some(roots))
                    .map_err(|error| error.to_string())
            })
            .as_ref()
            .map_err(|message| DownloadError::Trust(message.clone()))
    }

    /// Whether `url`'s origin is known to answer in HTTP/1.1 (only learned
    /// by the blocking strategies' client).
    pub(super) fn speaks_http1(&self, url: &url::Url) -> bool {
        self.http1_origins
            .as_ref()
            .is_some_and(|origins| crate::lock(origins).contains(&origin(url)))
    }

    fn learn_version(&self, url: &url::Url, version: reqwest::Version) {
        if let Some(origins) = &self.http1_origins
            && version < reqwest::Version::HTTP_2
        {
            crate::lock(origins).insert(origin(url));
        }
    }
}

/// `scheme://host:port`: what one connection (and one ALPN answer) serves.
fn origin(url: &url::Url) -> String {
    format!(
        "{}://{}:{}",
        url.scheme(),
        url.host_str().unwrap_or(""),
        url.port_or_known_default().unwrap_or(0)
    )
}

/// The async client for `pool` tasks, looking names up with `resolver`. The
/// plain client is made at once, on this thread, so settings it refuses stop
/// the run before it starts.
pub fn async_client(
    settings: &Settings,
    resolver: &Arc<Resolver>,
    pool: usize,
) -> anyhow::Result<AsyncClient> {
    made(settings, resolver, pool, false)
}

/// The client the blocking strategies send requests through when they need
/// HTTP/2 or an https proxy: one set of connections for every thread, driven
/// by one runtime, learning which origins answer in HTTP/1.1.
pub(super) fn shared_async_client(
    settings: &Settings,
    resolver: &Arc<Resolver>,
    pool: usize,
) -> anyhow::Result<AsyncClient> {
    made(settings, resolver, pool, true)
}

fn made(
    settings: &Settings,
    resolver: &Arc<Resolver>,
    pool: usize,
    shared: bool,
) -> anyhow::Result<AsyncClient> {
    let plain = Holder::new(shared);
    plain.get_or_try(|| client(settings, resolver, pool, None))?;
    Ok(AsyncClient {
        pool,
        resolver: resolver.clone(),
        direct: Holder::new(shared),
        plain,
        secure: Holder::new(shared),
        roots: OnceLock::new(),
        http1_origins: shared.then(Mutex::default),
    })
}

/// The most a connection's read buffer grows to. hyper's default, about
/// 400 KiB, is reached by every connection of a run of large bodies whose
/// reader falls behind (`grab dataset` while its image threads are the
/// bottleneck): 64 connections held some 38 MB of buffers beside the bodies
/// themselves (heaptrack, bench/dataset.sh with IMAGES=large). 64 KiB reads
/// cost a few more system calls per megabyte and nothing on small files,
/// whose buffers never grow.
const READ_BUFFER_MOST: usize = 64 * 1024;

/// hyper's client for plain http, and the User-Agent it sends.
struct Direct {
    client: HyperClient<HttpConnector<ForHyper>, Empty<Bytes>>,
    user_agent: Result<HeaderValue, hyper::header::InvalidHeaderValue>,
}

/// The direct client for plain http, with reqwest's settings as [`client`]
/// makes them: connect timeout, no Nagle delay, TCP keepalive, `pool` idle
/// connections a host, names looked up by `resolver`.
fn direct_client(settings: &Settings, resolver: &Arc<Resolver>, pool: usize) -> Direct {
    let mut connector = HttpConnector::new_with_resolver(ForHyper(resolver.clone()));
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(settings.timeouts.connect));
    // reqwest's: a pooled connection a middlebox dropped is found out.
    connector.set_keepalive(Some(Duration::from_secs(15)));
    Direct {
        client: HyperClient::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_max_idle_per_host(pool.max(1))
            .http1_max_buf_size(READ_BUFFER_MOST)
            .build(connector),
        user_agent: HeaderValue::from_str(&settings.user_agent),
    }
}

/// One client, trusting `roots` (and only them) over https, or for plain
/// `http://` without them; names (proxies' too) looked up by `resolver`.
fn client(
    settings: &Settings,
    resolver: &Arc<Resolver>,
    pool: usize,
    roots: Option<&[CertificateDer<'static>]>,
) -> anyhow::Result<reqwest::Client> {
    // reqwest is built without a bundled crypto provider; use the same ring-based one
    // ureq uses, so one TLS stack is compiled. Installing twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let secure = roots.is_some();
    let roots = roots
        .unwrap_or_default()
        .iter()
        .map(|root| reqwest::Certificate::from_der(root.as_ref()))
        .collect::<reqwest::Result<Vec<_>>>()?;
    let mut builder = reqwest::Client::builder()
        // Proxies are decided by grab (see the proxy module), the same for
        // both clients: not read by reqwest from the environment.
        .no_proxy()
        .dns_resolver(Arc::new(ForReqwest(resolver.clone())));
    if !settings.proxies.is_empty() {
        let proxies = settings.proxies.clone();
        builder = builder.proxy(reqwest::Proxy::custom(move |url| {
            proxies.for_url(url).cloned()
        }));
    }
    // Over TLS reqwest offers h2 and http/1.1 by ALPN and speaks what the
    // server picks; prior knowledge is for cleartext only, as curl's.
    builder = match settings.http_version {
        HttpVersion::Http1Only => builder.http1_only(),
        HttpVersion::Http2PriorKnowledge if !secure => builder.http2_prior_knowledge(),
        _ => builder,
    };
    Ok(builder
        .tls_certs_only(roots)
        .danger_accept_invalid_certs(settings.trust.insecure)
        .connect_timeout(settings.timeouts.connect)
        .read_timeout(settings.timeouts.read())
        .pool_max_idle_per_host(pool.max(1))
        // Redirects are followed by the transfer, the same way for both clients.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(settings.user_agent.as_str())
        .build()?)
}

fn from_reqwest(error: &reqwest::Error, settings: &Settings) -> DownloadError {
    if error.is_timeout() {
        let seconds = if error.is_connect() {
            settings.timeouts.connect
        } else {
            settings.timeouts.read()
        };
        return DownloadError::TimedOut {
            seconds: seconds.as_secs(),
        };
    }
    from_error_chain(error, settings)
}

/// A response from either client, read the same way.
enum Response {
    Reqwest(reqwest::Response),
    Hyper {
        response: hyper::Response<Incoming>,
        /// The read timeout, reset at every chunk as reqwest's is.
        idle: Pin<Box<tokio::time::Sleep>>,
    },
}

impl Response {
    fn status(&self) -> u16 {
        match self {
            Response::Reqwest(response) => response.status().as_u16(),
            Response::Hyper { response, .. } => response.status().as_u16(),
        }
    }

    fn version(&self) -> reqwest::Version {
        match self {
            Response::Reqwest(response) => response.version(),
            Response::Hyper { response, .. } => response.version(),
        }
    }

    fn headers(&self) -> &HeaderMap {
        match self {
            Response::Reqwest(response) => response.headers(),
            Response::Hyper { response, .. } => response.headers(),
        }
    }

    /// The next piece of the body; `None` at its end.
    async fn chunk(
        &mut self,
        transfer: &Transfer<'_>,
        settings: &Settings,
    ) -> Result<Option<Bytes>, DownloadError> {
        match self {
            Response::Reqwest(response) => response
                .chunk()
                .await
                .map_err(|error| from_reqwest(&error, settings)),
            Response::Hyper { response, idle } => {
                let wait = read_wait(transfer, settings);
                idle.as_mut().reset(tokio::time::Instant::now() + wait);
                loop {
                    let frame = tokio::select! {
                        frame = response.body_mut().frame() => frame,
                        () = idle.as_mut() => return Err(read_timed_out(settings)),
                    };
                    match frame {
                        None => return Ok(None),
                        Some(Err(error)) => return Err(from_error_chain(&error, settings)),
                        // Trailers carry nothing for the file.
                        Some(Ok(frame)) => match frame.into_data() {
                            Ok(bytes) if !bytes.is_empty() => return Ok(Some(bytes)),
                            _ => continue,
                        },
                    }
                }
            }
        }
    }
}

/// How long the next read may wait: the read timeout, or less when
/// `--max-time` ends sooner.
fn read_wait(transfer: &Transfer<'_>, settings: &Settings) -> Duration {
    let wait = settings.timeouts.read();
    transfer.time_left().map_or(wait, |left| left.min(wait))
}

fn read_timed_out(settings: &Settings) -> DownloadError {
    DownloadError::TimedOut {
        seconds: settings.timeouts.read().as_secs(),
    }
}

/// An error by the kind of I/O error in its chain; else by its innermost
/// source, since the top-level message is generic ("error sending request").
fn from_error_chain(error: &(dyn StdError + 'static), settings: &Settings) -> DownloadError {
    if let Some(reason) = resolve_failure(error)
        .or_else(|| certificate_failure(error))
        .or_else(|| out_of_files_in_chain(error))
    {
        return reason;
    }
    if let Some(reason) = io_kind_in_chain(error).and_then(|kind| from_io_kind(kind, settings)) {
        return reason;
    }
    let mut innermost: &dyn StdError = error;
    while let Some(source) = innermost.source() {
        innermost = source;
    }
    DownloadError::Network(innermost.to_string())
}

/// Sends one request to the transfer's URL: over the plain hyper client for
/// `http://` with no proxy in HTTP/1.1, else over reqwest.
async fn send(
    clients: &AsyncClient,
    transfer: &Transfer<'_>,
    settings: &Settings,
) -> Result<Response, DownloadError> {
    let url = transfer.url();
    // reqwest turns credentials in a URL into an Authorization header.
    let plain = url.scheme() == "http" && url.username().is_empty() && url.password().is_none();
    let http1 = settings.http_version != HttpVersion::Http2PriorKnowledge;
    if plain && http1 && settings.proxies.for_url(url).is_none() {
        let direct = clients
            .direct
            .get_or(|| direct_client(settings, &clients.resolver, clients.pool));
        return send_direct(direct, transfer, settings).await;
    }
    let client = clients.client(url, settings)?;
    let mut request = client.get(url.clone());
    for (name, value) in transfer.request_headers() {
        request = request.header(name, value);
    }
    if let Some(left) = transfer.time_left() {
        // reqwest's request timeout runs until the body's last byte.
        request = request.timeout(left);
    }
    request
        .send()
        .await
        .map(Response::Reqwest)
        .map_err(|error| from_reqwest(&error, settings))
}

/// [`send`] over hyper's client.
async fn send_direct(
    Direct { client, user_agent }: &Direct,
    transfer: &Transfer<'_>,
    settings: &Settings,
) -> Result<Response, DownloadError> {
    let url = transfer.url();
    let mut headers = HeaderMap::new();
    for (name, value) in transfer.request_headers() {
        let (name, value) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        );
        match (name, value) {
            (Ok(name), Ok(value)) => headers.append(name, value),
            (Err(error), _) => return Err(DownloadError::Network(error.to_string())),
            (_, Err(error)) => return Err(DownloadError::Network(error.to_string())),
        };
    }
    // As reqwest's defaults: what `-H` sets wins.
    if !headers.contains_key(USER_AGENT) {
        let user_agent = user_agent
            .as_ref()
            .map_err(|error| DownloadError::Network(error.to_string()))?;
        headers.insert(USER_AGENT, user_agent.clone());
    }
    if !headers.contains_key(ACCEPT) {
        headers.insert(ACCEPT, HeaderValue::from_static("*/*"));
    }
    let uri: hyper::Uri = url
        .as_str()
        .parse()
        .map_err(|error: hyper::http::uri::InvalidUri| DownloadError::Network(error.to_string()))?;
    let mut request = hyper::Request::new(Empty::new());
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    // The head must come within the read timeout, as every read of the
    // body must: one timer, reset for each. The connect timeout is the
    // connector's; a connection slower than the read timeout is cut at it.
    let wait = read_wait(transfer, settings);
    let mut idle = Box::pin(tokio::time::sleep(wait));
    let response = tokio::select! {
        response = client.request(request) => response,
        () = idle.as_mut() => return Err(read_timed_out(settings)),
    };
    match response {
        Ok(response) => Ok(Response::Hyper { response, idle }),
        Err(error)
            if error.is_connect() && io_kind_in_chain(&error) == Some(io::ErrorKind::TimedOut) =>
        {
            Err(DownloadError::TimedOut {
                seconds: settings.timeouts.connect.as_secs(),
            })
        }
        Err(error) => Err(from_error_chain(&error, settings)),
    }
}

/// Sends the transfer's request, following redirects: the response head and
/// the response, whose body is still to read.
async fn open_async(
    clients: &AsyncClient,
    transfer: &mut Transfer<'_>,
    settings: &Settings,
) -> Result<(Head, Response), DownloadError> {
    let response = loop {
        let response = send(clients, transfer, settings)
            .await
            .map_err(|error| transfer.network_error(error))?;
        transfer.keep_cookies(&super::blocking::every_value(
            response.headers(),
            "set-cookie",
        ));
        let location = response
            .headers()
            .get("location")
            .and_then(|value| value.to_str().ok());
        if !transfer.follow(response.status(), location)? {
            break response;
        }
    };
    clients.learn_version(transfer.url(), response.version());
    let final_url = Some(transfer.url().to_string());
    let headers = response.headers();
    let mut head = Head::read(response.status(), final_url, |name| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string)
    });
    head.robots = super::blocking::every_value(headers, "x-robots-tag");
    Ok((head, response))
}

pub(super) async fn attempt_async(
    clients: &AsyncClient,
    transfer: &mut Transfer<'_>,
    settings: &Settings,
    attempts: &mut Attempts<'_>,
) -> Result<Saved, DownloadError> {
    let (head, mut response) = open_async(clients, transfer, settings).await?;
    attempts.head_arrived();
    if !transfer.head(head)? {
        return transfer.finish();
    }
    if let Some(start) = transfer.pieces()? {
        split_async(clients, transfer, start, response, settings).await?;
        return transfer.finish();
    }
    loop {
        // Writes go straight to the file: they land in the page cache in microseconds,
        // and a round-trip through tokio's blocking pool for each chunk costs more.
        match response.chunk(transfer, settings).await {
            Ok(Some(bytes)) => {
                transfer.chunk(&bytes)?;
                let pause = transfer.pause(bytes.len());
                if !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
            }
            Ok(None) => break,
            Err(error) => return Err(transfer.network_error(error)),
        }
    }
    transfer.finish()
}

/// A split download's connections ([`super::split`]) as futures of the task
/// that owns the file, polled together on its runtime thread: the first
/// reads on the response `first` began, the others (as many as `--split`,
/// the pieces and `--per-host` allow) make their own requests.
async fn split_async(
    clients: &AsyncClient,
    transfer: &mut Transfer<'_>,
    start: PiecesStart,
    first: Response,
    settings: &Settings,
) -> Result<(), DownloadError> {
    let (job, context, url) = transfer.sharing();
    let pieces = Pieces::new(transfer, start, job, context, &url);
    // Taken before any other connection claims a piece, so the first
    // response's body is never dropped for a piece another took.
    let first = pieces.first().map(|claim| (claim, first));
    let mut connections = vec![connection_async(
        clients,
        &pieces,
        0,
        first,
        settings,
        (None, pieces.connection()),
    )];
    for connection in 1..pieces.connections() {
        let Some(permit) = split::host_permit(&pieces, connection) else {
            break;
        };
        connections.push(connection_async(
            clients,
            &pieces,
            connection,
            None,
            settings,
            (permit, pieces.connection()),
        ));
    }
    let keeper = async {
        while pieces.keep_record() {
            tokio::time::sleep(split::KEEPER_TICK).await;
        }
    };
    // The keeper is dropped mid-sleep once the connections are over, so the
    // download does not wait out its tick.
    {
        let connections = std::pin::pin!(futures_util::future::join_all(connections));
        let keeper = std::pin::pin!(keeper);
        if let futures_util::future::Either::Right(((), connections)) =
            futures_util::future::select(connections, keeper).await
        {
            connections.await;
        }
    }
    pieces.finish()
}

/// One connection of a split download: the first response's piece when it
/// has one, then piece after piece until none is left for it. Holds its
/// `--per-host` slot, if any, and its place among the running until then.
async fn connection_async(
    clients: &AsyncClient,
    pieces: &Pieces<'_, '_>,
    connection: usize,
    first: Option<(Claim, Response)>,
    settings: &Settings,
    _held: (Option<super::task::HostPermit>, split::Running<'_>),
) {
    if let Some((claim, response)) = first {
        let source = pieces.first_source();
        let request = pieces.request(pieces.source_url(source), &claim);
        // The first response runs to the end of the file, past its piece.
        if let Err(error) = read_piece(pieces, &claim, response, false, &request, settings).await
            && let Some(wait) = pieces.failed(&claim, source, error)
        {
            tokio::time::sleep(wait).await;
        }
    }
    while let Some((source, claim, mut request)) = pieces.next(connection) {
        let result = match open_async(clients, &mut request, settings).await {
            Ok((head, response)) => match pieces.check(&head, &claim) {
                Ok(()) => {
                    let bounded = head.content_length == Some(claim.end - claim.start);
                    read_piece(pieces, &claim, response, bounded, &request, settings).await
                }
                Err(error) => Err(error),
            },
            Err(error) => Err(error),
        };
        if let Err(error) = result {
            match pieces.failed(&claim, source, error) {
                Some(wait) => tokio::time::sleep(wait).await,
                None => return,
            }
        }
    }
}

/// Reads a piece's body into the part until the piece is in (or cut short by
/// another connection taking its second half); an error when the body
/// fails or ends first. A `bounded` response (one that ends where the
/// piece does) is read to its end when that end is already there, so its
/// connection serves the next piece's request instead of being closed.
async fn read_piece(
    pieces: &Pieces<'_, '_>,
    claim: &Claim,
    mut response: Response,
    bounded: bool,
    request: &Transfer<'_>,
    settings: &Settings,
) -> Result<(), DownloadError> {
    loop {
        match response.chunk(request, settings).await {
            Ok(Some(bytes)) => match pieces.write(claim, &bytes) {
                Step::More(pause) if !pause.is_zero() => tokio::time::sleep(pause).await,
                Step::More(_) => {}
                Step::Done => {
                    // Polled once, never waited for: a body whose every
                    // byte came has its end ready. The client gives the
                    // connection back to its pool on a task of its own: a
                    // yield lets that run before the next piece's request
                    // looks for an idle connection (else it races a connect
                    // of a new one, which then idles).
                    if bounded {
                        let _ = futures_util::FutureExt::now_or_never(
                            response.chunk(request, settings),
                        );
                        drop(response);
                        tokio::task::yield_now().await;
                    }
                    return Ok(());
                }
                Step::Cut | Step::Stop => return Ok(()),
            },
            Ok(None) => return Err(split::ended_early(claim)),
            Err(error) => return Err(request.network_error(error)),
        }
    }
}

/// Downloads one job with the async client, retrying transient failures.
pub async fn fetch_async(client: &AsyncClient, job: &Job, context: &Context) -> Outcome {
    let mut attempts = Attempts::new(job, context);
    loop {
        let mut transfer = attempts.next();
        let result = attempt_async(client, &mut transfer, &context.settings, &mut attempts).await;
        match attempts.after(transfer, result) {
            Ok(outcome) => return outcome,
            Err(wait) => tokio::time::sleep(wait).await,
        }
    }
}
