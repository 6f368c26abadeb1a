//! What differs between systems in running worker processes, in one place:
//! keeping a terminal's Ctrl-C from workers, tying a worker's life to its
//! parent's, and a process's sudden death (the mock's `kill -9`).
//!
//! A worker must not outlive its parent: after a `kill -9` of the parent it
//! would go on writing files that a new run is about to use. Each system has
//! its own tie, and one way works on all of them:
//! - Linux: the kernel sends the worker SIGKILL when the supervisor thread that
//!   started it goes (`PR_SET_PDEATHSIG`), set by the worker itself;
//! - Windows: the parent puts each worker in a job object that kills every
//!   process in it when its last handle closes, which the system does when
//!   the parent ends, however it ends;
//! - everywhere: the worker's stdin is its parent's pipe, which the system
//!   closes when the parent dies. On systems without a kernel tie (macOS, the
//!   BSDs) a worker watches it, and ends when it closes mid-job
//!   (`processes::Pipe`); between jobs a closed pipe is the parent's way of
//!   saying "no more jobs", and the worker ends as usual.

use std::process::{Child, Command};

/// Asks for the pipe to be watched where a kernel tie exists too: how the
/// watch is exercised on Linux.
pub const WATCH_PIPE_VARIABLE: &str = "GRAB_WORKER_WATCH_PIPE";

/// Starts `command` apart from the terminal's Ctrl-C, which then reaches only
/// the parent, which decides how the run stops: its own process group on
/// Unix, its own console process group on Windows (which turns Ctrl-C off in
/// it).
pub fn apart_from_terminal(command: &mut Command) -> &mut Command {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        command.process_group(0)
    }
    #[cfg(windows)]
    {
        use std::os::windows::process::CommandExt;
        use windows_sys::Win32::System::Threading::CREATE_NEW_PROCESS_GROUP;
        command.creation_flags(CREATE_NEW_PROCESS_GROUP)
    }
}

/// The parent's side of the tie, for a worker just started: on Windows it
/// joins the job that dies with this process; elsewhere there is nothing to do
/// here.
#[cfg(not(windows))]
pub fn tie_to_this_process(_child: &Child) -> std::io::Result<()> {
    Ok(())
}

/// The parent's side of the tie, for a worker just started: on Windows it
/// joins the job that dies with this process.
#[cfg(windows)]
pub fn tie_to_this_process(child: &Child) -> std::io::Result<()> {
    windows::tie(child)
}

/// The worker's side of the tie, first thing in a worker: Linux's kernel tie,
/// and a check that the parent (`parent`, the pid it gave) is still there.
/// True when the worker must watch its pipe: no kernel tie here, or one asked
/// for ([`WATCH_PIPE_VARIABLE`]).
pub fn tie_to_parent(parent: Option<u32>) -> anyhow::Result<bool> {
    #[cfg(target_os = "linux")]
    {
        use anyhow::Context as _;
        nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
            .context("cannot tie the worker to its parent")?;
    }
    // A parent gone before the tie was made is caught by comparing the pid
    // (on Windows the job is joined at start, so no such gap exists).
    #[cfg(unix)]
    if parent.is_some_and(|pid| i64::from(nix::unistd::getppid().as_raw()) != i64::from(pid)) {
        anyhow::bail!("the parent is gone");
    }
    #[cfg(not(unix))]
    let _ = parent;
    let kernel_tie = cfg!(any(target_os = "linux", windows));
    Ok(!kernel_tie || std::env::var_os(WATCH_PIPE_VARIABLE).is_some())
}

/// Ends this process at once, as `kill -9` would: no outcome, no cleanup.
pub fn die_now() -> ! {
    #[cfg(unix)]
    let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    #[cfg(windows)]
    // SAFETY: terminating the current process takes no pointer and ends here.
    unsafe {
        use windows_sys::Win32::System::Threading::{GetCurrentProcess, TerminateProcess};
        TerminateProcess(GetCurrentProcess(), 137);
    }
    std::process::abort()
}

#[cfg(windows)]
mod windows {
    use std::io;
    use std::os::windows::io::AsRawHandle;
    use std::process::Child;
    use std::sync::OnceLock;

    use windows_sys::Win32::Foundation::HANDLE;
    use windows_sys::Win32::System::JobObjects::{
        AssignProcessToJobObject, CreateJobObjectW, JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
        JOBOBJECT_EXTENDED_LIMIT_INFORMATION, JobObjectExtendedLimitInformation,
        SetInformationJobObject,
    };

    /// The job every worker of this process joins: its handle is never closed,
    /// so it closes, killing them, when this process ends.
    struct Job(HANDLE);

    // SAFETY: a job handle may be used from any thread.
    unsafe impl Send for Job {}
    unsafe impl Sync for Job {}

    fn job() -> io::Result<&'static Job> {
        static JOB: OnceLock<Result<Job, i32>> = OnceLock::new();
        let job = JOB.get_or_init(|| {
            // SAFETY: a fresh unnamed job with default security; the limit
            // structure is plain data, zeroed but for the one flag.
            unsafe {
                let handle = CreateJobObjectW(std::ptr::null(), std::ptr::null());
                if handle.is_null() {
                    return Err(io::Error::last_os_error().raw_os_error().unwrap_or(0));
                }
                let mut limits: JOBOBJECT_EXTENDED_LIMIT_INFORMATION = std::mem::zeroed();
                limits.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
                let set = SetInformationJobObject(
                    handle,
                    JobObjectExtendedLimitInformation,
                    (&raw const limits).cast(),
                    size_of::<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>() as u32,
                );
                if set == 0 {
                    return Err(io::Error::last_os_error().raw_os_error().unwrap_or(0));
                }
                Ok(Job(handle))
            }
        });
        job.as_ref()
            .map_err(|&code| io::Error::from_raw_os_error(code))
    }

    pub fn tie(child: &Child) -> io::Result<()> {
        let job = job()?;
        // SAFETY: both handles are open: the job's for good, the child's
        // while `child` is borrowed.
        if unsafe { AssignProcessToJobObject(job.0, child.as_raw_handle()) } == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}
