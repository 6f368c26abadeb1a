//! The one live view of a run, for every command: a bar redrawn in place on a
//! terminal, or a heartbeat line every few seconds elsewhere, drawn by a thread
//! that lives exactly as long as the run ([`Ticker::stop`] ends and joins it, and
//! a run shorter than the heartbeat prints none). A command says what to show
//! through [`View`]; the thread, its pace, and handing the bars to the console
//! (so notices print above them) are written here once.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressDrawTarget};

use super::ProgressMode;
use crate::console::Console;

/// How often the bar is redrawn: often enough to look live, rarely enough to
/// cost nothing next to the run.
const BAR_EVERY: Duration = Duration::from_millis(100);

/// What a command's live view shows.
pub trait View: Send + 'static {
    /// The console the view writes through.
    fn console(&self) -> &Console;
    /// The heartbeat line (`--progress lines`), asked for every heartbeat.
    fn heartbeat(&mut self) -> String;
    /// Bar mode: adds the view's bars under `display`, once, before the first draw.
    fn add_bars(&mut self, display: &MultiProgress);
    /// Bar mode: brings the bars up to date.
    fn draw(&mut self);
    /// Bar mode: clears the bars at the end of the run.
    fn clear(&mut self);
}

/// The thread that draws the bar or prints the heartbeat.
pub struct Ticker {
    stop: mpsc::Sender<()>,
    thread: thread::JoinHandle<()>,
}

impl Ticker {
    /// Starts the view for `mode`, or nothing for [`ProgressMode::None`].
    pub fn start(view: impl View, mode: ProgressMode, heartbeat: Duration) -> Option<Ticker> {
        let (stop, stopped) = mpsc::channel();
        let thread = match mode {
            ProgressMode::None => return None,
            ProgressMode::Lines => thread::Builder::new()
                .name("heartbeat".to_string())
                .spawn(move || heartbeat_loop(view, &stopped, heartbeat))
                .ok()?,
            ProgressMode::Bar => thread::Builder::new()
                .name("progress".to_string())
                .spawn(move || bar_loop(view, &stopped))
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

/// Whether the run went on for `wait` without asking the view to stop.
fn still_running(stopped: &mpsc::Receiver<()>, wait: Duration) -> bool {
    matches!(stopped.recv_timeout(wait), Err(RecvTimeoutError::Timeout))
}

fn heartbeat_loop(mut view: impl View, stopped: &mpsc::Receiver<()>, every: Duration) {
    while still_running(stopped, every) {
        let line = view.heartbeat();
        view.console().line(&line);
    }
}

fn bar_loop(mut view: impl View, stopped: &mpsc::Receiver<()>) {
    let display = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
    view.add_bars(&display);
    view.console().attach(display.clone());
    loop {
        view.draw();
        if !still_running(stopped, BAR_EVERY) {
            break;
        }
    }
    view.console().detach();
    view.clear();
    let _ = display.clear();
}
