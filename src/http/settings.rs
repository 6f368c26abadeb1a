//! How downloads behave, whatever the strategy: the settings every worker
//! (thread, task or process) is given. Sent to worker processes as JSON.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::proxy::Proxies;
use super::tls::Trust;
use crate::fs::layout::Layout;

/// How downloads behave, whatever the strategy. Sent to worker processes as is.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    pub output_dir: PathBuf,
    /// When an attempt is abandoned.
    pub timeouts: Timeouts,
    /// Extra attempts after a transient failure.
    pub retries: u32,
    /// The base of the exponential backoff between attempts.
    pub retry_wait: Duration,
    /// What a response must be to be kept.
    pub acceptance: Acceptance,
    /// Name files as the server's Content-Disposition suggests.
    pub content_disposition: bool,
    /// Sent with every request (`-H`); credentials (`Authorization`, `Cookie`)
    /// only to the host asked for, not to where a redirect leads elsewhere.
    pub headers: Vec<(String, String)>,
    pub user_agent: String,
    /// Which servers are trusted over https.
    pub trust: Trust,
    /// Which requests go through a proxy.
    pub proxies: Proxies,
    /// Bandwidth caps (`--limit-rate`, `--limit-rate-per-transfer`).
    pub rates: Rates,
    /// Where in the output folder files go (`-x`, `-nH`, `--cut-dirs`, `--spread`).
    #[serde(default)]
    pub layout: Layout,
    /// Date each file by the server's `Last-Modified` (wget's default).
    #[serde(default = "yes")]
    pub server_timestamps: bool,
    /// `--compressed`: ask for gzip, br or zstd and decode what comes.
    #[serde(default)]
    pub compressed: bool,
    /// `--load-cookies`, `--save-cookies`, `--keep-session-cookies`.
    #[serde(default)]
    pub cookies: CookieFiles,
    /// `--netrc`/`--netrc-file`: where Basic credentials per host are read.
    #[serde(default)]
    pub netrc: Option<PathBuf>,
    /// Which HTTP versions are spoken (`--http1.1`, `--http2-prior-knowledge`).
    #[serde(default)]
    pub http_version: HttpVersion,
    /// `--split`: at most this many connections fetch one file, in ranges,
    /// when its server allows (see `http/split.rs`); 1 fetches it whole.
    #[serde(default = "one")]
    pub split: usize,
    /// `--min-split-size`: no piece of a split file is smaller.
    #[serde(default = "default_min_split_size")]
    pub min_split_size: u64,
    /// `--dns-servers`: the name servers asked (see `http/resolve.rs`);
    /// empty: the system's.
    #[serde(default)]
    pub dns_servers: Vec<SocketAddr>,
}

fn one() -> usize {
    1
}

/// aria2's default `--min-split-size`: 1 MiB.
pub const DEFAULT_MIN_SPLIT_SIZE: u64 = 1024 * 1024;

fn default_min_split_size() -> u64 {
    DEFAULT_MIN_SPLIT_SIZE
}

/// Which HTTP versions a download may speak, the same for every strategy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum HttpVersion {
    /// HTTP/2 over TLS when the server offers it by ALPN, else HTTP/1.1;
    /// plain `http://` is HTTP/1.1 (curl's default, and its `--http2`).
    #[default]
    Negotiated,
    /// HTTP/1.1 only: h2 is not offered (`--http1.1`).
    Http1Only,
    /// Cleartext HTTP/2 to `http://` URLs with no upgrade dance
    /// (`--http2-prior-knowledge`); `https://` still negotiates by ALPN.
    Http2PriorKnowledge,
}

/// The Netscape cookie files of a run, as curl and wget take them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CookieFiles {
    /// `--load-cookies`: the file the jar starts with.
    pub load: Option<PathBuf>,
    /// `--save-cookies`: where the jar is written when the run ends.
    pub save: Option<PathBuf>,
    /// `--keep-session-cookies`: save cookies without an expiry too.
    pub keep_session: bool,
}

/// When an attempt is abandoned, as curl's timeouts say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeouts {
    /// Connecting (`--connect-timeout`).
    pub connect: Duration,
    /// A transfer that receives nothing for this long (`--timeout`).
    pub idle: Duration,
    /// An attempt that takes longer than this, from its request to its last
    /// byte (curl's `--max-time`); a retry gets as long again.
    pub max_time: Option<Duration>,
    /// A transfer slower than this (bytes per second) for
    /// [`Timeouts::speed_time`] (curl's `--speed-limit`).
    pub speed_limit: Option<u64>,
    pub speed_time: Duration,
}

impl Default for Timeouts {
    /// `grab get`'s defaults: 10 s to connect, 30 s of silence, no limit
    /// on the whole attempt.
    fn default() -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(10),
            idle: Duration::from_secs(30),
            max_time: None,
            speed_limit: None,
            speed_time: Duration::from_secs(30),
        }
    }
}

impl Timeouts {
    /// How long a read may wait for bytes: `--timeout`, or `--speed-time` when
    /// `--speed-limit` is set and shorter, since receiving nothing for that
    /// long is slower than any limit (as curl counts it).
    pub fn read(&self) -> Duration {
        match self.speed_limit {
            Some(_) => self.idle.min(self.speed_time),
            None => self.idle,
        }
    }
}

/// What a response must be to be kept: the checks made on its head and
/// while its body is read, whichever client fetched it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acceptance {
    /// Larger responses are abandoned (`--max-size`).
    pub max_size: Option<u64>,
    /// MIME patterns a response must match (Content-Type and first bytes);
    /// empty accepts anything.
    pub accept: Vec<String>,
    /// `X-Robots-Tag` directives (`noai`, `noindex`...) that refuse a response
    /// before its body is read, as an opt-out (`grab dataset`); empty refuses none.
    pub refused_robots: Vec<String>,
}

/// Bandwidth caps, in bytes per second.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rates {
    /// All transfers together (`--limit-rate`). A worker process is given
    /// its share: the total over the number of workers.
    pub total: Option<u64>,
    /// Each transfer (`--limit-rate-per-transfer`).
    pub per_transfer: Option<u64>,
}

fn yes() -> bool {
    true
}

impl Settings {
    /// The defaults of `grab get`, saving into `output_dir`.
    pub fn new(output_dir: impl Into<PathBuf>) -> Settings {
        Settings {
            output_dir: output_dir.into(),
            timeouts: Timeouts::default(),
            retries: 3,
            retry_wait: Duration::from_secs(1),
            acceptance: Acceptance::default(),
            content_disposition: false,
            headers: Vec::new(),
            user_agent: Settings::default_user_agent(),
            trust: Trust::default(),
            proxies: Proxies::default(),
            rates: Rates::default(),
            layout: Layout::default(),
            server_timestamps: true,
            compressed: false,
            cookies: CookieFiles::default(),
            netrc: None,
            http_version: HttpVersion::Negotiated,
            split: 1,
            min_split_size: DEFAULT_MIN_SPLIT_SIZE,
            dns_servers: Vec::new(),
        }
    }

    /// `grab/VERSION`, as curl and wget name themselves.
    pub fn default_user_agent() -> String {
        format!("grab/{}", env!("CARGO_PKG_VERSION"))
    }
}
