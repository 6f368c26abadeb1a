//! A filter run as a pool that jobs can be handed to one at a time: the engine
//! runs on a thread of its own, [`Pool::submit`] puts a job in its bounded queue
//! (waiting while the queue is full) and [`Pool::finish`] closes the queue and
//! waits for the last outcome. This is what lets `grab get --filter` hand over
//! files as they are saved: a slow filter holds the downloads back instead of
//! filling memory. `grab filter` itself feeds the same engine from a list.
//!
//! The engine's queue is used rather than rayon's: rayon's is unbounded, and the
//! same queue has to feed threads and worker processes alike.

use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

use super::{FilterConfig, Job, Outcome, Reporter, run_engine};
use crate::engine::{Interrupt, Queue, Sender, Sink};

/// Jobs waiting per worker: enough that a worker never waits for the next one,
/// few enough that a producer is held back promptly.
pub const QUEUE_PER_WORKER: usize = 2;

/// A running filter pool.
pub struct Pool {
    queue: Sender<Job>,
    engine: Mutex<Option<JoinHandle<anyhow::Result<()>>>>,
}

impl Pool {
    /// Starts the engine with the strategy and workers of `config`, recording
    /// every outcome with `reporter`. Worker processes start on their first job,
    /// so a start failure is that job's outcome.
    pub fn start(config: &FilterConfig, reporter: Arc<Reporter>) -> anyhow::Result<Pool> {
        let workers = config.strategy.workers(config.jobs);
        let (sender, queue) = Queue::bounded(workers * QUEUE_PER_WORKER, Interrupt::default());
        let sink: Sink<Outcome> = Arc::new(move |outcome: Outcome, _| reporter.record(&outcome));
        let config = config.clone();
        let engine = thread::Builder::new()
            .name("filter".to_string())
            .spawn(move || run_engine(&config, &queue, &sink))?;
        Ok(Pool {
            queue: sender,
            engine: Mutex::new(Some(engine)),
        })
    }

    /// Hands a job to the pool, waiting while its queue is full.
    pub fn submit(&self, job: Job) {
        // Fails only once the pool is finished, when no job is expected.
        let _ = self.queue.send_blocking(job);
    }

    /// Waits until every submitted job is done and the workers have stopped.
    pub fn finish(&self) -> anyhow::Result<()> {
        self.queue.close();
        let engine = crate::lock(&self.engine).take();
        match engine.map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => anyhow::bail!("the filter engine panicked"),
            None => Ok(()),
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}
