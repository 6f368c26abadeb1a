//! `grab compare`: the same URL list through each strategy (and, with `--peers`,
//! curl, wget2 and aria2c), each run a child process in its own temporary folder,
//! measured from the outside the same way for every tool. Warm-up rounds first,
//! then counted rounds, the tools interleaved round by round so a drifting machine
//! hurts none of them more than the others. The table reports medians.

pub(crate) mod demo;
pub(crate) mod export;
mod measure;
pub(crate) mod picture;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::Named;
use crate::engine::Percentiles;
use crate::engine::Strategy;
pub use measure::children;

/// A tool in the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Contender {
    Grab(Strategy),
    Curl,
    Wget2,
    Aria2c,
}

/// The peers `--peers` looks for, by executable name.
pub const PEERS: [(Contender, &str); 3] = [
    (Contender::Curl, "curl"),
    (Contender::Wget2, "wget2"),
    (Contender::Aria2c, "aria2c"),
];

impl Contender {
    pub fn name(self) -> String {
        match self {
            Contender::Grab(strategy) => strategy.name().to_string(),
            Contender::Curl => "curl -Z".to_string(),
            Contender::Wget2 => "wget2".to_string(),
            Contender::Aria2c => "aria2c".to_string(),
        }
    }

    /// The command that downloads the list into `folder` with `jobs` at once.
    /// `report` is where a grab contender writes its per-URL records.
    fn command(
        self,
        config: &CompareConfig,
        list: &UrlList,
        folder: &Path,
        report: &Path,
    ) -> Command {
        let jobs = config.jobs.to_string();
        let mut command;
        match self {
            Contender::Grab(strategy) => {
                command = Command::new(&config.grab_program);
                command.args([
                    "get",
                    "--quiet",
                    "--json",
                    "-s",
                    strategy.name(),
                    "-j",
                    &jobs,
                    "-i",
                ]);
                command.arg(&list.urls).arg("-o").arg(folder);
                command.arg("--report").arg(report);
            }
            Contender::Curl => {
                command = Command::new("curl");
                // -w reports each transfer as it ends, on stderr, which C leaves
                // unbuffered, so each line's arrival is its end: its latency,
                // size, outcome and connection, for the table and the timeline.
                // -Z draws its progress meter on stderr even under -s;
                // --no-progress-meter stops it, as grab runs --quiet.
                command.args([
                    "-sSfZ",
                    "--no-progress-meter",
                    "--parallel-max",
                    &jobs,
                    "--remote-name-all",
                    "-w",
                    CURL_WRITE_OUT,
                    "--output-dir",
                ]);
                command.arg(folder).arg("-K").arg(&list.curl_config);
            }
            Contender::Wget2 => {
                command = Command::new("wget2");
                command.args(["-q", "--no-robots", &format!("--max-threads={jobs}"), "-P"]);
                command.arg(folder).arg("-i").arg(&list.urls);
            }
            Contender::Aria2c => {
                command = Command::new("aria2c");
                command.args([
                    "-q",
                    "-j",
                    &jobs,
                    "-x",
                    "1",
                    "--auto-file-renaming=false",
                    "--dir",
                ]);
                command.arg(folder).arg("-i").arg(&list.urls);
            }
        }
        command
    }
}

/// What curl writes per transfer: a mark, then its exit code, local port,
/// bytes, time and URL, tab-separated ([`curl_transfers`] reads it).
const CURL_WRITE_OUT: &str = "%{stderr}grab-transfer\\t%{exitcode}\\t%{local_port}\\t%{size_download}\\t%{time_total}\\t%{url}\\n";

/// curl's transfers from the lines its `-w` wrote, each stamped with when it
/// arrived. A transfer ends when its line arrives and starts its own
/// `time_total` earlier; its lane is its connection (curl -Z runs every
/// transfer on one thread, over up to `--parallel-max` connections).
fn curl_transfers(lines: &[(Duration, String)]) -> Vec<Transfer> {
    lines
        .iter()
        .filter_map(|(arrived, line)| {
            // Anywhere in the line: a progress meter may have written before it.
            let (_, report) = line.split_once("grab-transfer\t")?;
            let mut fields = report.splitn(5, '\t');
            let exit_code = fields.next()?;
            let port = fields.next()?;
            let bytes = fields.next()?.parse().ok()?;
            let seconds = fields.next()?.parse::<f64>().ok()?;
            let url = fields.next()?.to_string();
            let end = arrived.as_secs_f64();
            Some(Transfer {
                url,
                lane: match port {
                    "0" | "" => "no connection".to_string(),
                    port => format!("connection {port}"),
                },
                start: (end - seconds).max(0.0),
                end,
                bytes,
                saved: exit_code == "0",
            })
        })
        .collect()
}

