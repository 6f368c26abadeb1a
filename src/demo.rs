//! `grab demo`: the whole idea in one command. Serves the gallery in-process on a
//! free loopback port, downloads it with each strategy into a temporary folder, and
//! prints how long each took, fastest first.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;

use crate::batch::{self, GetConfig};
use crate::download::Settings;
use crate::input::Inputs;
use crate::report::{Summary, Verbosity, human_bytes};
use crate::server::Background;
use crate::strategy::StrategyKind;

/// What the demo downloads and how.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    pub count: usize,
    pub delay: Duration,
    pub jobs: usize,
    pub worker_program: PathBuf,
}

/// One strategy's run in the demo.
pub struct DemoRow {
    pub strategy: StrategyKind,
    pub summary: Summary,
}

/// Runs the demo and returns its rows, fastest first.
pub fn run(config: &DemoConfig) -> anyhow::Result<Vec<DemoRow>> {
    let server = Background::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .context("cannot start the local image server")?;
    let list: String = (1..=config.count)
        .map(|number| {
            format!(
                "{}/images/photo-{number:03}.jpg?delay_ms={}\n",
                server.base_url(),
                config.delay.as_millis()
            )
        })
        .collect();
    // One untimed pass with no latency, so the server has drawn every image before
    // the first timed strategy asks for them.
    let warm_up: String = (1..=config.count)
        .map(|number| format!("{}/images/photo-{number:03}.jpg\n", server.base_url()))
        .collect();
    let folder = tempfile::tempdir().context("cannot create a temporary folder")?;
    batch::run(
        &get_config(config, folder.path(), StrategyKind::Async),
        Inputs::from_text("warm-up", warm_up),
    )?;
    let mut rows = Vec::new();
    for strategy in StrategyKind::ALL {
        let folder = tempfile::tempdir().context("cannot create a temporary folder")?;
        let summary = batch::run(
            &get_config(config, folder.path(), strategy),
            Inputs::from_text("demo", list.clone()),
        )?;
        rows.push(DemoRow { strategy, summary });
    }
    rows.sort_by_key(|row| row.summary.wall);
    Ok(rows)
}

fn get_config(config: &DemoConfig, folder: &Path, strategy: StrategyKind) -> GetConfig {
    GetConfig {
        settings: Settings {
            output_dir: folder.to_path_buf(),
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
        },
        strategy,
        jobs: config.jobs,
        verbosity: Verbosity::Silent,
        worker_program: config.worker_program.clone(),
    }
}

/// The demo's table.
pub fn table(config: &DemoConfig, rows: &[DemoRow]) -> String {
    let mut text = format!(
        "{} images from a local server with {} ms latency, {} at a time:\n\n{:<12} {:>9} {:>9} {:>10} {:>8}\n",
        config.count,
        config.delay.as_millis(),
        config.jobs,
        "strategy",
        "time",
        "files/s",
        "bytes",
        "failed"
    );
    let fastest = rows
        .first()
        .map_or(0.0, |row| row.summary.wall.as_secs_f64());
    for row in rows {
        let seconds = row.summary.wall.as_secs_f64();
        text += &format!(
            "{:<12} {:>7.2} s {:>9.1} {:>10} {:>8}   {:.1}x\n",
            row.strategy.name(),
            seconds,
            row.summary.saved as f64 / seconds.max(f64::EPSILON),
            human_bytes(row.summary.bytes),
            row.summary.failed,
            seconds / fastest.max(f64::EPSILON),
        );
    }
    text
}
