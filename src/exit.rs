//! The exit statuses every command ends with, one meaning each.

/// How a command ended, as its exit code tells scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ExitStatus {
    /// 0: everything asked for was done.
    Ok,
    /// 1: some item failed, or the run could not go on (a folder that cannot be
    /// made, a worker that cannot start).
    Failed,
    /// 2: the command line was wrong (unknown flag, unreadable input file).
    Usage,
    /// 130: stopped by Ctrl-C or SIGTERM (128 + SIGINT, as shells report it).
    Interrupted,
}

impl ExitStatus {
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Ok => 0,
            ExitStatus::Failed => 1,
            ExitStatus::Usage => 2,
            ExitStatus::Interrupted => 130,
        }
    }

    /// `Ok` when nothing failed, else `Failed`.
    pub fn from_failures(failed: bool) -> ExitStatus {
        if failed {
            ExitStatus::Failed
        } else {
            ExitStatus::Ok
        }
    }

    /// The status of two parts of one run: the worse of the two.
    pub fn and(self, other: ExitStatus) -> ExitStatus {
        self.max(other)
    }
}

impl From<ExitStatus> for std::process::ExitCode {
    fn from(status: ExitStatus) -> Self {
        std::process::ExitCode::from(status.code())
    }
}

/// The exit codes, for `--help`.
pub const EXIT_CODES: &str = "Exit codes:\n  0    everything was done\n  1    an item failed (a URL, an image, an input line), or the run could not go on\n  2    usage error (unknown flag, unreadable input file)\n  130  interrupted by Ctrl-C or SIGTERM";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_the_worse_of_two() {
        assert_eq!(ExitStatus::Interrupted.code(), 130);
        assert_eq!(ExitStatus::Ok.and(ExitStatus::Failed), ExitStatus::Failed);
        assert_eq!(
            ExitStatus::Interrupted.and(ExitStatus::Failed),
            ExitStatus::Interrupted
        );
        assert_eq!(ExitStatus::from_failures(false), ExitStatus::Ok);
    }
}
