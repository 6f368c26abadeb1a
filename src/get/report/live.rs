//! The live view of a running batch: transfers in flight and bytes so far (fed by
//! every strategy through [`ProgressSink`]; worker processes forward theirs over the
//! pipe), drawn as a bar on a terminal or told as a heartbeat line every few seconds
//! elsewhere. The ticker thread lives exactly as long as the batch: [`Ticker::stop`]
//! ends and joins it, and a batch shorter than the heartbeat prints none.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Reporter;
use crate::console::human_bytes;
use crate::engine::ProgressMode;
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

    /// The time left at the pace since the start, when the total is known.
    fn eta(&self, done: u64, elapsed: Duration) -> Option<Duration> {
        let (total, known) = self.total();
        (known && done > 0 && total > done)
            .then(|| elapsed.mul_f64((total - done) as f64 / done as f64))
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
#[derive(Default)]
struct RateWindow {
    samples: VecDeque<(Instant, u64, u64)>,
}

impl RateWindow {
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

/// The thread that draws the bar or prints the heartbeat.
pub struct Ticker {
    stop: mpsc::Sender<()>,
    thread: thread::JoinHandle<()>,
}

/// Lines under the bar for the slowest transfers.
const SLOWEST_SHOWN: usize = 3;

impl Ticker {
    /// Starts the view for `mode`, or nothing for [`ProgressMode::None`].
    pub fn start(
        reporter: Arc<Reporter>,
        mode: ProgressMode,
        heartbeat: Duration,
    ) -> Option<Ticker> {
        let (stop, stopped) = mpsc::channel();
        let thread = match mode {
            ProgressMode::None => return None,
            ProgressMode::Lines => thread::Builder::new()
                .name("heartbeat".to_string())
                .spawn(move || heartbeat_loop(&reporter, &stopped, heartbeat))
                .ok()?,
            ProgressMode::Bar => thread::Builder::new()
                .name("progress".to_string())
                .spawn(move || bar_loop(&reporter, &stopped))
                .ok()?,
        };
        Some(Ticker { stop, thread })
    }

    /// Ends the view (the bar is cleared) and waits for its thread.
    pub fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

fn heartbeat_loop(reporter: &Reporter, stopped: &mpsc::Receiver<()>, every: Duration) {
    let mut window = RateWindow::default();
    loop {
        match stopped.recv_timeout(every) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        let (done, failed) = reporter.counts();
        let bytes = reporter.live.bytes();
        let elapsed = reporter.elapsed();
        let (bytes_rate, files_rate) = window.rates(bytes, done);
        let mut line = format!(
            "[{:>6.1} s] {} done, {failed} failed, {} in flight, {}, {}/s, {files_rate:.1} files/s",
            elapsed.as_secs_f64(),
            reporter.live.done_of_total(done),
            reporter.live.in_flight(),
            human_bytes(bytes),
            human_bytes(bytes_rate as u64),
        );
        if let Some(left) = reporter.live.eta(done, elapsed) {
            line += &format!(", {}", eta_text(left));
        }
        reporter.console().line(&line);
    }
}

fn bar_loop(reporter: &Reporter, stopped: &mpsc::Receiver<()>) {
    let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
    let style = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} files  {msg}",
    )
    .expect("the template is valid")
    .progress_chars("=> ");
    let main = multi.add(ProgressBar::new(0).with_style(style));
    let line_style = ProgressStyle::with_template("{msg}").expect("the template is valid");
    let lines: Vec<ProgressBar> = (0..SLOWEST_SHOWN)
        .map(|_| multi.add(ProgressBar::new(0).with_style(line_style.clone())))
        .collect();
    reporter.console().attach(multi.clone());
    let mut window = RateWindow::default();
    loop {
        let (done, failed) = reporter.counts();
        let (total, _) = reporter.live.total();
        main.set_length(total.max(done));
        main.set_position(done);
        let bytes = reporter.live.bytes();
        let (bytes_rate, files_rate) = window.rates(bytes, done);
        let mut message = format!(
            "{}  {}/s  {files_rate:.0} files/s",
            human_bytes(bytes),
            human_bytes(bytes_rate as u64)
        );
        if failed > 0 {
            message += &format!("  {failed} failed");
        }
        if let Some(left) = reporter.live.eta(done, reporter.elapsed()) {
            message += &format!("  {}", eta_text(left));
        }
        main.set_message(message);
        main.tick();
        let slowest = reporter.live.slowest(SLOWEST_SHOWN);
        for (index, line) in lines.iter().enumerate() {
            line.set_message(slowest.get(index).cloned().unwrap_or_default());
        }
        match stopped.recv_timeout(Duration::from_millis(100)) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => break,
        }
    }
    reporter.console().detach();
    for line in &lines {
        line.finish_and_clear();
    }
    main.finish_and_clear();
    let _ = multi.clear();
}
