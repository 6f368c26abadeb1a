//! The blocking worker loop: take a job, run it, hand the outcome to the sink,
//! until the queue is drained or interrupted. `sequential` is that loop on the
//! calling thread; `threads` is the same loop on N scoped OS threads sharing the
//! task (and whatever it holds, such as one client's connection pool).

use std::thread;
use std::time::Instant;

use super::{Queue, Ran, Sink, Task};

/// Runs the loop on the calling thread as worker `main`.
pub fn sequential<T: Task>(task: &T, queue: &Queue<T::Job>, sink: &Sink<T::Outcome>) {
    work(task, queue, sink, "main");
}

/// Runs the loop on `workers` threads named `thread-1` ... `thread-N`, and
/// returns once every one has stopped. Errors only when a thread cannot start.
pub fn run<T: Task>(
    task: &T,
    workers: usize,
    queue: &Queue<T::Job>,
    sink: &Sink<T::Outcome>,
) -> std::io::Result<()> {
    thread::scope(|scope| {
        for index in 1..=workers.max(1) {
            let name = format!("thread-{index}");
            thread::Builder::new()
                .name(name.clone())
                .spawn_scoped(scope, move || work(task, queue, sink, &name))?;
        }
        Ok(())
    })
}

fn work<T: Task>(task: &T, queue: &Queue<T::Job>, sink: &Sink<T::Outcome>, worker: &str) {
    let _span = tracing::debug_span!("worker", name = worker).entered();
    while let Some(job) = queue.next_blocking() {
        let taken = Instant::now();
        let outcome = task.run(job, worker);
        sink(outcome, Ran { worker, taken });
    }
}
