//! `grab get --filter LIST`: each image is filtered as soon as it is saved, on a
//! filter pool of its own (threads, one per CPU) beside the download workers. The
//! download batch calls a hook for every saved file; the hook hands JPEG and PNG
//! files to the pool through its bounded queue, so when filtering falls behind,
//! the download worker that just saved a file waits for room instead of memory
//! filling with pending images. Downloading and filtering overlap, and the whole
//! run takes about as long as the slower of the two.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;

use super::{FilterConfig, Job, Pool, Reporter, Summary, has_image_extension, output_name};
use crate::get::input::Inputs;
use crate::get::{self, GetConfig, SavedHook, report};

/// Downloads everything `inputs` yields with `get` and filters each saved image
/// with `filter`; the filter summary is printed after the download summary.
/// Errors only when either batch cannot run at all.
pub fn run(
    get: &GetConfig,
    inputs: Inputs,
    filter: &FilterConfig,
) -> anyhow::Result<(report::Summary, Summary)> {
    let directory = &filter.output_dir;
    fs::create_dir_all(directory)
        .with_context(|| format!("cannot create filter output folder {}", directory.display()))?;
    let reporter = Arc::new(Reporter::new(filter.console.clone()));
    let pool = Arc::new(
        Pool::start(filter, reporter.clone())
            .with_context(|| format!("the {} filter pool cannot start", filter.strategy))?,
    );
    let on_saved: SavedHook = {
        let (pool, filters, directory) = (
            pool.clone(),
            filter.settings.filters.clone(),
            directory.clone(),
        );
        Arc::new(move |path: &Path| {
            // Any file can be downloaded; only images are filtered.
            if !has_image_extension(path) {
                return;
            }
            if let Some(name) = path.file_name() {
                pool.submit(Job {
                    input: path.to_path_buf(),
                    output: directory.join(output_name(&filters, &name.to_string_lossy())),
                });
            }
        })
    };
    let downloads = get::run_with_hook(get, inputs, Some(on_saved));
    let filtered = pool.finish();
    let downloads = downloads?;
    filtered.with_context(|| format!("the {} filter pool failed", filter.strategy))?;
    let summary = reporter.summary();
    reporter.print_summary(&summary);
    Ok((downloads, summary))
}
