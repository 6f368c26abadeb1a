//! How downloads behave, whatever the strategy: the settings every worker
//! (thread, task or process) is given. Sent to worker processes as JSON.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How downloads behave, whatever the strategy. Sent to worker processes as is.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    pub output_dir: PathBuf,
    pub connect_timeout: Duration,
    /// A transfer that receives nothing for this long is abandoned.
    pub idle_timeout: Duration,
    /// Extra attempts after a transient failure.
    pub retries: u32,
    /// The base of the exponential backoff between attempts.
    pub retry_wait: Duration,
    /// Larger responses are abandoned.
    pub max_size: Option<u64>,
    /// MIME patterns a response must match (Content-Type and first bytes); empty
    /// accepts anything.
    pub accept: Vec<String>,
    /// Name files as the server's Content-Disposition suggests.
    pub content_disposition: bool,
    /// The User-Agent header; `None` sends `grab/VERSION`.
    #[serde(default)]
    pub user_agent: Option<String>,
    /// `X-Robots-Tag` directives (`noai`, `noindex`...) that refuse a response
    /// before its body is read, as an opt-out (`grab dataset`); empty refuses none.
    #[serde(default)]
    pub refused_robots: Vec<String>,
}

impl Settings {
    /// The defaults of `grab get`, saving into `output_dir`.
    pub fn new(output_dir: impl Into<PathBuf>) -> Settings {
        Settings {
            output_dir: output_dir.into(),
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            retries: 3,
            retry_wait: Duration::from_secs(1),
            max_size: None,
            accept: Vec::new(),
            content_disposition: false,
            user_agent: None,
            refused_robots: Vec::new(),
        }
    }

    /// `grab/VERSION`, the User-Agent unless one is given.
    pub fn default_user_agent() -> String {
        format!("grab/{}", env!("CARGO_PKG_VERSION"))
    }

    /// The User-Agent these settings send.
    pub fn user_agent(&self) -> String {
        self.user_agent
            .clone()
            .unwrap_or_else(Settings::default_user_agent)
    }
}
