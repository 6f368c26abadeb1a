use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = grab::cli::Cli::parse();
    // Logs go to stderr through a background writer, so a server under load never
    // waits on a slow terminal; the guard flushes them at exit.
    let (writer, _flush_guard) = tracing_appender::non_blocking(std::io::stderr());
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(grab::cli::default_log_filter(&cli)));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false)
        .init();
    grab::cli::execute(cli)
}
