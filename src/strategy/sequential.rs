//! `sequential`: one download after another on the calling thread, the baseline.

use super::{Batch, JobQueue, Strategy};
use crate::download::{blocking_agent, fetch_blocking};

pub struct Sequential;

impl Strategy for Sequential {
    fn run(&self, queue: JobQueue, batch: &Batch) -> anyhow::Result<()> {
        let agent = blocking_agent(&batch.context.settings, 1);
        let worker = "main";
        let _span = tracing::debug_span!("worker", name = worker).entered();
        while let Some(job) = batch.next_blocking(&queue) {
            let started_at = batch.clock();
            let _host = batch.enter_host_blocking(&job);
            batch.record_as(
                fetch_blocking(&agent, &job, &batch.context),
                worker,
                started_at,
            );
        }
        Ok(())
    }
}
