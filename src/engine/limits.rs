//! The open-file limit, which bounds the work in flight as surely as `-j`
//! does: every download holds a connection and a file, every worker process
//! its pipes. grab raises the soft limit to the hard one at start (a low
//! soft limit is a default, not a choice), and a run caps its jobs at what
//! the limit then allows, saying so once, instead of failing the downloads
//! that find no descriptor left. Unix only: elsewhere there is no such limit
//! to read, and nothing is capped.

/// Descriptors one job in flight may hold at once: its connection, its part
/// file, and a worker process's pipes, a name lookup's socket or its share of
/// an event loop (the async strategy runs a loop per job, up to one per core).
pub const FILES_PER_JOB: u64 = 4;

/// Descriptors the run holds besides its jobs: the standard streams, the
/// manifest, the lock, the report, the input, the log, event loops and their
/// wakers, the folder listing.
pub const FILES_RESERVED: u64 = 24;

/// Raises the soft open-file limit to the hard one; the soft limit after.
/// `None` where it cannot be read (or there is none).
pub fn raise_open_files() -> Option<u64> {
    #[cfg(unix)]
    {
        use nix::sys::resource::{Resource, getrlimit, setrlimit};
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
        if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
            return Some(hard);
        }
        Some(soft)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// The soft open-file limit, if there is one to read.
pub fn open_files() -> Option<u64> {
    #[cfg(unix)]
    {
        use nix::sys::resource::{Resource, getrlimit};
        getrlimit(Resource::RLIMIT_NOFILE)
            .ok()
            .map(|(soft, _)| soft)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Jobs in flight that `limit` descriptors allow, beside `reserved` more
/// the run holds for itself: at least one.
pub fn jobs_allowed(limit: u64, reserved: u64) -> usize {
    let allowed = limit.saturating_sub(FILES_RESERVED + reserved) / FILES_PER_JOB;
    allowed.clamp(1, usize::MAX as u64) as usize
}

/// `workers` capped at what the open-file limit allows, and the note that
/// says so when it caps (`reserved`: descriptors the run holds beyond
/// [`FILES_RESERVED`], such as an image pool's files).
pub fn cap_workers(workers: usize, reserved: u64) -> (usize, Option<String>) {
    let Some(limit) = open_files() else {
        return (workers, None);
    };
    let allowed = jobs_allowed(limit, reserved);
    if workers <= allowed {
        return (workers, None);
    }
    (
        allowed,
        Some(format!(
            "the open-file limit ({limit}, ulimit -n) allows {allowed} download{} at once: \
             running {allowed}, not {workers} (raise the hard limit for more)",
            crate::console::plural(allowed as u64)
        )),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_fit_in_the_limit_beside_the_reserve() {
        assert_eq!(jobs_allowed(40, 0), 4);
        assert_eq!(jobs_allowed(40, 4), 3);
        assert_eq!(jobs_allowed(10, 0), 1);
        assert_eq!(jobs_allowed(1_048_576, 0), (1_048_576 - 24) / 4);
        for limit in [30u64, 40, 64, 256, 1024] {
            let jobs = jobs_allowed(limit, 2) as u64;
            assert!(
                jobs * FILES_PER_JOB + FILES_RESERVED + 2 <= limit.max(28),
                "{limit}"
            );
        }
    }
}
