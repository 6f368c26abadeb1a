//! The live view of a running batch: transfers in flight and bytes so far (fed by
//! every strategy through [`ProgressSink`]; worker processes forward theirs over the
//! pipe), drawn as a bar on a terminal or told as a heartbeat line every few seconds
//! elsewhere, by the engine's one ticker ([`crate::engine::view`]).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::Reporter;
use crate::console::{Console, human_bytes};
use crate::engine::view::View;
use crate::http::ProgressSink;

struct Flight {
    label: String,
    received: u64,
    total: Option<u64>,
    started: Instant,
}

/// What is in flight now, and how much has arrived in all.
#[derive(Default)]
pub struct Live {
    next_id: AtomicU64,
    bytes: AtomicU64,
    flights: Mutex<HashMap<u64, Flight>>,
    /// Jobs handed to the strategy so far.
    pub queued: AtomicU64,
    /// URLs read so far, to download or found complete: the list's length
    /// once `input_done`.
    pub read: AtomicU64,
    /// Lines read that proved repeats, and invalid lines, so far.
    pub duplicates: AtomicU64,
    pub invalid: AtomicU64,
    pub input_done: AtomicBool,
    /// The URL lines counted ahead of reading ([`crate::get::input::Estimate`]),
    /// once `expected_known`.
    pub expected: AtomicU64,
    pub expected_known: AtomicBool,
}

impl Live {
    /// The URLs in the list and whether that is their true number: exact once
    /// the input is read whole, else the count made ahead of reading (less the
    /// repeats and invalid lines found so far), else only those read so far.
    pub fn total(&self) -> (u64, bool) {
        let read = self.read.load(Ordering::Relaxed);
        if self.input_done.load(Ordering::Relaxed) {
            return (read, true);
        }
        if self.expected_known.load(Ordering::Relaxed) {
            let expected = self
                .expected
                .load(Ordering::Relaxed)
                .saturating_sub(self.duplicates.load(Ordering::Relaxed))
                .saturating_sub(self.invalid.load(Ordering::Relaxed));
            return (expected.max(read), true);
        }
        (read, false)
    }

    /// `120 of 1000` when the total is known, else `120`.
    fn done_of_total(&self, done: u64) -> String {
        match self.total() {
            (total, true) => format!("{done} of {total}"),
            (_, false) => done.to_string(),
        }
    }

    /// The time left, once the list's length is known. From bytes when sizes
    /// are: what the files in flight still lack, plus the files not started at
    /// the average size seen so far, at `byte_rate`; so a few large files in
    /// flight get an ETA before any is done. Else from files, at the pace since
    /// the start.
    fn eta(&self, done: u64, elapsed: Duration, byte_rate: f64) -> Option<Duration> {
        let (total, known) = self.total();
        if !known || total <= done {
            return None;
        }
        let flights = crate::lock(&self.flights);
        let (mut lacking, mut sized, mut sized_bytes, mut in_flight_bytes) = (0, 0, 0, 0);
        for flight in flights.values() {
            in_flight_bytes += flight.received;
            if let Some(size) = flight.total {
                lacking += size.saturating_sub(flight.received);
                sized += 1;
                sized_bytes += size;
            }
        }
        let without_size = flights.len() as u64 - sized;
        let not_started = total.saturating_sub(done + flights.len() as u64);
        drop(flights);
        // What the files already done weighed: all received less what is in flight.
        let done_bytes = self.bytes().saturating_sub(in_flight_bytes);
        let weighed = done + sized;
        if byte_rate > 0.0 && weighed > 0 && done_bytes + sized_bytes > 0 {
            let average = (done_bytes + sized_bytes) as f64 / weighed as f64;
            let left = lacking as f64 + (not_started + without_size) as f64 * average;
            return Duration::try_from_secs_f64(left / byte_rate).ok();
        }
        (done > 0).then(|| elapsed.mul_f64((total - done) as f64 / done as f64))
    }

