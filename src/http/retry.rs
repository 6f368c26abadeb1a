//! Retries: which failures get another attempt and after how long (the same
//! decision for every client), and the attempt loop both drivers share.

use std::time::{Duration, Instant};

use super::error::OUT_OF_FILES_PATIENCE;
use super::{Complete, Context, DownloadError, Outcome, Saved, Settings, Transfer, Verdict};
use crate::http::request::{Job, Plan};

/// The longest exponential backoff between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// How long to wait before attempt `attempts + 1`, or `None` to give up: full-jitter
/// exponential backoff (a random wait up to `retry_wait x 2^(attempts-1)`, capped),
/// but never less than a `Retry-After` the server sent (itself capped).
pub fn retry_delay(settings: &Settings, attempts: u32, error: &DownloadError) -> Option<Duration> {
    if attempts > settings.retries || !error.is_transient() {
        return None;
    }
    let ceiling = settings
        .retry_wait
        .saturating_mul(1 << (attempts - 1).min(16))
        .min(MAX_BACKOFF);
    let jittered = ceiling.mul_f64(fastrand::f64());
    match error {
        DownloadError::Http {
            retry_after: Some(seconds),
            ..
        } => Some(jittered.max(Duration::from_secs(*seconds).min(MAX_RETRY_AFTER))),
        _ => Some(jittered),
    }
}

/// The attempt loop both drivers share, as a state machine so the blocking one can
/// sleep on its thread and the async one on the timer.
pub(super) struct Attempts<'a> {
    job: &'a Job,
    context: &'a Context,
    started: Instant,
    made: u32,
    first_byte: Option<Duration>,
    /// What the next attempt continues: the batch's plan at first, then what
    /// the last attempt left (a kept part to resume, a name to reuse).
    plan: Option<Plan>,
    /// Body bytes received over the attempts so far.
    fetched: u64,
    /// Bytes of an earlier run (`-c`) still at the start of the part.
    carried: u64,
    /// Which of the job's sources the attempts go to (0: its URL, then its
    /// mirrors), and how many attempts that source has had.
    source: usize,
    made_on_source: u32,
    /// Time spent waiting for a file descriptor, which no attempt counts.
    starved: Duration,
    /// A split attempt found the server's ranges wrong: later attempts fetch
    /// on one connection, from the start.
    one_connection: bool,
}

impl<'a> Attempts<'a> {
    pub(super) fn new(job: &'a Job, context: &'a Context) -> Self {
        Attempts {
            job,
            context,
            started: Instant::now(),
            made: 0,
            first_byte: None,
            plan: job.plan.clone(),
            fetched: 0,
            carried: job
                .plan
                .as_ref()
                .and_then(|plan| plan.resume.as_ref())
                .map_or(0, |resume| resume.offset),
            source: 0,
            made_on_source: 0,
            starved: Duration::ZERO,
            one_connection: false,
        }
    }