/// How to compare.
#[derive(Debug, Clone, Serialize)]
pub struct CompareConfig {
    pub jobs: usize,
    pub strategies: Vec<Strategy>,
    pub repeat: usize,
    pub warmup: usize,
    pub peers: bool,
    /// The grab executable whose `get` is measured.
    #[serde(skip)]
    pub grab_program: PathBuf,
}

/// The URL list every contender reads, written once to files in a work folder.
pub struct UrlList {
    pub urls: PathBuf,
    pub curl_config: PathBuf,
    pub count: u64,
}

impl UrlList {
    /// Writes the URLs (one a line) and curl's config form of them under `folder`.
    pub fn write(folder: &Path, urls: impl Iterator<Item = String>) -> anyhow::Result<UrlList> {
        let mut plain = String::new();
        let mut curl = String::new();
        let mut count = 0;
        for url in urls {
            plain += &url;
            plain.push('\n');
            // curl's config syntax: a quoted value with backslash and quote escaped.
            curl += &format!(
                "url = \"{}\"\n",
                url.replace('\\', "\\\\").replace('"', "\\\"")
            );
            count += 1;
        }
        let list = UrlList {
            urls: folder.join("urls.txt"),
            curl_config: folder.join("curl.config"),
            count,
        };
        fs::write(&list.urls, plain)
            .with_context(|| format!("cannot write {}", list.urls.display()))?;
        fs::write(&list.curl_config, curl)
            .with_context(|| format!("cannot write {}", list.curl_config.display()))?;
        Ok(list)
    }
}

/// One run of one contender.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    pub contender: String,
    pub round: usize,
    pub warmup: bool,
    pub wall_seconds: f64,
    pub cpu_seconds: f64,
    pub peak_memory_bytes: u64,
    pub saved: u64,
    pub failed: u64,
    pub bytes: u64,
    pub latency_seconds: Option<Percentiles>,
    pub exit_code: Option<i32>,
    /// Every download of the run: from grab's `--report`, or curl's `-w` lines
    /// (none for wget2 and aria2c, which report no per-transfer times).
    #[serde(default)]
    pub transfers: Vec<Transfer>,
}

/// One download of a run: when it started and ended, counted from the start
/// of the child's batch, and the lane (thread, worker process or async task)
/// that ran it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transfer {
    pub url: String,
    pub lane: String,
    pub start: f64,
    pub end: f64,
    pub bytes: u64,
    pub saved: bool,
}

impl Transfer {
    /// The transfers in a grab `--report` NDJSON file; lines that are not a
    /// download record (an invalid input line has no lane to draw) are left out.
    pub fn read_report(path: &Path) -> anyhow::Result<Vec<Transfer>> {
        #[derive(Deserialize)]
        struct Record {
            url: String,
            outcome: String,
            bytes: u64,
            worker: String,
            started: f64,
            total: f64,
        }
        let text = fs::read_to_string(path)
            .with_context(|| format!("cannot read the report {}", path.display()))?;
        Ok(text
            .lines()
            .filter_map(|line| serde_json::from_str::<Record>(line).ok())
            .filter(|record| record.outcome != "invalid")
            .map(|record| Transfer {
                url: record.url,
                lane: record.worker,
                start: record.started,
                end: record.started + record.total,
                bytes: record.bytes,
                saved: record.outcome != "failed",
            })
            .collect())
    }
}

/// A contender's counted runs, summarised.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    pub contender: String,
    pub runs: usize,
    pub wall_median: f64,
    pub wall_min: f64,
    pub wall_max: f64,
    /// The median absolute deviation of the runs' wall times from their
    /// median: their spread, which one outlier run cannot stretch.
    #[serde(default)]
    pub wall_mad: f64,
    pub files_per_second: f64,
    pub megabytes_per_second: f64,
    /// Medians over the runs of each run's percentile.
    pub latency_seconds: Option<Percentiles>,
    pub cpu_seconds: f64,
    pub peak_memory_bytes: u64,
    /// Failed downloads in a run: the median over the counted runs, like
    /// every other figure (a sum would grow with --repeat).
    pub failed_per_run: f64,
    /// Median wall time over the best row's.
    pub ratio: f64,
}

/// Everything a comparison found.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub config: CompareConfig,
    pub urls: u64,
    /// Best first.
    pub rows: Vec<Row>,
    pub runs: Vec<Run>,
    pub missing_peers: Vec<String>,
}

