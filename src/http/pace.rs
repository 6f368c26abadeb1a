//! `--limit-rate`: how long a transfer waits after receiving bytes so that it,
//! or the whole run, stays under a rate. Written by hand: a virtual clock under
//! a mutex is a dozen lines, waits the same way on a thread and on the async
//! timer (the caller sleeps the returned duration), and needs none of what a
//! rate-limiting crate such as governor adds (keyed limits, cells, jitter).

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A rate in bytes per second, shared by whoever takes from it.
#[derive(Debug)]
pub struct Pace {
    bytes_per_second: u64,
    /// When the bytes taken so far will have been paid for.
    paid_until: Mutex<Option<Instant>>,
}

impl Pace {
    pub fn new(bytes_per_second: u64) -> Pace {
        Pace {
            bytes_per_second: bytes_per_second.max(1),
            paid_until: Mutex::new(None),
        }
    }

    /// `bytes` arrived: how long to wait before reading more. Time not used
    /// (a pause between transfers) is not saved up for a later burst.
    pub fn take(&self, bytes: u64) -> Duration {
        let now = Instant::now();
        let cost = Duration::from_secs_f64(bytes as f64 / self.bytes_per_second as f64);
        let mut paid_until = crate::lock(&self.paid_until);
        let start = paid_until.map_or(now, |paid| paid.max(now));
        let until = start + cost;
        *paid_until = Some(until);
        until - now
    }

    pub fn bytes_per_second(&self) -> u64 {
        self.bytes_per_second
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_paid_for_in_order() {
        let pace = Pace::new(1000);
        let first = pace.take(500);
        assert!(first > Duration::from_millis(450) && first <= Duration::from_millis(500));
        // The next taker waits for the first to be paid for, then its own.
        let second = pace.take(1000);
        assert!(second > Duration::from_millis(1400), "{second:?}");
    }
}
