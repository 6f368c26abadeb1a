//! `sequential`: one download after another on the calling thread, the baseline.

use super::{Batch, JobQueue, Strategy};
use crate::download::{blocking_agent, fetch_blocking};

pub struct Sequential;

impl Strategy for Sequential {
    fn run(&self, queue: JobQueue, batch: &Batch) -> anyhow::Result<()> {
        let agent = blocking_agent(&batch.context.settings, 1);
        while let Some(job) = batch.next_blocking(&queue) {
            let _host = batch.enter_host_blocking(&job);
            batch.record(&fetch_blocking(&agent, &job, &batch.context));
        }
        Ok(())
    }
}