    /// The next attempt's transfer: it resumes what the last one kept.
    pub(super) fn next(&mut self) -> Transfer<'a> {
        self.made += 1;
        self.made_on_source += 1;
        let url = self.job.source(self.source).unwrap_or(&self.job.url);
        let transfer = Transfer::new(self.job, self.context, self.plan.take(), url);
        match self.one_connection {
            true => transfer.on_one_connection(),
            false => transfer,
        }
    }

    /// After an attempt: the outcome, or how long to wait before the next one.
    pub(super) fn after(
        &mut self,
        mut transfer: Transfer<'a>,
        mut result: Result<Saved, DownloadError>,
    ) -> Result<Outcome, Duration> {
        self.fetched += transfer.arrived();
        if transfer.started_over() {
            self.carried = 0;
        }
        let mut falls_back = false;
        if let Err(error) = &result {
            self.plan = transfer.next_plan(error);
            if transfer.ranges_failed_split(error) {
                // The pieces' ranges cannot be trusted: the part starts over.
                falls_back = true;
                self.one_connection = true;
                if let Some(plan) = &mut self.plan {
                    plan.resume = None;
                }
            }
        }
        drop(transfer);
        // Bytes streamed out cannot be taken back: no attempt, no mirror, after them.
        let streamed_out =
            matches!(self.context.body, super::BodySink::Stream(_)) && self.fetched > 0;
        // The fall-back to one connection is the same attempt made plainly,
        // at once; it happens once, as splitting is off from here.
        if falls_back && !streamed_out && !self.context.interrupt.stopping() {
            self.made -= 1;
            self.made_on_source -= 1;
            tracing::debug!(url = %self.job.url, "ranges answered wrong: fetching on one connection");
            return Err(Duration::ZERO);
        }
        // Out of descriptors: others' downloads will give theirs back. The
        // attempt never reached the server, so it does not count.
        if let Err(DownloadError::TooManyOpenFiles(_)) = &result
            && !self.context.interrupt.stopping()
            && self.starved < OUT_OF_FILES_PATIENCE
        {
            self.made -= 1;
            self.made_on_source -= 1;
            let wait = Duration::from_millis(20 + fastrand::u64(..200));
            self.starved += wait;
            tracing::debug!(url = %self.job.url, wait_ms = wait.as_millis() as u64, "waiting for a file descriptor");
            return Err(wait);
        }
        if let Err(error) = &result
            && !streamed_out
            && !self.context.interrupt.stopping()
            && let Some(wait) = retry_delay(&self.context.settings, self.made_on_source, error)
        {
            tracing::debug!(url = %self.job.url, attempt = self.made, %error, wait_ms = wait.as_millis() as u64, "retrying");
            return Err(wait);
        }
        // This source failed for good: the next mirror gets its own attempts.
        if let Err(error) = &result
            && !streamed_out
            && !self.context.interrupt.stopping()
            && !error.is_local()
            && !matches!(
                error,
                DownloadError::OutputClosed | DownloadError::NotModified
            )
            && self.job.source(self.source + 1).is_some()
        {
            self.source += 1;
            self.made_on_source = 0;
            tracing::debug!(url = %self.job.url, mirror = %self.job.source(self.source).unwrap_or(&self.job.url), %error, "trying the next mirror");
            return Err(Duration::ZERO);
        }
        match &result {
            Ok(saved) => {
                tracing::debug!(url = %self.job.url, name = saved.name, bytes = saved.bytes, attempts = self.made, "saved")
            }
            Err(error) => {
                tracing::debug!(url = %self.job.url, %error, attempts = self.made, "failed")
            }
        }
        if let Ok(saved) = &mut result
            && self.carried > 0
        {
            saved.resumed_from = Some(self.carried);
        }
        Ok(Outcome {
            job: self.job.clone(),
            verdict: match (result, &self.job.plan) {
                (Ok(saved), _) => Verdict::Saved(saved),
                // `-N` and a 304: the file already complete is the server's.
                (Err(DownloadError::NotModified), Some(plan)) if plan.conditional.is_some() => {
                    let conditional = plan.conditional.as_ref().expect("checked");
                    Verdict::Skipped(Complete {
                        name: plan.name.clone(),
                        bytes: conditional.size,
                        sha256: conditional.sha256.clone(),
                    })
                }
                (Err(error), _) => Verdict::Failed(error),
            },
            elapsed: self.started.elapsed(),
            attempts: self.made,
            first_byte: self.first_byte,
            worker: String::new(),
            started_at: Duration::ZERO,
            fetched: self.fetched,
        })
    }

    /// Notes when a response head arrived.
    pub(super) fn head_arrived(&mut self) {
        self.first_byte = Some(self.started.elapsed());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::error::tests::http;

    #[test]
    fn backoff_is_capped_jittered_and_honours_retry_after() {
        let mut settings = Settings::new("/tmp");
        settings.retries = 3;
        settings.retry_wait = Duration::from_millis(100);
        for attempts in 1..=3 {
            let wait = retry_delay(&settings, attempts, &DownloadError::ConnectionReset).unwrap();
            assert!(
                wait <= Duration::from_millis(100 << (attempts - 1)),
                "{attempts}: {wait:?}"
            );
        }
        assert_eq!(
            retry_delay(&settings, 4, &DownloadError::ConnectionReset),
            None
        );
        assert_eq!(retry_delay(&settings, 1, &http(404, None)), None);
        let wait = retry_delay(&settings, 1, &http(503, Some(2))).unwrap();
        assert!(wait >= Duration::from_secs(2));
        let wait = retry_delay(&settings, 1, &http(503, Some(100_000))).unwrap();
        assert_eq!(wait, MAX_RETRY_AFTER);
        settings.retry_wait = Duration::from_secs(3600);
        assert!(retry_delay(&settings, 3, &DownloadError::ConnectionReset).unwrap() <= MAX_BACKOFF);
    }
}
