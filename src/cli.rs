//! The command line: clap definitions, and their conversion into the plain config
//! structs the library runs on. Nothing below this module sees clap.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::batch::{self, GetConfig};
use crate::demo::{self, DemoConfig};
use crate::download::Settings;
use crate::input::Inputs;
use crate::report::Verbosity;
use crate::strategy::{self, StrategyKind};

const EXIT_CODES: &str = "Exit codes:\n  0  every URL was saved\n  1  a URL failed or an input line was invalid\n  2  usage error (unknown flag, unreadable input file)";

#[derive(Debug, Parser)]
#[command(name = "grab", version, about = "Download many URLs concurrently, four ways, and compare them.", after_help = EXIT_CODES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Download URLs from arguments, files or stdin.
    #[command(after_help = EXIT_CODES)]
    Get(GetArgs),
    /// Serve the local image gallery (for demos, tests and benchmarks).
    Serve(ServeArgs),
    /// Serve the gallery locally and download it with every strategy.
    Demo(DemoArgs),
    /// A worker of the `processes` strategy (started by grab itself).
    #[command(name = strategy::WORKER_SUBCOMMAND, hide = true)]
    Worker {
        #[arg(long)]
        settings: String,
    },
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// URLs to download.
    pub urls: Vec<String>,
    /// Read URLs from FILE, one per line (`URL` or `URL NAME`); `-` reads stdin.
    #[arg(short, long = "input", value_name = "FILE")]
    pub inputs: Vec<PathBuf>,
    /// Folder to save into (created when missing).
    #[arg(short, long, value_name = "DIR", default_value = ".")]
    pub output_dir: PathBuf,
    /// How downloads run concurrently.
    #[arg(short, long, value_enum, default_value_t = StrategyKind::Async)]
    pub strategy: StrategyKind,
    /// Downloads in flight at once (threads, worker processes or tasks).
    #[arg(short, long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub jobs: u32,
    /// Abandon a transfer that receives nothing for SECS seconds.
    #[arg(long, value_name = "SECS", default_value_t = 30.0, value_parser = positive_seconds)]
    pub timeout: f64,
    /// Give up connecting after SECS seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10.0, value_parser = positive_seconds)]
    pub connect_timeout: f64,
    /// Print only failures and the summary.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Port to listen on; 0 picks a free one.
    #[arg(short, long, default_value_t = 8080)]
    pub port: u16,
    /// Address to bind.
    #[arg(short, long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Most connections open at once; more wait in the kernel's backlog.
    #[arg(long, default_value_t = 16_384)]
    pub max_connections: usize,
    /// A request not answered within SECS gets 408.
    #[arg(long, value_name = "SECS", default_value_t = 30.0, value_parser = positive_seconds)]
    pub request_timeout: f64,
    /// After Ctrl-C or SIGTERM, how long requests in flight may take to finish.
    #[arg(long, value_name = "SECS", default_value_t = 10.0, value_parser = positive_seconds)]
    pub grace: f64,
    /// Do not log each request.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Images to download with each strategy.
    #[arg(short = 'n', long, default_value_t = 50)]
    pub count: usize,
    /// Latency the local server adds to each response, in milliseconds.
    #[arg(long, default_value_t = 50)]
    pub delay_ms: u64,
    /// Downloads in flight at once.
    #[arg(short, long, default_value_t = 16)]
    pub jobs: usize,
}

fn positive_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(seconds) if seconds > 0.0 && seconds.is_finite() => Ok(seconds),
        _ => Err(format!("expected a positive number of seconds, got {text}")),
    }
}

/// The running grab executable, which the `processes` strategy starts as workers.
fn this_program() -> PathBuf {
    std::env::current_exe().unwrap_or_else(|_| PathBuf::from("grab"))
}

impl GetArgs {
    pub fn config(&self) -> GetConfig {
        GetConfig {
            settings: Settings {
                output_dir: self.output_dir.clone(),
                connect_timeout: Duration::from_secs_f64(self.connect_timeout),
                idle_timeout: Duration::from_secs_f64(self.timeout),
            },
            strategy: self.strategy,
            jobs: self.jobs as usize,
            verbosity: if self.quiet {
                Verbosity::Quiet
            } else {
                Verbosity::Normal
            },
            worker_program: this_program(),
        }
    }
}

fn usage_error(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("grab: {message}");
    ExitCode::from(2)
}

/// Runs a parsed command line and returns the process exit code.
pub fn execute(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Get(arguments) => {
            let inputs = match Inputs::open(arguments.urls.clone(), &arguments.inputs) {
                Ok(inputs) => inputs,
                Err(error) => return usage_error(error),
            };
            if arguments.urls.is_empty() && arguments.inputs.is_empty() {
                return usage_error(
                    "no URLs: give them as arguments or with -i FILE (-i - reads stdin)",
                );
            }
            match batch::run(&arguments.config(), inputs) {
                Ok(summary) => ExitCode::from(summary.exit_code() as u8),
                Err(error) => usage_error(format!("{error:#}")),
            }
        }
        Command::Serve(arguments) => serve(arguments),
        Command::Demo(arguments) => {
            let config = DemoConfig {
                count: arguments.count.max(1),
                delay: Duration::from_millis(arguments.delay_ms),
                jobs: arguments.jobs.max(1),
                worker_program: this_program(),
            };
            match demo::run(&config) {
                Ok(rows) => {
                    print!("{}", demo::table(&config, &rows));
                    let failed = rows.iter().any(|row| row.summary.exit_code() != 0);
                    ExitCode::from(u8::from(failed))
                }
                Err(error) => {
                    eprintln!("grab: demo failed: {error:#}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Worker { settings } => match strategy::worker_main(&settings) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("grab worker: {error:#}");
                ExitCode::from(1)
            }
        },
    }
}

/// The log filter for a command line, unless `RUST_LOG` says otherwise.
pub fn default_log_filter(cli: &Cli) -> &'static str {
    match &cli.command {
        Command::Serve(arguments) if !arguments.quiet => "warn,grab::server=info",
        _ => "warn",
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
    tracing::warn!(target: "grab::server", "shutting down: no new connections, letting requests in flight finish");
}

fn serve(arguments: ServeArgs) -> ExitCode {
    // Thousands of connections need thousands of descriptors: take what the hard
    // limit allows.
    if let Err(error) = rlimit::increase_nofile_limit(u64::MAX) {
        tracing::warn!("cannot raise the open-file limit: {error}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return usage_error(format!("cannot start the runtime: {error}")),
    };
    let limits = crate::server::Limits {
        max_connections: arguments.max_connections.max(1),
        request_timeout: Duration::from_secs_f64(arguments.request_timeout),
        grace: Duration::from_secs_f64(arguments.grace),
    };
    let result = runtime.block_on(async {
        let address = SocketAddr::new(arguments.bind, arguments.port);
        let listener = crate::server::bind(address)
            .map_err(|error| format!("cannot listen on {address}: {error}"))?;
        let local = listener.local_addr().map_err(|error| error.to_string())?;
        println!("serving on http://{local}  (try / or /images/index.txt?count=10)");
        crate::server::run_with(listener, shutdown_signal(), limits)
            .await
            .map_err(|error| error.to_string())
    });
    // Handlers still sleeping past the grace period are dropped with the runtime.
    runtime.shutdown_timeout(Duration::from_millis(100));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => usage_error(message),
    }
}
