//! `async`: one tokio runtime, one shared reqwest client, and N tasks that each take
//! the next job from the queue, so at most N downloads are in flight.

use tokio::task::JoinSet;
use tracing::Instrument;

use super::{Batch, JobQueue, Strategy};
use crate::download::{async_client, fetch_async};

pub struct Async {
    pub jobs: usize,
}

impl Strategy for Async {
    fn run(&self, queue: JobQueue, batch: &Batch) -> anyhow::Result<()> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            let client = async_client(&batch.context.settings, self.jobs)?;
            let mut tasks = JoinSet::new();
            for index in 1..=self.jobs {
                let (client, queue, batch) = (client.clone(), queue.clone(), batch.clone());
                let worker = format!("task-{index}");
                let span = tracing::debug_span!("worker", name = %worker);
                tasks.spawn(
                    async move {
                        while let Some(job) = batch.next(&queue).await {
                            let started_at = batch.clock();
                            let _host = batch.enter_host(&job).await;
                            let outcome = fetch_async(&client, &job, &batch.context).await;
                            batch.record_as(outcome, &worker, started_at);
                        }
                    }
                    .instrument(span),
                );
            }
            while let Some(joined) = tasks.join_next().await {
                joined?;
            }
            Ok(())
        })
    }
}