impl Comparison {
    /// Whether any counted run failed a download (the table's medians may
    /// not show one run's failures).
    pub fn any_failed(&self) -> bool {
        self.runs.iter().any(|run| !run.warmup && run.failed > 0)
    }
}

/// Whether an executable is on the PATH (`curl.exe` on Windows for `curl`).
fn on_path(name: &str) -> bool {
    let file = format!("{name}{}", std::env::consts::EXE_SUFFIX);
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|folder| folder.join(&file).is_file()))
}

/// What a comparison tells its caller as it goes.
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    /// A contender's run begins (`round` from 0, warm-ups first).
    Starting {
        contender: &'a str,
        round: usize,
        warmup: bool,
    },
    /// A run ended.
    Finished(&'a Run),
}

/// Runs the comparison; `progress` hears about each run as it starts and ends.
pub fn run(
    config: &CompareConfig,
    list: &UrlList,
    work: &Path,
    mut progress: impl FnMut(Progress),
) -> anyhow::Result<Comparison> {
    let mut contenders: Vec<Contender> = config
        .strategies
        .iter()
        .map(|&strategy| Contender::Grab(strategy))
        .collect();
    let mut missing_peers = Vec::new();
    if config.peers {
        for (peer, executable) in PEERS {
            if on_path(executable) {
                contenders.push(peer);
            } else {
                missing_peers.push(executable.to_string());
            }
        }
    }
    let mut runs = Vec::new();
    for round in 0..config.warmup + config.repeat {
        for &contender in &contenders {
            progress(Progress::Starting {
                contender: &contender.name(),
                round,
                warmup: round < config.warmup,
            });
            let folder = tempfile::tempdir_in(work).context("cannot create a run folder")?;
            // Beside the download folder, so the peers' file counts never see it.
            let report = work.join(format!("report-{round}-{}.jsonl", runs.len()));
            let measured = measure::run(contender.command(config, list, folder.path(), &report))
                .with_context(|| format!("cannot run {}", contender.name()))?;
            let mut run = describe_run(
                contender,
                round,
                round < config.warmup,
                &measured,
                folder.path(),
                list.count,
            );
            if matches!(contender, Contender::Grab(_)) {
                // A run that died before its report has no transfers to draw.
                run.transfers = Transfer::read_report(&report).unwrap_or_default();
                let _ = fs::remove_file(&report);
            }
            progress(Progress::Finished(&run));
            runs.push(run);
        }
    }
    let mut rows: Vec<Row> = contenders
        .iter()
        .map(|contender| summarise(&contender.name(), &runs))
        .collect();
    rows.sort_by(|first, second| first.wall_median.total_cmp(&second.wall_median));
    let best = rows
        .first()
        .map_or(1.0, |row| row.wall_median.max(f64::EPSILON));
    for row in &mut rows {
        row.ratio = row.wall_median / best;
    }
    Ok(Comparison {
        config: config.clone(),
        urls: list.count,
        rows,
        runs,
        missing_peers,
    })
}

/// Turns a measured run into figures: grab reports its own in JSON on stdout; for
/// the peers the folder is counted, and curl's `-w` lines give its transfers.
fn describe_run(
    contender: Contender,
    round: usize,
    warmup: bool,
    measured: &measure::Measured,
    folder: &Path,
    expected: u64,
) -> Run {
    let mut run = Run {
        contender: contender.name(),
        round,
        warmup,
        wall_seconds: measured.wall.as_secs_f64(),
        cpu_seconds: measured.cpu.as_secs_f64(),
        peak_memory_bytes: measured.peak_memory_bytes,
        saved: 0,
        failed: 0,
        bytes: 0,
        latency_seconds: None,
        exit_code: measured.exit_code,
        transfers: Vec::new(),
    };
    match contender {
        Contender::Grab(_) => {
            match serde_json::from_str::<GrabSummary>(measured.stdout.trim()) {
                Ok(summary) => {
                    run.saved = summary.saved;
                    run.failed = summary.failed;
                    run.bytes = summary.bytes;
                    run.latency_seconds = Some(summary.latency_seconds);
                }
                // No summary: the run died before printing one; nothing was saved.
                Err(_) => run.failed = expected,
            }
        }
        peer => {
            let (files, bytes) = count_files(folder);
            run.saved = files;
            run.failed = expected.saturating_sub(files);
            run.bytes = bytes;
            if peer == Contender::Curl {
                run.transfers = curl_transfers(&measured.stderr_lines);
                let times: Vec<Duration> = run
                    .transfers
                    .iter()
                    .map(|transfer| Duration::from_secs_f64(transfer.end - transfer.start))
                    .collect();
                run.latency_seconds = (!times.is_empty()).then(|| Percentiles::of(&times));
            }
        }
    }
    run
}