    pub fn in_flight(&self) -> usize {
        crate::lock(&self.flights).len()
    }

    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// The `count` slowest transfers running for more than a moment: their labels
    /// with progress and rate.
    fn slowest(&self, count: usize) -> Vec<String> {
        let flights = crate::lock(&self.flights);
        let mut running: Vec<(f64, String)> = flights
            .values()
            .filter(|flight| flight.started.elapsed() > Duration::from_millis(500))
            .map(|flight| {
                let seconds = flight.started.elapsed().as_secs_f64();
                let rate = flight.received as f64 / seconds;
                let done = match flight.total {
                    Some(total) if total > 0 => {
                        format!("{:>3.0}%", 100.0 * flight.received as f64 / total as f64)
                    }
                    _ => human_bytes(flight.received),
                };
                (
                    rate,
                    format!(
                        "  {}  {done}  {}/s  {seconds:.0} s",
                        flight.label,
                        human_bytes(rate as u64)
                    ),
                )
            })
            .collect();
        running.sort_by(|first, second| first.0.total_cmp(&second.0));
        running
            .into_iter()
            .take(count)
            .map(|(_, line)| line)
            .collect()
    }
}

impl ProgressSink for Reporter {
    fn started(&self, label: &str, total: Option<u64>) -> u64 {
        let id = self.live.next_id.fetch_add(1, Ordering::Relaxed);
        let flight = Flight {
            label: label.to_string(),
            received: 0,
            total,
            started: Instant::now(),
        };
        crate::lock(&self.live.flights).insert(id, flight);
        id
    }

    fn advanced(&self, id: u64, bytes: u64) {
        self.live.bytes.fetch_add(bytes, Ordering::Relaxed);
        if let Some(flight) = crate::lock(&self.live.flights).get_mut(&id) {
            flight.received += bytes;
        }
    }

    fn ended(&self, id: u64) {
        crate::lock(&self.live.flights).remove(&id);
    }
}

/// Bytes and files per second over the last few seconds.
struct RateWindow {
    samples: VecDeque<(Instant, u64, u64)>,
}

impl RateWindow {
    /// A window from the totals of now, so the first line after it has a rate
    /// (a heartbeat's first line used to say `0 B/s` whatever was arriving).
    fn starting(bytes: u64, files: u64) -> RateWindow {
        RateWindow {
            samples: VecDeque::from([(Instant::now(), bytes, files)]),
        }
    }

    /// (bytes, files) per second, given the running totals.
    fn rates(&mut self, bytes: u64, files: u64) -> (f64, f64) {
        let now = Instant::now();
        self.samples.push_back((now, bytes, files));
        while self.samples.len() > 2
            && now.duration_since(self.samples[0].0) > Duration::from_secs(3)
        {
            self.samples.pop_front();
        }
        let (then, earlier_bytes, earlier_files) = self.samples[0];
        let seconds = now.duration_since(then).as_secs_f64();
        if seconds > 0.0 {
            (
                (bytes - earlier_bytes) as f64 / seconds,
                (files - earlier_files) as f64 / seconds,
            )
        } else {
            (0.0, 0.0)
        }
    }
}

/// `ETA 1 min 5 s`, `ETA 12 s`.
fn eta_text(left: Duration) -> String {
    let seconds = left.as_secs_f64().round() as u64;
    match seconds {
        0..60 => format!("ETA {seconds} s"),
        60..3600 => format!("ETA {} min {} s", seconds / 60, seconds % 60),
        _ => format!("ETA {} h {} min", seconds / 3600, seconds % 3600 / 60),
    }
}

/// Lines under the bar for the slowest transfers.
const SLOWEST_SHOWN: usize = 3;

/// What `grab get` shows live: files done of the list, bytes and rates, the
/// ETA, and under the bar the slowest transfers.
pub struct BatchView {
    reporter: Arc<Reporter>,
    window: RateWindow,
    main: Option<ProgressBar>,
    slowest: Vec<ProgressBar>,
}

impl BatchView {
    /// The view of `reporter`'s batch, its rates counted from now.
    pub fn new(reporter: Arc<Reporter>) -> BatchView {
        let window = RateWindow::starting(reporter.live.bytes(), reporter.counts().0);
        BatchView {
            reporter,
            window,
            main: None,
            slowest: Vec::new(),
        }
    }
}

impl View for BatchView {
    fn console(&self) -> &Console {
        self.reporter.console()
    }

    fn heartbeat(&mut self) -> String {
        let (reporter, live) = (&self.reporter, &self.reporter.live);
        let (done, failed) = reporter.counts();
        let bytes = live.bytes();
        let elapsed = reporter.elapsed();
        let (bytes_rate, files_rate) = self.window.rates(bytes, done);
        let mut line = format!(
            "[{:>6.1} s] {} done, {failed} failed, {} in flight, {}, {}/s, {files_rate:.1} files/s",
            elapsed.as_secs_f64(),
            live.done_of_total(done),
            live.in_flight(),
            human_bytes(bytes),
            human_bytes(bytes_rate as u64),
        );
        if let Some(left) = live.eta(done, elapsed, bytes_rate) {
            line += &format!(", {}", eta_text(left));
        }
        line
    }

