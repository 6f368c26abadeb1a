//! `async`: N tasks taking the next job from the queue, so at most N jobs are
//! in flight and a job waiting on I/O holds no thread.
//!
//! The tasks run on one single-threaded tokio runtime per core (at most one per
//! task), each with its share of them, as an event loop per core does: the
//! tasks of one runtime never leave its thread. With one multi-threaded
//! runtime, every wake-up that crossed to another thread (a connection's task
//! and its request's) was a futex call and a thread switch: for 2,000 files of
//! 1 KB (`bench/small.sh`'s case) 4,038 futex calls and about 120 µs of CPU per
//! file, against 105 calls and 93 µs on one runtime thread. But one thread is
//! one core: a download is mostly waiting, yet at tens of thousands of small
//! files a second the client's own work fills a core, so each core gets its
//! own loop. The only things the runtimes share are the queue (jobs handed out
//! one at a time under its lock) and the client's sink.

use std::ops::RangeInclusive;
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use tokio::task::JoinSet;
use tracing::Instrument;

use super::{AsyncTask, Queue, Ran, Sink};

/// Runs `workers` tasks named `task-1` ... `task-N` until the queue is drained or
/// interrupted. Errors only when a runtime cannot start or a task panicked.
pub fn run<T: AsyncTask>(
    task: Arc<T>,
    workers: usize,
    queue: &Queue<T::Job>,
    sink: &Sink<T::Outcome>,
) -> anyhow::Result<()> {
    let workers = workers.max(1);
    let cores = thread::available_parallelism().map_or(1, usize::from);
    let runtimes = cores.min(workers);
    if runtimes == 1 {
        return on_one_runtime(task, 1..=workers, queue, sink);
    }
    thread::scope(|scope| {
        let threads: Vec<_> = (0..runtimes)
            .map(|index| {
                let (task, tasks) = (task.clone(), share(index, runtimes, workers));
                thread::Builder::new()
                    .name(format!("runtime-{}", index + 1))
                    .spawn_scoped(scope, move || on_one_runtime(task, tasks, queue, sink))
            })
            .collect::<Result<_, _>>()?;
        for thread in threads {
            thread
                .join()
                .map_err(|_| anyhow::anyhow!("an async runtime thread panicked"))??;
        }
        Ok(())
    })
}

/// The numbers of the tasks runtime `index` of `runtimes` runs: `workers`
/// split as evenly as they go, in order.
fn share(index: usize, runtimes: usize, workers: usize) -> RangeInclusive<usize> {
    let start = index * workers / runtimes;
    let end = (index + 1) * workers / runtimes;
    start + 1..=end
}

/// Runs the tasks numbered `tasks` on a single-threaded runtime on this thread.
fn on_one_runtime<T: AsyncTask>(
    task: Arc<T>,
    tasks: RangeInclusive<usize>,
    queue: &Queue<T::Job>,
    sink: &Sink<T::Outcome>,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut running = JoinSet::new();
        for index in tasks {
            let (task, queue, sink) = (task.clone(), queue.clone(), sink.clone());
            let worker = format!("task-{index}");
            let span = tracing::debug_span!("worker", name = %worker);
            running.spawn(
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
        while let Some(joined) = running.join_next().await {
            joined?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::share;

    #[test]
    fn tasks_are_shared_out_whole_and_in_order() {
        for (runtimes, workers) in [(2, 64), (2, 3), (3, 3), (2, 2), (4, 7)] {
            let shares: Vec<_> = (0..runtimes)
                .map(|index| share(index, runtimes, workers))
                .collect();
            let numbers: Vec<usize> = shares.iter().cloned().flatten().collect();
            assert_eq!(
                numbers,
                (1..=workers).collect::<Vec<_>>(),
                "{runtimes} {workers}"
            );
            assert!(shares.iter().all(|tasks| !tasks.is_empty()));
        }
    }
}