/// What a contender's `grab get --json` line says, as far as the table needs
/// it (the child's summary has more; serde leaves the rest).
#[derive(Deserialize)]
struct GrabSummary {
    saved: u64,
    failed: u64,
    bytes: u64,
    latency_seconds: Percentiles,
}

/// Regular files in a folder and their total size.
fn count_files(folder: &Path) -> (u64, u64) {
    let Ok(entries) = fs::read_dir(folder) else {
        return (0, 0);
    };
    entries
        .filter_map(|entry| entry.ok()?.metadata().ok())
        .filter(|metadata| metadata.is_file())
        .fold((0, 0), |(files, bytes), metadata| {
            (files + 1, bytes + metadata.len())
        })
}

/// The median absolute deviation times this estimates the standard deviation
/// of normally distributed values.
const MAD_TO_DEVIATION: f64 = 1.4826;

/// Whether two rows' wall times cannot be told apart: their medians differ by
/// less than 5%, or by no more than the runs' own spread (each row's median
/// absolute deviation, scaled to a standard deviation, added). Medians and
/// deviations from them are what one outlier run cannot move; min-max ranges
/// are not: one slow run of the faster row made 0.28 s and 2.63 s overlap.
pub fn within_noise(first: &Row, second: &Row) -> bool {
    let (low, high) = if first.wall_median <= second.wall_median {
        (first.wall_median, second.wall_median)
    } else {
        (second.wall_median, first.wall_median)
    };
    let spread = MAD_TO_DEVIATION * (first.wall_mad + second.wall_mad);
    high - low <= spread || high <= low * 1.05
}

/// The median absolute deviation of values from their median.
fn median_absolute_deviation(values: &[f64]) -> f64 {
    let center = median(&mut values.to_vec());
    median(
        &mut values
            .iter()
            .map(|value| (value - center).abs())
            .collect::<Vec<_>>(),
    )
}

fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    }
}

