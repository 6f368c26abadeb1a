//! The async driver (reqwest), for `async`: the same [`Transfer`] and retry
//! decision as the blocking one, sleeping on the timer instead of a thread.

use std::error::Error as StdError;

use super::error::{from_io_kind, io_kind_in_chain};
use super::retry::Attempts;
use super::transfer::{Head, Transfer};
use super::{Context, DownloadError, Outcome, Saved, Settings};
use crate::get::input::Job;

/// The async client, keeping up to `pool` idle connections per host.
pub fn async_client(settings: &Settings, pool: usize) -> reqwest::Result<reqwest::Client> {
    // reqwest is built without a bundled crypto provider; use the same ring-based one
    // ureq uses, so one TLS stack is compiled. Installing twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .connect_timeout(settings.connect_timeout)
        .read_timeout(settings.idle_timeout)
        .pool_max_idle_per_host(pool.max(1))
        // Redirects are followed by the transfer, the same way for both clients.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(settings.user_agent())
        .build()
}

fn from_reqwest(error: &reqwest::Error, settings: &Settings) -> DownloadError {
    if error.is_timeout() {
        let seconds = if error.is_connect() {
            settings.connect_timeout
        } else {
            settings.idle_timeout
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
    client: &reqwest::Client,
    mut transfer: Transfer<'_>,
    settings: &Settings,
    attempts: &mut Attempts<'_>,
) -> Result<Saved, DownloadError> {
    let mut response = loop {
        let mut request = client.get(transfer.url().clone());
        for (name, value) in transfer.request_headers() {
            request = request.header(name, value);
        }
        let response = request
            .send()
            .await
            .map_err(|error| from_reqwest(&error, settings))?;
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
    transfer.head(head)?;
    loop {
        // Writes go straight to the file: they land in the page cache in microseconds,
        // and a round-trip through tokio's blocking pool for each chunk costs more.
        match response.chunk().await {
            Ok(Some(bytes)) => transfer.chunk(&bytes)?,
            Ok(None) => break,
            Err(error) => return Err(transfer.body_error(from_reqwest(&error, settings))),
        }
    }
    transfer.finish()
}

/// Downloads one job with the async client, retrying transient failures.
pub async fn fetch_async(client: &reqwest::Client, job: &Job, context: &Context) -> Outcome {
    let mut attempts = Attempts::new(job, context);
    loop {
        let transfer = attempts.next();
        let result = attempt_async(client, transfer, &context.settings, &mut attempts).await;
        match attempts.after(result) {
            Ok(outcome) => return outcome,
            Err(wait) => tokio::time::sleep(wait).await,
        }
    }
}
