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

/// Runs every job of a list on `workers` threads and returns the outcomes in the
/// list's order: for a short list known up front (`grab samples`).
pub fn map<T: Task>(task: &T, workers: usize, jobs: Vec<T::Job>) -> std::io::Result<Vec<T::Outcome>>
where
    T::Outcome: 'static,
{
    let count = jobs.len();
    let (sender, queue) = Queue::bounded(count, super::Interrupt::default());
    for (index, job) in jobs.into_iter().enumerate() {
        // The queue holds the whole list; it was made for it.
        let _ = sender.try_send((index, job));
    }
    drop(sender);
    let slots: std::sync::Arc<std::sync::Mutex<Vec<Option<T::Outcome>>>> =
        std::sync::Arc::new(std::sync::Mutex::new((0..count).map(|_| None).collect()));
    let indexed = Indexed(task);
    let sink: Sink<(usize, T::Outcome)> = {
        let slots = slots.clone();
        std::sync::Arc::new(move |(index, outcome), _| crate::lock(&slots)[index] = Some(outcome))
    };
    run(&indexed, workers.min(count).max(1), &queue, &sink)?;
    let outcomes = std::mem::take(&mut *crate::lock(&slots));
    Ok(outcomes.into_iter().flatten().collect())
}

/// A task's jobs numbered, so their outcomes can be put back in order.
struct Indexed<'a, T>(&'a T);

impl<T: Task> super::Work for Indexed<'_, T> {
    type Job = (usize, T::Job);
    type Outcome = (usize, T::Outcome);
}

impl<T: Task> Task for Indexed<'_, T> {
    fn run(&self, (index, job): (usize, T::Job), worker: &str) -> (usize, T::Outcome) {
        (index, self.0.run(job, worker))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::mock::{Mock, MockJob};

    #[test]
    fn map_keeps_the_list_order_whatever_finishes_first() {
        let jobs: Vec<MockJob> = (0..12)
            .map(|id| MockJob {
                id,
                // Later jobs finish first.
                sleep_ms: 12 - id,
                ..MockJob::default()
            })
            .collect();
        let outcomes = map(&Mock::default(), 4, jobs).unwrap();
        let ids: Vec<u64> = outcomes.iter().map(|outcome| outcome.id).collect();
        assert_eq!(ids, (0..12).collect::<Vec<_>>());
        assert!(map(&Mock::default(), 4, Vec::new()).unwrap().is_empty());
    }
}