    fn add_bars(&mut self, display: &MultiProgress) {
        let style = ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} files  {msg}",
        )
        .expect("the template is valid")
        .progress_chars("=> ");
        self.main = Some(display.add(ProgressBar::new(0).with_style(style)));
        let line_style = ProgressStyle::with_template("{msg}").expect("the template is valid");
        self.slowest = (0..SLOWEST_SHOWN)
            .map(|_| display.add(ProgressBar::new(0).with_style(line_style.clone())))
            .collect();
    }

    fn draw(&mut self) {
        let Some(main) = &self.main else { return };
        let (reporter, live) = (&self.reporter, &self.reporter.live);
        let (done, failed) = reporter.counts();
        let (total, _) = live.total();
        main.set_length(total.max(done));
        main.set_position(done);
        let bytes = live.bytes();
        let (bytes_rate, files_rate) = self.window.rates(bytes, done);
        let mut message = format!(
            "{}  {}/s  {files_rate:.0} files/s",
            human_bytes(bytes),
            human_bytes(bytes_rate as u64)
        );
        if failed > 0 {
            message += &format!("  {failed} failed");
        }
        if let Some(left) = live.eta(done, reporter.elapsed(), bytes_rate) {
            message += &format!("  {}", eta_text(left));
        }
        main.set_message(message);
        main.tick();
        let slowest = live.slowest(SLOWEST_SHOWN);
        for (index, line) in self.slowest.iter().enumerate() {
            line.set_message(slowest.get(index).cloned().unwrap_or_default());
        }
    }

    fn clear(&mut self) {
        for line in &self.slowest {
            line.finish_and_clear();
        }
        if let Some(main) = &self.main {
            main.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    /// A list of `total` URLs, read whole, with these (received, size) in flight
    /// and `bytes` received in all.
    fn live(total: u64, flights: &[(u64, Option<u64>)], bytes: u64) -> Live {
        let live = Live::default();
        live.read.store(total, Ordering::Relaxed);
        live.input_done.store(true, Ordering::Relaxed);
        live.bytes.store(bytes, Ordering::Relaxed);
        for (id, &(received, size)) in flights.iter().enumerate() {
            crate::lock(&live.flights).insert(
                id as u64,
                Flight {
                    label: format!("f{id}"),
                    received,
                    total: size,
                    started: Instant::now(),
                },
            );
        }
        live
    }

    #[test]
    fn large_files_in_flight_get_an_eta_from_bytes_before_any_is_done() {
        let live = live(4, &[(20 * MIB, Some(100 * MIB)); 4], 80 * MIB);
        let left = live.eta(0, Duration::from_secs(10), 8.0 * MIB as f64);
        // 4 x 80 MiB still to come at 8 MiB/s.
        assert_eq!(left, Some(Duration::from_secs(40)));
    }

    #[test]
    fn files_not_started_count_at_the_average_size_seen() {
        // Two done (2 MiB between them) and one of 4 MiB in flight, 1 MiB in:
        // 2 MiB on average, so 3 MiB + 7 x 2 MiB left at 1 MiB/s.
        let live = live(10, &[(MIB, Some(4 * MIB))], 3 * MIB);
        let left = live.eta(2, Duration::from_secs(5), MIB as f64);
        assert_eq!(left, Some(Duration::from_secs(17)));
    }

    #[test]
    fn without_sizes_or_bytes_the_eta_counts_files() {
        let live = live(4, &[], 0);
        assert_eq!(live.eta(0, Duration::from_secs(10), 0.0), None);
        assert_eq!(
            live.eta(2, Duration::from_secs(10), 0.0),
            Some(Duration::from_secs(10))
        );
        assert_eq!(live.eta(4, Duration::from_secs(10), 0.0), None);
    }

    #[test]
    fn the_first_rate_counts_from_when_the_view_started() {
        let mut window = RateWindow::starting(1_000, 0);
        std::thread::sleep(Duration::from_millis(50));
        let (bytes_rate, files_rate) = window.rates(1_000 + 50_000, 1);
        assert!(
            bytes_rate > 0.0 && files_rate > 0.0,
            "{bytes_rate} {files_rate}"
        );
    }
}
