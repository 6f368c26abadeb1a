//! `async`: one tokio runtime and N tasks, each taking the next job from the
//! queue, so at most N jobs are in flight and a job waiting on I/O holds no
//! thread.
//!
//! The runtime is single-threaded, as curl's event loop is: with worker threads,
//! every wake-up that crosses to another thread (a connection's task and its
//! request's, a job taken from the queue) is a futex call and a thread switch.
//! For 2,000 files of 1 KB (`bench/small.sh`'s case) that was 4,038 futex calls
//! and about 120 µs of CPU per file against 105 calls and 93 µs here. A download
//! spends its time waiting on the network, so one thread keeps 64 of them busy.

use std::sync::Arc;
use std::time::Instant;

use tokio::task::JoinSet;
use tracing::Instrument;

use super::{AsyncTask, Queue, Ran, Sink};

/// Runs `workers` tasks named `task-1` ... `task-N` until the queue is drained or
/// interrupted. Errors only when the runtime cannot start or a task panicked.
pub fn run<T: AsyncTask>(
    task: Arc<T>,
    workers: usize,
    queue: &Queue<T::Job>,
    sink: &Sink<T::Outcome>,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut tasks = JoinSet::new();
        for index in 1..=workers.max(1) {
            let (task, queue, sink) = (task.clone(), queue.clone(), sink.clone());
            let worker = format!("task-{index}");
            let span = tracing::debug_span!("worker", name = %worker);
            tasks.spawn(
                async move {
                    while let Some(job) = queue.next().await {
                        let taken = Instant::now();
                        let outcome = task.run(job, &worker).await;
                        sink(
                            outcome,
                            Ran {
                                worker: &worker,
                                taken,
                            },
                        );
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
