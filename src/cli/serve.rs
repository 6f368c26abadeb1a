//! `grab serve`: its flags and the command.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use clap::Args;

use super::positive_seconds;
use crate::exit::ExitStatus;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Port to listen on; 0 picks a free one.
    #[arg(short, long, default_value_t = 8080)]
    pub port: u16,
    /// Address or host name to bind (`localhost` is resolved; the first of its
    /// addresses that can be bound is used).
    #[arg(short, long, value_name = "ADDR", default_value = "127.0.0.1")]
    pub bind: String,
    /// Most connections open at once; more wait in the kernel's backlog.
    #[arg(long, default_value_t = 16_384)]
    pub max_connections: usize,
    /// A request not answered within SECS gets a JSON 503.
    #[arg(long, value_name = "SECS", default_value_t = 30.0, value_parser = positive_seconds)]
    pub request_timeout: f64,
    /// A connection that has not sent a whole request head within SECS (from its
    /// opening or its last response) is closed.
    #[arg(long, value_name = "SECS", default_value_t = 10.0, value_parser = positive_seconds)]
    pub header_timeout: f64,
    /// A client that reads nothing of a response for SECS is disconnected.
    #[arg(long, value_name = "SECS", default_value_t = 30.0, value_parser = positive_seconds)]
    pub send_timeout: f64,
    /// The most bytes of request headers; a larger head gets 431.
    #[arg(long, value_name = "BYTES", default_value_t = 16_384)]
    pub max_header_bytes: usize,
    /// After Ctrl-C or SIGTERM, how long requests in flight may take to finish.
    #[arg(long, value_name = "SECS", default_value_t = 10.0, value_parser = positive_seconds)]
    pub grace: f64,
    /// Do not log each request.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Resolves on Ctrl-C or SIGTERM (on Windows: Ctrl-C, Ctrl-Break, or the
/// console closing).
async fn shutdown_signal() {
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(windows)]
    let terminate = async {
        use tokio::signal::windows::{ctrl_break, ctrl_close};
        match (ctrl_break(), ctrl_close()) {
            (Ok(mut breaking), Ok(mut closing)) => {
                tokio::select! {
                    _ = breaking.recv() => {}
                    _ = closing.recv() => {}
                }
            }
            _ => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
    tracing::warn!(target: "grab::server", "shutting down: no new connections, letting requests in flight finish");
}

/// Binds `host` (an address or a name to resolve) on `port`: the first resolved
/// address that can be bound, so `localhost` works on machines with or without IPv6.
fn bind_named(host: &str, port: u16) -> Result<tokio::net::TcpListener, String> {
    // An IPv6 address may be given bare (`::1`) or bracketed (`[::1]`).
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addresses: Vec<SocketAddr> = (bare, port)
        .to_socket_addrs()
        .map_err(|error| format!("cannot resolve --bind {host}: {error}"))?
        .collect();
    let mut failures = Vec::new();
    for address in &addresses {
        match crate::server::bind(*address) {
            Ok(listener) => return Ok(listener),
            Err(error) => failures.push(format!("{address}: {error}")),
        }
    }
    Err(if failures.is_empty() {
        format!("--bind {host} resolves to no address")
    } else {
        format!("cannot listen on {host}: {}", failures.join("; "))
    })
}

/// Runs `grab serve` until Ctrl-C or SIGTERM.
pub fn run(arguments: &ServeArgs) -> ExitStatus {
    // Thousands of connections need thousands of descriptors: `execute` took
    // what the hard limit allows, for every command.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("grab: cannot start the runtime: {error}");
            return ExitStatus::Failed;
        }
    };
    let limits = crate::server::Limits {
        max_connections: arguments.max_connections.max(1),
        request_timeout: Duration::from_secs_f64(arguments.request_timeout),
        header_timeout: Duration::from_secs_f64(arguments.header_timeout),
        send_timeout: Duration::from_secs_f64(arguments.send_timeout),
        max_header_bytes: arguments.max_header_bytes,
        image_cache_bytes: crate::server::Limits::default().image_cache_bytes,
        grace: Duration::from_secs_f64(arguments.grace),
    };
    let result = runtime.block_on(async {
        let listener = bind_named(&arguments.bind, arguments.port)?;
        let local = listener.local_addr().map_err(|error| error.to_string())?;
        println!("serving on http://{local}  (try / or /images/index.txt?count=10)");
        crate::server::run_with(listener, shutdown_signal(), limits)
            .await
            .map_err(|error| error.to_string())
    });
    // Handlers still sleeping past the grace period are dropped with the runtime.
    runtime.shutdown_timeout(Duration::from_millis(100));
    match result {
        Ok(()) => ExitStatus::Ok,
        Err(message) => {
            eprintln!("grab: {message}");
            ExitStatus::Failed
        }
    }
}