fn summarise(contender: &str, runs: &[Run]) -> Row {
    let counted: Vec<&Run> = runs
        .iter()
        .filter(|run| run.contender == contender && !run.warmup)
        .collect();
    let collect =
        |field: fn(&Run) -> f64| -> Vec<f64> { counted.iter().map(|run| field(run)).collect() };
    let mut walls = collect(|run| run.wall_seconds);
    let wall_median = median(&mut walls);
    let saved = median(&mut collect(|run| run.saved as f64));
    let bytes = median(&mut collect(|run| run.bytes as f64));
    let latencies: Vec<Percentiles> = counted
        .iter()
        .filter_map(|run| run.latency_seconds)
        .collect();
    let latency_seconds = (!latencies.is_empty()).then(|| Percentiles {
        p50: median(
            &mut latencies
                .iter()
                .map(|latency| latency.p50)
                .collect::<Vec<_>>(),
        ),
        p95: median(
            &mut latencies
                .iter()
                .map(|latency| latency.p95)
                .collect::<Vec<_>>(),
        ),
        p99: median(
            &mut latencies
                .iter()
                .map(|latency| latency.p99)
                .collect::<Vec<_>>(),
        ),
    });
    let per_second = |amount: f64| {
        if wall_median > 0.0 {
            amount / wall_median
        } else {
            0.0
        }
    };
    Row {
        contender: contender.to_string(),
        runs: counted.len(),
        wall_median,
        wall_min: walls.first().copied().unwrap_or(0.0),
        wall_max: walls.last().copied().unwrap_or(0.0),
        wall_mad: median_absolute_deviation(&walls),
        files_per_second: per_second(saved),
        megabytes_per_second: per_second(bytes) / 1e6,
        latency_seconds,
        cpu_seconds: median(&mut collect(|run| run.cpu_seconds)),
        peak_memory_bytes: median(&mut collect(|run| run.peak_memory_bytes as f64)) as u64,
        failed_per_run: median(&mut collect(|run| run.failed as f64)),
        ratio: 1.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(contender: &str, warmup: bool, wall: f64, saved: u64) -> Run {
        Run {
            contender: contender.to_string(),
            round: 0,
            warmup,
            wall_seconds: wall,
            cpu_seconds: wall / 2.0,
            peak_memory_bytes: 1000,
            saved,
            failed: 10 - saved,
            bytes: saved * 100,
            latency_seconds: Some(Percentiles {
                p50: 0.1,
                p95: 0.2,
                p99: wall,
            }),
            exit_code: Some(0),
            transfers: Vec::new(),
        }
    }

    /// Counted runs that saved every file: each contender with its wall times.
    fn counted(walls: &[(&str, &[f64])]) -> Vec<Run> {
        walls
            .iter()
            .flat_map(|(contender, walls)| {
                walls.iter().map(|wall| run(contender, false, *wall, 10))
            })
            .collect()
    }

    #[test]
    fn summary_uses_counted_runs_only() {
        let runs = vec![
            run("a", true, 9.0, 10),
            run("a", false, 1.0, 10),
            run("a", false, 3.0, 9),
            run("a", false, 2.0, 10),
            run("b", false, 5.0, 10),
        ];
        let row = summarise("a", &runs);
        assert_eq!(row.runs, 3);
        assert_eq!(
            (row.wall_median, row.wall_min, row.wall_max),
            (2.0, 1.0, 3.0)
        );
        assert_eq!(row.files_per_second, 5.0);
        // One of three runs lost one file: none in the median run.
        assert_eq!(row.failed_per_run, 0.0);
        let failing = vec![
            run("c", false, 1.0, 9),
            run("c", false, 1.0, 9),
            run("c", false, 1.0, 8),
        ];
        assert_eq!(summarise("c", &failing).failed_per_run, 1.0);
        assert_eq!(row.latency_seconds.unwrap().p99, 2.0);
    }

    #[test]
    fn rows_whose_runs_scatter_over_each_other_or_are_close_are_within_noise() {
        let runs = counted(&[
            ("a", &[1.0, 1.2]),
            ("b", &[1.1, 1.3]),
            ("c", &[2.0]),
            ("d", &[2.08]),
        ]);
        let [a, b, c, d] = ["a", "b", "c", "d"].map(|name| summarise(name, &runs));
        assert!(within_noise(&a, &b), "overlapping ranges");
        assert!(!within_noise(&a, &c), "far apart");
        assert!(within_noise(&c, &d), "4% apart");
        assert!(!within_noise(&b, &c));
    }

    /// The verdict `grab demo` once gave wrongly: one slow run of the
    /// faster strategy stretched its range over the slower one's.
    #[test]
    fn one_outlier_run_does_not_make_a_tenfold_difference_noise() {
        let runs = counted(&[("fast", &[0.27, 0.28, 3.10]), ("slow", &[2.55, 2.63, 2.70])]);
        let [fast, slow] = ["fast", "slow"].map(|name| summarise(name, &runs));
        assert_eq!((fast.wall_median, slow.wall_median), (0.28, 2.63));
        assert!(fast.wall_max >= slow.wall_min, "the ranges overlap");
        assert!(!within_noise(&fast, &slow));
        assert!(!within_noise(&slow, &fast));
        // Runs that really scatter over each other still are noise.
        let runs = counted(&[("a", &[1.0, 1.5, 2.0]), ("b", &[1.4, 1.9, 2.4])]);
        let [a, b] = ["a", "b"].map(|name| summarise(name, &runs));
        assert!(within_noise(&a, &b));
    }

    #[test]
    fn curl_transfers_end_when_their_line_arrives_on_their_connection() {
        let lines = [
            (
                Duration::from_millis(300),
                "\r--  --  0  2 grab-transfer\t0\t40001\t2000\t0.250\thttp://h/a b".to_string(),
            ),
            (
                Duration::from_millis(310),
                "curl: (22) The requested URL returned error: 404".to_string(),
            ),
            (
                Duration::from_millis(320),
                "grab-transfer\t22\t0\t0\t0.010\thttp://h/missing".to_string(),
            ),
        ];
        let transfers = curl_transfers(&lines);
        assert_eq!(transfers.len(), 2);
        let first = &transfers[0];
        assert_eq!(
            (
                first.url.as_str(),
                first.lane.as_str(),
                first.bytes,
                first.saved
            ),
            ("http://h/a b", "connection 40001", 2000, true)
        );
        assert!((first.end - 0.3).abs() < 1e-9 && (first.start - 0.05).abs() < 1e-9);
        assert_eq!(
            (transfers[1].lane.as_str(), transfers[1].saved),
            ("no connection", false)
        );
    }

    #[test]
    fn median_of_even_count_is_the_mean_of_the_middle() {
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&mut []), 0.0);
    }
}
