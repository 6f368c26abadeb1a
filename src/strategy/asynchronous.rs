//! `async`: one tokio runtime, one shared reqwest client, and N tasks that each take
//! the next job from the queue, so at most N downloads are in flight.

use tokio::task::JoinSet;

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
            for _ in 0..self.jobs {
                let (client, queue, batch) = (client.clone(), queue.clone(), batch.clone());
                tasks.spawn(async move {
                    while let Some(job) = batch.next(&queue).await {
                        let _host = batch.enter_host(&job).await;
                        batch.record(&fetch_async(&client, &job, &batch.context).await);
                    }
                });
            }
            while let Some(joined) = tasks.join_next().await {
                joined?;
            }
            Ok(())
        })
    }
}
