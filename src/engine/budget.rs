//! A memory budget shared by the jobs of one run, so that a batch of large
//! items slows down instead of running out of memory.
//!
//! - `grab filter`: before an image is read whole and decoded, it reserves
//!   the bytes it will hold at its peak (the filter's
//!   `Opened::memory_needed`), in every thread and
//!   every worker process (a worker asks its parent over the pipe, and the
//!   parent holds the reservation until the job is over, or the worker dies);
//!   one larger than the whole budget is refused.
//! - `grab dataset`: a row reserves what a body is reckoned to weigh before
//!   its download is queued, and settles to the body's real size once it
//!   arrives; the reservation goes with the body until its sample is done.
//!
//! A reservation that does not fit waits, in arrival order, until others
//! give memory back.
//!
//! Arrival order matters: if small images could pass a large one that waits,
//! a steady stream of them would keep it waiting for ever.

use std::fs;
use std::sync::{Arc, Condvar, Mutex};

use serde::{Deserialize, Serialize};

/// Used when the system says nothing about its memory (no `/proc/meminfo`).
pub const FALLBACK_LIMIT: u64 = 1 << 30;

/// The default budget: half of the memory available when the run starts
/// (`MemAvailable` in `/proc/meminfo`, what the kernel can hand out without
/// swapping), leaving the rest to the downloads, the encoders' own state and
/// everything else on the machine.
pub fn default_limit() -> u64 {
    fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| available_memory(&text))
        .map_or(FALLBACK_LIMIT, |available| available / 2)
}

/// `MemAvailable` of a `/proc/meminfo` text, in bytes. Read by hand: the
/// system-information crates read every process and disk to tell one number.
fn available_memory(meminfo: &str) -> Option<u64> {
    let line = meminfo
        .lines()
        .find(|line| line.starts_with("MemAvailable:"))?;
    let kibibytes: u64 = line
        .trim_start_matches("MemAvailable:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kibibytes.saturating_mul(1024))
}

/// A byte budget shared by the images of one run.
#[derive(Debug)]
pub struct Budget {
    total: u64,
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Debug)]
struct State {
    /// Below zero when settled reservations hold more than the total.
    available: i64,
    /// The ticket the next reservation takes.
    next_ticket: u64,
    /// The ticket whose turn it is: reservations are granted in arrival order.
    serving: u64,
}

/// Bytes held from a [`Budget`], given back on drop.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<Budget>,
    bytes: u64,
}

/// A reservation larger than the whole budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverBudget {
    pub total: u64,
}

impl Budget {
    pub fn new(total: u64) -> Arc<Budget> {
        Arc::new(Budget {
            total,
            state: Mutex::new(State {
                available: total as i64,
                next_ticket: 0,
                serving: 0,
            }),
            changed: Condvar::new(),
        })
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    /// Holds `bytes`, waiting while they are not free or an earlier
    /// reservation waits; refused at once when they exceed the whole budget.
    pub fn reserve(self: &Arc<Self>, bytes: u64) -> Result<Reservation, OverBudget> {
        if bytes > self.total {
            return Err(OverBudget { total: self.total });
        }
        let mut state = crate::lock(&self.state);
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        while state.serving != ticket || state.available < bytes as i64 {
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        state.available -= bytes as i64;
        state.serving += 1;
        // The next in line may fit too.
        self.changed.notify_all();
        Ok(Reservation {
            budget: self.clone(),
            bytes,
        })
    }

    /// Bytes not held by any reservation.
    pub fn available(&self) -> u64 {
        crate::lock(&self.state).available.max(0) as u64
    }
}

impl Reservation {
    /// Holds `bytes` instead, at once: what was reckoned turned out to be
    /// this (a body that has arrived is in memory already, whatever the
    /// budget says). Holding more than the total only makes later
    /// reservations wait longer.
    pub fn settle(&mut self, bytes: u64) {
        let mut state = crate::lock(&self.budget.state);
        state.available += self.bytes as i64 - bytes as i64;
        self.bytes = bytes;
        drop(state);
        self.budget.changed.notify_all();
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        crate::lock(&self.budget.state).available += self.bytes as i64;
        self.budget.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::thread;
    use std::time::Duration;

    #[test]
    fn meminfo_gives_available_bytes() {
        let text =
            "MemTotal:       16303024 kB\nMemFree:         1000 kB\nMemAvailable:    8000000 kB\n";
        assert_eq!(available_memory(text), Some(8_000_000 * 1024));
        assert_eq!(available_memory("MemTotal: 5 kB\n"), None);
        assert!(default_limit() > 0);
    }

    #[test]
    fn over_the_whole_budget_is_refused_and_the_rest_given_back() {
        let budget = Budget::new(100);
        assert_eq!(budget.reserve(101).unwrap_err(), OverBudget { total: 100 });
        let held = budget.reserve(60).unwrap();
        assert_eq!(budget.available(), 40);
        drop(held);
        assert_eq!(budget.available(), 100);
        let _whole = budget.reserve(100).unwrap();
        assert_eq!(budget.available(), 0);
    }

    #[test]
    fn a_settled_reservation_holds_its_real_size_even_over_the_total() {
        let budget = Budget::new(100);
        let mut body = budget.reserve(10).unwrap();
        body.settle(150);
        assert_eq!(budget.available(), 0);
        let waiter = {
            let budget = budget.clone();
            thread::spawn(move || budget.reserve(60).map(|held| held.bytes()))
        };
        thread::sleep(Duration::from_millis(50));
        assert!(!waiter.is_finished(), "nothing may be reserved while over");
        body.settle(40);
        assert_eq!(waiter.join().unwrap(), Ok(60));
        drop(body);
        assert_eq!(budget.available(), 100);
    }

    #[test]
    fn reservations_wait_and_never_exceed_the_budget() {
        let budget = Budget::new(100);
        let held = Arc::new(AtomicU64::new(0));
        let most = Arc::new(AtomicU64::new(0));
        thread::scope(|scope| {
            for index in 0..8u64 {
                let (budget, held, most) = (budget.clone(), held.clone(), most.clone());
                scope.spawn(move || {
                    let bytes = 30 + index * 5;
                    let reservation = budget.reserve(bytes).unwrap();
                    let now = held.fetch_add(bytes, Ordering::SeqCst) + bytes;
                    most.fetch_max(now, Ordering::SeqCst);
                    thread::sleep(Duration::from_millis(5));
                    held.fetch_sub(bytes, Ordering::SeqCst);
                    drop(reservation);
                });
            }
        });
        let most = most.load(Ordering::SeqCst);
        assert!(most <= 100, "{most} bytes held at once");
        assert!(most >= 30, "nothing was held");
        assert_eq!(budget.available(), 100);
    }
}
