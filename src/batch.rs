//! Running one `grab get` batch: the input is read on its own thread into a bounded
//! queue (so a list of millions is never held in memory), the chosen strategy drains
//! the queue, and the reporter's tally becomes the summary.

use std::fs;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread;

use anyhow::Context as _;

use crate::download::{Context, Settings};
use crate::input::Inputs;
use crate::naming::FolderNames;
use crate::report::{Reporter, Summary, Verbosity};
use crate::strategy::{Batch, StrategyKind};

/// Everything `grab get` needs besides its inputs, already validated.
#[derive(Debug, Clone)]
pub struct GetConfig {
    pub settings: Settings,
    pub strategy: StrategyKind,
    /// Downloads in flight at once.
    pub jobs: usize,
    pub verbosity: Verbosity,
    /// The grab executable the `processes` strategy starts as workers.
    pub worker_program: PathBuf,
}

/// How far ahead of the workers the input reader may run, per job slot.
const QUEUE_PER_JOB: usize = 2;

/// Downloads everything `inputs` yields. Errors only when the batch cannot run at
/// all (the output folder cannot be made, a strategy cannot start); failed URLs are
/// counted in the summary instead.
pub fn run(config: &GetConfig, mut inputs: Inputs) -> anyhow::Result<Summary> {
    let directory = &config.settings.output_dir;
    fs::create_dir_all(directory)
        .with_context(|| format!("cannot create output folder {}", directory.display()))?;
    let jobs = if config.strategy == StrategyKind::Sequential {
        1
    } else {
        config.jobs.max(1)
    };
    let reporter = Arc::new(Reporter::new(config.verbosity));
    let batch = Batch {
        context: Context {
            settings: Arc::new(config.settings.clone()),
            names: Arc::new(FolderNames::new(directory)),
        },
        reporter: reporter.clone(),
    };
    let (sender, queue) = async_channel::bounded(jobs * QUEUE_PER_JOB);
    let input_reporter = reporter.clone();
    let reader = thread::Builder::new()
        .name("input".to_string())
        .spawn(move || {
            for item in inputs.by_ref() {
                match item {
                    Ok(job) => {
                        if sender.send_blocking(job).is_err() {
                            break;
                        }
                    }
                    Err(invalid) => input_reporter.invalid(&invalid),
                }
            }
            inputs.duplicates()
        })?;
    let strategy = config.strategy.build(jobs, config.worker_program.clone());
    let result = strategy.run(queue, &batch);
    let duplicates = reader
        .join()
        .map_err(|_| anyhow::anyhow!("the input reader panicked"))?;
    result.with_context(|| format!("the {} strategy failed", config.strategy))?;
    let summary = reporter.summary(duplicates);
    reporter.print_summary(&summary);
    Ok(summary)
}
