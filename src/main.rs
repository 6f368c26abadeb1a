use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = grab::cli::Cli::parse();
    let filter = match std::env::var("RUST_LOG") {
        Ok(filter) if !filter.is_empty() => filter,
        _ => {
            let filter = grab::cli::default_log_filter(&cli).to_string();
            // SAFETY: no other thread runs yet. Exported so the worker processes
            // log at the level the user asked for.
            unsafe { std::env::set_var("RUST_LOG", &filter) };
            filter
        }
    };
    // Logs go to stderr through a background writer, so a server under load never
    // waits on a slow terminal; the guard flushes them at exit. Each line carries a
    // timestamp and the span of the worker (`worker{name=thread-3}`) that wrote it.
    let (writer, _flush_guard) = tracing_appender::non_blocking(std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(filter))
        .with_writer(writer)
        .with_ansi(grab::report::stderr_colors())
        .init();
    grab::cli::execute(cli)
}
