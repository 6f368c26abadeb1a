//! `grab get --filter LIST`, composed of the two commands' libraries: each image is filtered as soon as it is saved, on a
//! filter pool of its own (threads, one per CPU) beside the download workers. The
//! download batch calls a hook for every saved file; the hook hands JPEG and PNG
//! files to the pool through its bounded queue, so when filtering falls behind,
//! the download worker that just saved a file waits for room instead of memory
//! filling with pending images. Downloading and filtering overlap, and the whole
//! run takes about as long as the slower of the two.
//!
//! A re-run that skips a file as already complete filters it when its filtered
//! copy is missing (and leaves it when the copy is there). Outputs never
//! replace a file the filters did not write ([`record`](crate::filter::record)), so a
//! filter folder that is the download folder never loses a download: an output
//! whose name a download holds takes the next numbered name.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;

use crate::filter::{
    FilterConfig, Job, Pool, Reporter, Summary, has_image_extension, output_name, record,
};
use crate::get::input::Inputs;
use crate::get::{self, Arrival, GetConfig, SavedHook, report};

/// Downloads everything `inputs` yields with `get` and filters each saved image
/// with `filter`; both summaries are returned, for the caller to print.
/// Errors only when either batch cannot run at all.
pub fn run(
    get: &GetConfig,
    inputs: Inputs,
    filter: &FilterConfig,
) -> anyhow::Result<(report::Summary, Summary)> {
    let directory = &filter.output_dir;
    crate::fs::create_folder(directory, "filter output folder")?;
    let reporter = Arc::new(Reporter::new(filter.console.clone()));
    let pool = Arc::new(
        Pool::start(filter, reporter.clone())
            .with_context(|| format!("the {} filter pool cannot start", filter.strategy))?,
    );
    let recorded = record::load(directory);
    let on_saved: SavedHook = {
        let (pool, filters, directory, reporter) = (
            pool.clone(),
            filter.settings.filters.clone(),
            directory.clone(),
            reporter.clone(),
        );
        Arc::new(move |path: &Path, arrival: Arrival| {
            // Any file can be downloaded; only images are filtered.
            if !has_image_extension(path) {
                return;
            }
            let Some(name) = path.file_name() else {
                return;
            };
            let desired = output_name(&filters, &name.to_string_lossy());
            let (output, ours) = record::free_name(&directory, &desired, &recorded, |_| false);
            if arrival == Arrival::AlreadyComplete && ours {
                reporter.skip(path, "already filtered");
                return;
            }
            pool.submit(Job {
                input: path.to_path_buf(),
                output: directory.join(output),
                replace: ours,
            });
        })
    };
    let downloads = get::run_with_hook(get, inputs, Some(on_saved));
    let filtered = pool.finish();
    let downloads = downloads?;
    filtered.with_context(|| format!("the {} filter pool failed", filter.strategy))?;
    Ok((downloads, reporter.summary()))
}
