//! The blocking driver (ureq), for `sequential`, `threads` and worker processes:
//! a thin loop around the shared [`Transfer`] and retry decision.

use std::io::{self, Read};

use super::error::{from_io_kind, io_kind_in_chain};
use super::retry::Attempts;
use super::transfer::{Head, Transfer};
use super::{Context, DownloadError, Outcome, Saved, Settings};
use crate::get::input::Job;

/// A blocking client for downloads, keeping up to `pool` connections alive so
/// `pool` threads can each reuse one.
pub fn blocking_agent(settings: &Settings, pool: usize) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(settings.connect_timeout))
        .timeout_per_read(Some(settings.idle_timeout))
        .timeout_per_write(Some(settings.idle_timeout))
        .max_idle_connections(pool.max(1))
        .max_idle_connections_per_host(pool.max(1))
        // Redirects are followed by the transfer, the same way for both clients.
        .max_redirects(0)
        .user_agent(settings.user_agent())
        .build()
        .into()
}

fn from_ureq(error: &ureq::Error, settings: &Settings) -> DownloadError {
    match error {
        ureq::Error::Timeout(ureq::Timeout::Connect) => DownloadError::TimedOut {
            seconds: settings.connect_timeout.as_secs(),
        },
        ureq::Error::Timeout(_) => DownloadError::TimedOut {
            seconds: settings.idle_timeout.as_secs(),
        },
        ureq::Error::HostNotFound => DownloadError::Resolve,
        ureq::Error::TooManyRedirects => DownloadError::TooManyRedirects,
        ureq::Error::Io(io_error) => from_io(io_error, settings),
        other => io_kind_in_chain(other)
            .and_then(|kind| from_io_kind(kind, settings))
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
    from_io_kind(error.kind(), settings)
        .unwrap_or_else(|| DownloadError::Network(error.to_string()))
}

fn attempt_blocking(
    agent: &ureq::Agent,
    mut transfer: Transfer,
    settings: &Settings,
    attempts: &mut Attempts,
) -> Result<Saved, DownloadError> {
    let response = loop {
        let request = transfer.request_headers().into_iter().fold(
            agent.get(transfer.url().as_str()),
            |request, (name, value)| request.header(name, value),
        );
        let response = request
            .call()
            .map_err(|error| from_ureq(&error, settings))?;
        let location = header_of(&response, "location");
        if !transfer.follow(response.status().as_u16(), location.as_deref())? {
            break response;
        }
    };
    attempts.head_arrived();
    let final_url = Some(transfer.url().to_string());
    let mut head = Head::read(response.status().as_u16(), final_url, |name| {
        header_of(&response, name)
    });
    head.robots = every_value(response.headers(), "x-robots-tag");
    transfer.head(head)?;
    let mut reader = response.into_body().into_reader();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(count) => transfer.chunk(&buffer[..count])?,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(transfer.body_error(from_io(&error, settings))),
        }
    }
    transfer.finish()
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
pub fn fetch_blocking(agent: &ureq::Agent, job: &Job, context: &Context) -> Outcome {
    let mut attempts = Attempts::new(job, context);
    loop {
        let transfer = attempts.next();
        let result = attempt_blocking(agent, transfer, &context.settings, &mut attempts);
        match attempts.after(result) {
            Ok(outcome) => return outcome,
            Err(wait) => std::thread::sleep(wait),
        }
    }
}
