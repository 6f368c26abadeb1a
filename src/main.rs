use std::process::ExitCode;

use grab::engine::WorkerProgram;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = grab::cli::Cli::parse_wget();
    let filter = match std::env::var("RUST_LOG") {
        Ok(filter) if !filter.is_empty() => filter,
        _ => cli.log_filter().to_string(),
    };
    // Logs go to stderr through a background writer, so a server under load never
    // waits on a slow terminal; the guard flushes them at exit. Each line carries a
    // timestamp and the span of the worker (`worker{name=thread-3}`) that wrote it.
    // Credentials in URLs are masked in every log line.
    let (writer, _flush_guard) =
        tracing_appender::non_blocking(grab::redact::Redacting(std::io::stderr()));
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(&filter))
        .with_writer(writer)
        .with_ansi(grab::console::stderr_colors())
        .init();
    // Worker processes log at the level this process does: they are given the
    // filter in their environment.
    let program = WorkerProgram {
        log_filter: filter,
        ..WorkerProgram::current()
    };
    grab::cli::execute(cli, program).into()
}
