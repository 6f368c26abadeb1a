//! The one console every command prints through: per-item lines, notices and
//! summaries on stderr, each written whole under one lock (lines from concurrent
//! workers never tear), stepping aside for the live view while one is drawn
//! (the bar is redrawn under the line). Colour and verbosity are decided once,
//! when the console is made.

use std::io::{self, IsTerminal, Write};
use std::sync::{Arc, Mutex};

/// How much a command prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    /// A line per item, then the summary.
    Normal,
    /// Failures and the summary only.
    Quiet,
    /// Nothing (the caller presents the results itself, as `demo` does).
    Silent,
}

/// Whether stderr gets colours: only on a terminal, and never with `NO_COLOR` set.
pub fn stderr_colors() -> bool {
    io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
        && escapes_shown()
}

/// A Windows console shows colour escapes only once asked to (virtual terminal
/// processing); the console crate, which draws indicatif's live view, asks,
/// and knows the msys terminals of Git Bash.
#[cfg(windows)]
fn escapes_shown() -> bool {
    console::Term::stderr().features().colors_supported()
}

#[cfg(not(windows))]
fn escapes_shown() -> bool {
    true
}

/// A colour for a word of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paint {
    Green,
    Red,
    Dim,
}

impl Paint {
    fn code(self) -> &'static str {
        match self {
            Paint::Green => "32",
            Paint::Red => "31",
            Paint::Dim => "2",
        }
    }
}

/// A handle on the console; clones print through the same lock.
#[derive(Clone)]
pub struct Console {
    inner: Arc<Inner>,
}

struct Inner {
    verbosity: Verbosity,
    color: bool,
    /// The live view, while one is drawn; the lock every line is written under.
    display: Mutex<Option<indicatif::MultiProgress>>,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Console")
            .field("verbosity", &self.inner.verbosity)
            .field("color", &self.inner.color)
            .finish()
    }
}

impl Console {
    /// A console at `verbosity`, coloured when stderr is a terminal without
    /// `NO_COLOR`.
    pub fn new(verbosity: Verbosity) -> Console {
        Console::with_color(verbosity, stderr_colors())
    }

    pub fn with_color(verbosity: Verbosity, color: bool) -> Console {
        Console {
            inner: Arc::new(Inner {
                verbosity,
                color,
                display: Mutex::new(None),
            }),
        }
    }

    /// A console that prints nothing.
    pub fn silent() -> Console {
        Console::with_color(Verbosity::Silent, false)
    }

    pub fn verbosity(&self) -> Verbosity {
        self.inner.verbosity
    }

    /// Whether a successful item gets its own line.
    pub fn shows_each_item(&self) -> bool {
        self.inner.verbosity == Verbosity::Normal
    }

    /// Whether failures, notices and summaries are printed.
    pub fn shows_failures(&self) -> bool {
        self.inner.verbosity != Verbosity::Silent
    }

    /// `text` in a colour, when colours are on.
    pub fn paint(&self, text: &str, paint: Paint) -> String {
        if self.inner.color {
            format!("\x1b[{}m{text}\x1b[0m", paint.code())
        } else {
            text.to_string()
        }
    }

    /// Writes `line` and a newline whole, above the live view if one is drawn,
    /// whatever the verbosity (callers decide what to print). URLs in it have their credentials masked ([`crate::redact`]).
    pub fn line(&self, line: &str) {
        let line = crate::redact::text(line);
        let mut text = String::with_capacity(line.len() + 1);
        text.push_str(&line);
        text.push('\n');
        let display = crate::lock(&self.inner.display);
        let write = || {
            let _ = io::stderr().lock().write_all(text.as_bytes());
        };
        match display.as_ref() {
            // The bar steps aside for the line and is redrawn under it.
            Some(display) => display.suspend(write),
            None => write(),
        }
    }

    /// `note: MESSAGE`, unless silent.
    pub fn notice(&self, message: &str) {
        if self.shows_failures() {
            self.line(&format!("note: {message}"));
        }
    }

    /// A summary, unless silent.
    pub fn summary(&self, summary: &str) {
        if self.shows_failures() {
            self.line(summary);
        }
    }

    /// `error: MESSAGE`, unless silent.
    pub fn error(&self, message: &str) {
        if self.shows_failures() {
            self.line(&format!("error: {message}"));
        }
    }

    /// From now on lines are printed above `display`.
    pub fn attach(&self, display: indicatif::MultiProgress) {
        *crate::lock(&self.inner.display) = Some(display);
    }

    /// The live view is gone: lines are written plainly again.
    pub fn detach(&self) {
        crate::lock(&self.inner.display).take();
    }
}

/// `20.0 KiB`, `1.5 MiB`: binary units, one decimal.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `downloaded 9 of 10 files, 1 failed`: what was `done` of all that ended,
/// and the failures when there were any.
pub fn done_of(verb: &str, done: u64, failed: u64, noun: &str) -> String {
    let mut line = format!("{verb} {done} of {} {noun}", done + failed);
    if failed > 0 {
        line += &format!(", {failed} failed");
    }
    line
}

/// `""` for one, `"s"` for any other count.
pub fn plural(count: u64) -> &'static str {
    if count == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(20 * 1024), "20.0 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 / 2), "1.5 MiB");
    }

    #[test]
    fn paint_only_with_colours() {
        let plain = Console::with_color(Verbosity::Normal, false);
        assert_eq!(plain.paint("saved", Paint::Green), "saved");
        let colored = Console::with_color(Verbosity::Normal, true);
        assert_eq!(colored.paint("saved", Paint::Green), "\x1b[32msaved\x1b[0m");
    }

    #[test]
    fn verbosity_decides_what_shows() {
        assert!(Console::with_color(Verbosity::Normal, false).shows_each_item());
        let quiet = Console::with_color(Verbosity::Quiet, false);
        assert!(!quiet.shows_each_item() && quiet.shows_failures());
        assert!(!Console::silent().shows_failures());
    }
}
