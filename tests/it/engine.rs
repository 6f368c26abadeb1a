//! The engine on its own, with the mock task: every job gets one outcome with
//! every strategy, a worker process that dies mid-job is replaced and its job
//! retried once, a worker that cannot start is its own outcome, and the
//! interrupt stops new jobs. Then the same through the filter's use of it.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread;

use grab::Named;
use grab::console::Console;
use grab::engine::WorkerProgram;
use grab::engine::{self, Interrupt, Queue, Sink, Strategy};
use grab::engine::{Die, Mock, MockJob, MockOutcome};
use grab::filter::{self, Filter, FilterConfig, Settings};

use crate::support::Scratch;

fn program() -> WorkerProgram {
    WorkerProgram {
        path: PathBuf::from(env!("CARGO_BIN_EXE_grab")),
        log_filter: "warn".to_string(),
    }
}

/// Runs `jobs` through `strategy` with `workers`, feeding the queue from a
/// thread of its own; `after` sees each outcome as it arrives (with the
/// interrupt, to raise it).
fn drain(
    mock: &Arc<Mock>,
    strategy: Strategy,
    workers: usize,
    program: &WorkerProgram,
    jobs: Vec<MockJob>,
    after: impl Fn(&MockOutcome, &Interrupt) + Send + Sync + 'static,
) -> Vec<MockOutcome> {
    let interrupt = Interrupt::default();
    let (sender, queue) = Queue::bounded(workers * 2, interrupt.clone());
    let producer = thread::spawn(move || {
        for job in jobs {
            if sender.send_blocking(job).is_err() {
                break;
            }
        }
    });
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let sink: Sink<MockOutcome> = {
        let (outcomes, interrupt) = (outcomes.clone(), interrupt.clone());
        Arc::new(move |outcome: MockOutcome, ran: engine::Ran| {
            assert!(!ran.worker.is_empty());
            after(&outcome, &interrupt);
            outcomes.lock().unwrap().push(outcome);
        })
    };
    match strategy {
        Strategy::Sequential => engine::run_sequential(&**mock, &queue, &sink),
        Strategy::Threads => engine::run_threads(&**mock, workers, &queue, &sink).unwrap(),
        Strategy::Processes => {
            engine::run_processes(&**mock, program, workers, &queue, &sink, &Console::silent())
                .unwrap()
        }
        Strategy::Async => engine::run_async(mock.clone(), workers, &queue, &sink).unwrap(),
    }
    // An interrupted run leaves jobs in the queue: let the producer go.
    queue.close();
    producer.join().unwrap();
    std::mem::take(&mut *outcomes.lock().unwrap())
}

fn jobs(count: u64) -> Vec<MockJob> {
    (0..count)
        .map(|id| MockJob {
            id,
            sleep_ms: id % 3,
            fail: id % 7 == 3,
            ask: (id % 5 == 1).then(|| format!("question {id}")),
            ..MockJob::default()
        })
        .collect()
}

#[test]
fn every_job_gets_one_outcome_with_every_strategy() {
    for &strategy in Strategy::ALL {
        let mock = Arc::new(Mock::default());
        let outcomes = drain(&mock, strategy, 4, &program(), jobs(60), |_, _| {});
        assert_eq!(outcomes.len(), 60, "{strategy}");
        let ids: BTreeSet<u64> = outcomes.iter().map(|outcome| outcome.id).collect();
        assert_eq!(ids, (0..60).collect(), "{strategy}: each job once");
        for outcome in &outcomes {
            let expected = if outcome.id % 7 == 3 {
                Err(format!("job {} failed as asked", outcome.id))
            } else if outcome.id % 5 == 1 {
                Ok(format!("QUESTION {}", outcome.id))
            } else {
                Ok(outcome.id.to_string())
            };
            assert_eq!(outcome.result, expected, "{strategy}");
            let here = outcome.pid == std::process::id();
            assert_eq!(here, strategy != Strategy::Processes, "{strategy}");
        }
        if strategy == Strategy::Processes {
            assert_eq!(mock.begun.load(Ordering::SeqCst), 60);
            assert_eq!(mock.died.load(Ordering::SeqCst), 0);
        }
    }
}

#[test]
fn a_worker_process_that_dies_mid_job_is_replaced_and_the_job_retried_once() {
    let scratch = Scratch::new();
    let marker = scratch.root.path().join("died-once");
    let mut list = jobs(20);
    list[5].die = Die::Once(marker.clone());
    list[5].ask = Some("after a death".to_string());
    list[5].fail = false;
    list[12].die = Die::Always;
    let mock = Arc::new(Mock::default());
    let outcomes = drain(&mock, Strategy::Processes, 2, &program(), list, |_, _| {});
    assert_eq!(outcomes.len(), 20);
    let by_id = |id: u64| outcomes.iter().find(|outcome| outcome.id == id).unwrap();
    assert!(marker.exists());
    // Retried in a new worker, which talks to the parent like any other.
    assert_eq!(by_id(5).result, Ok("AFTER A DEATH".to_string()));
    // Dies every time: tried twice, then lost, and the run goes on.
    assert_eq!(by_id(12).result, Err("worker died".to_string()));
    assert_eq!(mock.died.load(Ordering::SeqCst), 3);
    // Twenty jobs, two of them sent twice.
    assert_eq!(mock.begun.load(Ordering::SeqCst), 22);
    let workers: BTreeSet<u32> = outcomes
        .iter()
        .filter(|outcome| outcome.pid != 0)
        .map(|outcome| outcome.pid)
        .collect();
    assert!(
        workers.len() >= 3,
        "dead workers were replaced: {workers:?}"
    );
}

