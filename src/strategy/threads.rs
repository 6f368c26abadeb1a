//! `threads`: N scoped OS threads take jobs from the queue, sharing one blocking
//! client whose keep-alive pool holds a connection for each of them.

use std::thread;

use super::{Batch, JobQueue, Strategy};
use crate::download::{blocking_agent, fetch_blocking};

pub struct Threads {
    pub jobs: usize,
}

impl Strategy for Threads {
    fn run(&self, queue: JobQueue, batch: &Batch) -> anyhow::Result<()> {
        let agent = blocking_agent(&batch.context.settings, self.jobs);
        thread::scope(|scope| -> anyhow::Result<()> {
            for index in 1..=self.jobs {
                let (agent, queue) = (&agent, queue.clone());
                let worker = format!("thread-{index}");
                thread::Builder::new()
                    .name(worker.clone())
                    .spawn_scoped(scope, move || {
                        let _span = tracing::debug_span!("worker", name = %worker).entered();
                        while let Some(job) = batch.next_blocking(&queue) {
                            let started_at = batch.clock();
                            let _host = batch.enter_host_blocking(&job);
                            batch.record_as(
                                fetch_blocking(agent, &job, &batch.context),
                                &worker,
                                started_at,
                            );
                        }
                    })?;
            }
            Ok(())
        })
    }
}
