//! The three strategies of `grab filter` behind one small pool: jobs go in with
//! [`Pool::submit`], which blocks while the bounded queue is full, and outcomes
//! go to the batch's [`Reporter`]. `sequential` runs each job inside `submit`;
//! `threads` has N OS threads taking jobs from the queue; `processes` has N
//! supervisor threads, each feeding one worker process ([`super::processes`]).
//! The bounded queue is what lets `grab get --filter` hand over files as they
//! are saved: a slow filter holds the downloads back instead of filling memory.
//!
//! The pool is hand-made rather than rayon's: rayon's queue is unbounded, and
//! the same queue has to feed threads and process supervisors alike.

use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

use super::processes::Supervisor;
use super::{FilterConfig, Job, Reporter, Settings, StrategyKind, filter_file};

/// Jobs waiting per worker: enough that a worker never waits for the next one,
/// few enough that a producer is held back promptly.
const QUEUE_PER_WORKER: usize = 2;

/// A running filter pool.
pub struct Pool {
    backend: Backend,
}

enum Backend {
    /// `sequential`: every job runs inside `submit`, on the caller's thread.
    Inline {
        settings: Settings,
        reporter: Arc<Reporter>,
    },
    /// `threads` and `processes`: workers taking jobs from one bounded queue.
    Workers {
        queue: async_channel::Sender<Job>,
        workers: Mutex<Vec<JoinHandle<()>>>,
    },
}

impl Pool {
    /// Starts the strategy of `config` with its number of workers. Worker
    /// processes start on their first job, so a start failure is that job's.
    pub fn start(config: &FilterConfig, reporter: Arc<Reporter>) -> anyhow::Result<Pool> {
        let jobs = config.jobs.max(1);
        let (queue, receiver) = async_channel::bounded::<Job>(jobs * QUEUE_PER_WORKER);
        let mut workers = Vec::with_capacity(jobs);
        match config.strategy {
            StrategyKind::Sequential => {
                return Ok(Pool {
                    backend: Backend::Inline {
                        settings: config.settings.clone(),
                        reporter,
                    },
                });
            }
            StrategyKind::Threads => {
                let settings = Arc::new(config.settings.clone());
                for index in 1..=jobs {
                    let (receiver, reporter, settings) =
                        (receiver.clone(), reporter.clone(), settings.clone());
                    let worker = thread::Builder::new()
                        .name(format!("filter-{index}"))
                        .spawn(move || {
                            while let Ok(job) = receiver.recv_blocking() {
                                reporter.record(&filter_file(&job, &settings));
                            }
                        })?;
                    workers.push(worker);
                }
            }
            StrategyKind::Processes => {
                let settings = serde_json::to_string(&config.settings)?;
                for index in 1..=jobs {
                    let mut supervisor = Supervisor::new(
                        index,
                        config.worker_program.clone(),
                        settings.clone(),
                        reporter.clone(),
                    );
                    let (receiver, reporter) = (receiver.clone(), reporter.clone());
                    let worker = thread::Builder::new()
                        .name(format!("filter-process-{index}"))
                        .spawn(move || {
                            while let Ok(job) = receiver.recv_blocking() {
                                reporter.record(&supervisor.filter(&job));
                            }
                            supervisor.stop();
                        })?;
                    workers.push(worker);
                }
            }
        }
        Ok(Pool {
            backend: Backend::Workers {
                queue,
                workers: Mutex::new(workers),
            },
        })
    }

    /// Hands a job to the pool, waiting while the queue is full (`sequential`:
    /// filters it right here).
    pub fn submit(&self, job: Job) {
        match &self.backend {
            Backend::Inline { settings, reporter } => reporter.record(&filter_file(&job, settings)),
            Backend::Workers { queue, .. } => {
                // Fails only once the pool is finished, when no job is expected.
                let _ = queue.send_blocking(job);
            }
        }
    }

    /// Waits until every submitted job is done and the workers have stopped.
    pub fn finish(&self) {
        if let Backend::Workers { queue, workers } = &self.backend {
            queue.close();
            let workers =
                std::mem::take(&mut *workers.lock().unwrap_or_else(|poison| poison.into_inner()));
            for worker in workers {
                // A job's panic is caught inside `filter_file`; a worker thread
                // cannot panic short of a bug, and that bug is not this batch's
                // to report.
                let _ = worker.join();
            }
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.finish();
    }
}