#[test]
fn a_worker_that_cannot_start_is_its_own_outcome() {
    let missing = WorkerProgram {
        path: PathBuf::from("/nonexistent/grab"),
        log_filter: "warn".to_string(),
    };
    let mock = Arc::new(Mock::default());
    let outcomes = drain(&mock, Strategy::Processes, 2, &missing, jobs(5), |_, _| {});
    assert_eq!(outcomes.len(), 5);
    for outcome in outcomes {
        let error = outcome.result.unwrap_err();
        assert!(
            error.starts_with("no worker: cannot start worker process /nonexistent/grab"),
            "{error}"
        );
    }
    assert_eq!(mock.begun.load(Ordering::SeqCst), 0);
}

#[test]
fn the_interrupt_stops_new_jobs() {
    for &strategy in Strategy::ALL {
        let workers = strategy.workers(3);
        let mock = Arc::new(Mock::default());
        let list: Vec<MockJob> = (0..200)
            .map(|id| MockJob {
                id,
                sleep_ms: 2,
                ..MockJob::default()
            })
            .collect();
        let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let outcomes = drain(&mock, strategy, workers, &program(), list, {
            let seen = seen.clone();
            move |_, interrupt| {
                if seen.fetch_add(1, Ordering::SeqCst) + 1 == 5 {
                    interrupt.request();
                }
            }
        });
        // Jobs already running finish; no worker takes a new one.
        assert!(outcomes.len() >= 5, "{strategy}: {}", outcomes.len());
        assert!(
            outcomes.len() < 5 + workers,
            "{strategy}: {} outcomes after an interrupt at the 5th",
            outcomes.len()
        );
    }
}

#[test]
fn the_filter_runs_on_every_one_of_its_strategies() {
    let scratch = Scratch::new();
    let images = scratch.root.path().join("images");
    std::fs::create_dir(&images).unwrap();
    let mut inputs = Vec::new();
    for index in 0..6 {
        let path = images.join(format!("photo-{index}.png"));
        std::fs::write(
            &path,
            grab::gallery::encode(
                &format!("photo-{index}"),
                64,
                48,
                grab::gallery::Format::Png,
            ),
        )
        .unwrap();
        inputs.push(path);
    }
    // One that is not an image fails alone.
    let broken = images.join("broken.png");
    std::fs::write(&broken, b"not a png").unwrap();
    inputs.push(broken);
    for strategy in filter::STRATEGIES {
        let output = scratch.root.path().join(format!("out-{strategy}"));
        std::fs::create_dir(&output).unwrap();
        let config = FilterConfig {
            settings: Settings::with_filters(vec![Filter::Grayscale]),
            output_dir: output.clone(),
            strategy,
            jobs: 3,
            console: Console::silent(),
            worker_program: program(),
            memory_limit: 1 << 30,
        };
        let reporter = Arc::new(filter::Reporter::new(Console::silent()));
        let pool = filter::Pool::start(&config, reporter.clone()).unwrap();
        for input in &inputs {
            pool.submit(filter::Job {
                replace: true,
                input: input.clone(),
                output: output.join(format!(
                    "grayscale_{}",
                    input.file_name().unwrap().to_string_lossy()
                )),
            });
        }
        pool.finish().unwrap();
        let summary = reporter.summary();
        assert_eq!((summary.processed, summary.failed), (6, 1), "{strategy}");
        // The six outputs, beside the record of them.
        let written = std::fs::read_dir(&output)
            .unwrap()
            .filter(|entry| entry.as_ref().unwrap().file_name() != filter::RECORD_NAME)
            .count();
        assert_eq!(written, 6, "{strategy}");
    }
}

/// A worker that watches its pipe (the way macOS workers die with their
/// parent, asked for here) ends as soon as the pipe from its parent closes
/// mid-job, without the job's outcome: the job would sleep for ten minutes.
#[test]
fn a_watching_worker_ends_when_its_parents_pipe_closes_mid_job() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    use std::time::Duration;
    let mut worker = Command::new(env!("CARGO_BIN_EXE_grab"))
        .args([grab::engine::WORKER_SUBCOMMAND, grab::engine::MOCK_TASK])
        .args(["--settings", "{}"])
        .env(grab::engine::WATCH_PIPE_VARIABLE, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let job = MockJob {
        id: 1,
        sleep_ms: 600_000,
        ..MockJob::default()
    };
    let line = serde_json::json!({ "job": job }).to_string();
    let mut pipe = worker.stdin.take().unwrap();
    writeln!(pipe, "{line}").unwrap();
    drop(pipe);
    let output = crate::faults::wait_at_most(worker, Duration::from_secs(60));
    assert_eq!(
        output.status.code(),
        Some(grab::exit::ExitStatus::Interrupted.code().into()),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.stdout.is_empty(), "no outcome: {:?}", output.stdout);
}
