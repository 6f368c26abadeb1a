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
use crate::get::download::ProgressSink;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// A bar and the slowest transfers, redrawn in place (terminals).
    Bar,
    /// A heartbeat line every `--heartbeat` seconds.
    Lines,
    /// Nothing live.
    None,
}

named!(ProgressMode {
    Bar => "bar": "a bar and the slowest transfers, redrawn in place",
    Lines => "lines": "a heartbeat line every --heartbeat seconds",
    None => "none": "nothing live",
});

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
    /// Jobs handed to the strategy so far; the list's length once `input_done`.
    pub queued: AtomicU64,
    pub input_done: AtomicBool,
}

impl Live {
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

/// Bytes per second over the last few seconds.
struct RateWindow {
    samples: VecDeque<(Instant, u64)>,
}

impl RateWindow {
    fn rate(&mut self, bytes: u64) -> f64 {
        let now = Instant::now();
        self.samples.push_back((now, bytes));
        while self.samples.len() > 2
            && now.duration_since(self.samples[0].0) > Duration::from_secs(3)
        {
            self.samples.pop_front();
        }
        let (then, earlier) = self.samples[0];
        let seconds = now.duration_since(then).as_secs_f64();
        if seconds > 0.0 {
            (bytes - earlier) as f64 / seconds
        } else {
            0.0
        }
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
    let mut window = RateWindow {
        samples: VecDeque::new(),
    };
    loop {
        match stopped.recv_timeout(every) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        let (done, failed) = reporter.counts();
        let bytes = reporter.live.bytes();
        reporter.console().line(&format!(
            "[{:>6.1} s] {done} done, {failed} failed, {} in flight, {}, {}/s",
            reporter.elapsed().as_secs_f64(),
            reporter.live.in_flight(),
            human_bytes(bytes),
            human_bytes(window.rate(bytes) as u64)
        ));
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
    let mut window = RateWindow {
        samples: VecDeque::new(),
    };
    loop {
        let (done, failed) = reporter.counts();
        let queued = reporter.live.queued.load(Ordering::Relaxed);
        main.set_length(queued.max(done));
        main.set_position(done);
        let bytes = reporter.live.bytes();
        let rate = window.rate(bytes);
        let mut message = format!("{}  {}/s", human_bytes(bytes), human_bytes(rate as u64));
        if failed > 0 {
            message += &format!("  {failed} failed");
        }
        if reporter.live.input_done.load(Ordering::Relaxed) && done > 0 && queued > done {
            let per_file = reporter.elapsed().as_secs_f64() / done as f64;
            message += &format!("  ETA {:.0} s", per_file * (queued - done) as f64);
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
