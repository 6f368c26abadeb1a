//! The async driver (reqwest), for `async`: the same [`Transfer`] and retry
//! decision as the blocking one, sleeping on the timer instead of a thread.

use std::error::Error as StdError;
use std::sync::OnceLock;

use rustls::pki_types::CertificateDer;
use thread_local::ThreadLocal;

use super::error::{from_io_kind, io_kind_in_chain};
use super::retry::Attempts;
use super::transfer::{Head, Transfer};
use super::{Context, DownloadError, Outcome, Saved, Settings};
use crate::get::input::Job;

/// The async clients, each keeping up to `pool` idle connections per host:
/// one for plain http and one for https, made at the first https request with
/// the trusted roots, so a run that meets no https never loads the trust store
/// (see [`super::blocking::BlockingClient`]). Each runtime thread of the engine
/// has its own pair: a pooled connection is driven by a task on the runtime
/// that opened it, and a request from another thread would wake that one for
/// every read, or find its connection gone when that runtime ends first.
pub struct AsyncClient {
    pool: usize,
    plain: ThreadLocal<reqwest::Client>,
    secure: ThreadLocal<Result<reqwest::Client, String>>,
    /// Read once for all threads.
    roots: OnceLock<Result<Vec<CertificateDer<'static>>, String>>,
}

impl AsyncClient {
    /// This thread's client for a request to `url`. Loading the roots blocks
    /// this runtime thread once, for milliseconds.
    fn client(
        &self,
        url: &url::Url,
        settings: &Settings,
    ) -> Result<&reqwest::Client, DownloadError> {
        if url.scheme() != "https" {
            return self
                .plain
                .get_or_try(|| client(settings, self.pool, &[]))
                .map_err(|error| DownloadError::Network(format!("{error:#}")));
        }
        self.secure
            .get_or(|| {
                let roots = self
                    .roots
                    .get_or_init(|| settings.trust.roots().map_err(|error| error.to_string()))
                    .as_ref()?;
                client(settings, self.pool, roots).map_err(|error| error.to_string())
            })
            .as_ref()
            .map_err(|message| DownloadError::Trust(message.clone()))
    }
}

/// The async client for `pool` tasks. The plain client is made at once, on this
/// thread, so settings it refuses stop the run before it starts.
pub fn async_client(settings: &Settings, pool: usize) -> anyhow::Result<AsyncClient> {
    let plain = ThreadLocal::new();
    plain.get_or_try(|| client(settings, pool, &[]))?;
    Ok(AsyncClient {
        pool,
        plain,
        secure: ThreadLocal::new(),
        roots: OnceLock::new(),
    })
}

/// One client, trusting `roots` (and only them) over https.
fn client(
    settings: &Settings,
    pool: usize,
    roots: &[CertificateDer<'static>],
) -> anyhow::Result<reqwest::Client> {
    // reqwest is built without a bundled crypto provider; use the same ring-based one
    // ureq uses, so one TLS stack is compiled. Installing twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let roots = roots
        .iter()
        .map(|root| reqwest::Certificate::from_der(root.as_ref()))
        .collect::<reqwest::Result<Vec<_>>>()?;
    let mut builder = reqwest::Client::builder()
        // Proxies are decided by grab (see the proxy module), the same for
        // both clients: not read by reqwest from the environment.
        .no_proxy();
    if !settings.proxies.is_empty() {
        let proxies = settings.proxies.clone();
        builder = builder.proxy(reqwest::Proxy::custom(move |url| {
            proxies.for_url(url).cloned()
        }));
    }
    Ok(builder
        .tls_certs_only(roots)
        .danger_accept_invalid_certs(settings.trust.insecure)
        .connect_timeout(settings.connect_timeout)
        .read_timeout(settings.read_timeout())
        .pool_max_idle_per_host(pool.max(1))
        // Redirects are followed by the transfer, the same way for both clients.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(settings.user_agent.as_str())
        .build()?)
}

fn from_reqwest(error: &reqwest::Error, settings: &Settings) -> DownloadError {
    if error.is_timeout() {
        let seconds = if error.is_connect() {
            settings.connect_timeout
        } else {
            settings.read_timeout()
        };
        return DownloadError::TimedOut {
            seconds: seconds.as_secs(),
        };
    }
    if let Some(reason) = io_kind_in_chain(error).and_then(|kind| from_io_kind(kind, settings)) {
        return reason;
    }
    // The top-level message is generic ("error sending request"); the innermost
    // source says what happened.
    let mut innermost: &dyn StdError = error;
    while let Some(source) = innermost.source() {
        innermost = source;
    }
    DownloadError::Network(innermost.to_string())
}

async fn attempt_async(
    clients: &AsyncClient,
    transfer: &mut Transfer<'_>,
    settings: &Settings,
    attempts: &mut Attempts<'_>,
) -> Result<Saved, DownloadError> {
    let mut response = loop {
        let client = clients.client(transfer.url(), settings)?;
        let mut request = client.get(transfer.url().clone());
        for (name, value) in transfer.request_headers() {
            request = request.header(name, value);
        }
        if let Some(left) = transfer.time_left() {
            // reqwest's request timeout runs until the body's last byte.
            request = request.timeout(left);
        }
        let response = request
            .send()
            .await
            .map_err(|error| transfer.network_error(from_reqwest(&error, settings)))?;
        let location = response
            .headers()
            .get("location")
            .and_then(|value| value.to_str().ok());
        if !transfer.follow(response.status().as_u16(), location)? {
            break response;
        }
    };
    attempts.head_arrived();
    let final_url = Some(transfer.url().to_string());
    let headers = response.headers();
    let mut head = Head::read(response.status().as_u16(), final_url, |name| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string)
    });
    head.robots = super::blocking::every_value(headers, "x-robots-tag");
    if !transfer.head(head)? {
        return transfer.finish();
    }
    loop {
        // Writes go straight to the file: they land in the page cache in microseconds,
        // and a round-trip through tokio's blocking pool for each chunk costs more.
        match response.chunk().await {
            Ok(Some(bytes)) => {
                transfer.chunk(&bytes)?;
                let pause = transfer.pause(bytes.len());
                if !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
            }
            Ok(None) => break,
            Err(error) => return Err(transfer.network_error(from_reqwest(&error, settings))),
        }
    }
    transfer.finish()
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
