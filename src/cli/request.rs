//! The request flags every downloading command shares (`get`, `dataset`,
//! `queue work`, `queue dataset`): one definition, one conversion into the
//! request layer's [`Settings`], so a proxy, a timeout or a trust rule means
//! the same whichever command is given it.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{positive_seconds, positive_size};
use crate::http::Settings;
use crate::http::proxy::Proxies;
use crate::http::settings::{CookieFiles, HttpVersion};
use crate::http::tls::Trust;

#[derive(Debug, Args)]
#[command(next_help_heading = "Requests")]
pub struct RequestArgs {
    /// Give up connecting after SECS seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10.0, value_parser = positive_seconds)]
    pub connect_timeout: f64,
    /// Abandon an attempt that takes longer than SECS, from its request to its
    /// last byte (curl's --max-time; a retry gets as long again and resumes).
    #[arg(long, value_name = "SECS", value_parser = positive_seconds)]
    pub max_time: Option<f64>,
    /// Abandon a transfer slower than RATE bytes per second (k, M suffixes) for
    /// --speed-time seconds, silent ones included, as curl does; it is retried
    /// like a timeout.
    #[arg(long, value_name = "RATE", value_parser = positive_size)]
    pub speed_limit: Option<u64>,
    /// How long a transfer may stay under --speed-limit.
    #[arg(long, value_name = "SECS", default_value_t = 30.0, value_parser = positive_seconds, requires = "speed_limit")]
    pub speed_time: f64,
    /// At most RATE bytes per second for all transfers together (k, M, G
    /// suffixes, 1024-based). With -s processes each of the -j workers gets an
    /// equal share.
    #[arg(long, value_name = "RATE", value_parser = positive_size)]
    pub limit_rate: Option<u64>,
    /// At most RATE bytes per second for each transfer (curl's --limit-rate,
    /// which curl applies per transfer).
    #[arg(long, value_name = "RATE", value_parser = positive_size)]
    pub limit_rate_per_transfer: Option<u64>,
    /// Ask for a compressed body (gzip, br, zstd) and save it decoded, as
    /// curl's --compressed; size limits count decoded bytes, and such a body
    /// is never resumed by byte ranges.
    #[arg(long)]
    pub compressed: bool,
    /// Fetch each file in up to N ranges at once on separate connections
    /// (aria2's -s/-x), when its server takes ranges and names the file's
    /// version (a strong ETag or a Last-Modified, for If-Range); otherwise on
    /// one connection, as without it. Pieces go to the URL and its mirrors in
    /// turn, and a connection that finishes takes half of the largest piece
    /// left. The part file records the ranges in, so -c and retries resume
    /// each. Not with --compressed or -O -, which fetch on one connection.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub split: u16,
    /// The smallest piece --split makes (k, M suffixes, 1024-based): a file
    /// under twice this comes on one connection.
    #[arg(long, value_name = "SIZE", default_value = "1M", value_parser = positive_size)]
    pub min_split_size: u64,
    /// Send this header with every request, `-H 'Name: value'` (repeatable).
    /// Authorization and Cookie go only to the host asked for, not to another
    /// that a redirect leads to. A User-Agent here wins over -A.
    #[arg(short = 'H', long = "header", value_name = "'NAME: VALUE'")]
    pub headers: Vec<String>,
    /// The User-Agent sent [default: grab/VERSION].
    #[arg(short = 'A', long, value_name = "NAME")]
    pub user_agent: Option<String>,
    /// Trust only the certificates in this PEM file (instead of the system's
    /// store); SSL_CERT_FILE says the same when this is not given.
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// Trust only the certificates in this folder of PEM files; SSL_CERT_DIR
    /// says the same when this is not given.
    #[arg(long, value_name = "DIR")]
    pub capath: Option<PathBuf>,
    /// Send requests through this proxy: `host:port` or
    /// `http://[user:password@]host:port` (plain http goes as `GET
    /// http://...`, https through CONNECT), `https://host:port` (the same,
    /// over TLS to the proxy, whose certificate is checked against the same
    /// roots as servers': --cacert, --capath, or the system's; -k skips it),
    /// or `socks5://host:port` (names resolved here) or `socks5h://host:port`
    /// (resolved by the proxy); the port defaults to 1080 (443 for https),
    /// as in curl. Without it, http_proxy (lower case
    /// only), HTTPS_PROXY and ALL_PROXY are read as curl reads them;
    /// `--proxy ''` uses none.
    #[arg(long, value_name = "URL")]
    pub proxy: Option<String>,
    /// Hosts reached without the proxy, comma-separated: names (with their
    /// subdomains), addresses, ADDRESS/BITS networks, or `*`; instead of NO_PROXY.
    #[arg(long, value_name = "LIST")]
    pub noproxy: Option<String>,
    /// Ask these name servers instead of the system's (curl's
    /// --dns-servers): `ADDRESS[:PORT]`, comma-separated, IPv6 in brackets
    /// when a port follows; port 53 unless given. Names in the hosts file are
    /// still answered from it. Either way each host is looked up once and its
    /// answer kept for its TTL (at least 30 s, at most 10 min), a failed
    /// lookup for 5 s, for every strategy.
    #[arg(long, value_name = "ADDR[:PORT],...")]
    pub dns_servers: Option<String>,
    /// Do not check servers' certificates (the traffic is still encrypted, but
    /// anyone on the way can read it).
    #[arg(short = 'k', long)]
    pub insecure: bool,
    /// Start the run's cookie jar with this Netscape cookie file (curl's -b
    /// FILE, wget's --load-cookies). Cookies that responses set are kept for
    /// the rest of the run either way, and sent by their domain, path, secure
    /// and expiry rules, redirects included.
    #[arg(long, value_name = "FILE")]
    pub load_cookies: Option<PathBuf>,
    /// Write the jar to this Netscape cookie file when the run ends (curl's
    /// -c, wget's --save-cookies); cookies without an expiry only with
    /// --keep-session-cookies. With -s processes, only the cookies loaded
    /// and those set to this process are saved: each worker keeps its own jar.
    #[arg(long, value_name = "FILE")]
    pub save_cookies: Option<PathBuf>,
    /// Save session cookies (those without an expiry) too, as wget.
    #[arg(long, requires = "save_cookies")]
    pub keep_session_cookies: bool,
    /// Send Basic credentials from ~/.netrc (machine, login, password, or its
    /// `default` entry) to the host asked for, never to another that a
    /// redirect leads to; an -H Authorization wins.
    #[arg(long)]
    pub netrc: bool,
    /// As --netrc, from this file.
    #[arg(long, value_name = "FILE", conflicts_with = "netrc")]
    pub netrc_file: Option<PathBuf>,
    /// Speak HTTP/1.1 only, never offering HTTP/2 (curl's --http1.1).
    #[arg(long = "http1.1", conflicts_with_all = ["http2", "http2_prior_knowledge"])]
    pub http1_only: bool,
    /// HTTP/2 over https when the server offers it by ALPN, else HTTP/1.1:
    /// the default, for every strategy (many requests to a host share one
    /// connection; --per-host then counts them). Plain http:// stays HTTP/1.1.
    #[arg(long)]
    pub http2: bool,
    /// Speak cleartext HTTP/2 to http:// URLs from the first byte, for servers
    /// known to (curl's --http2-prior-knowledge); https still negotiates.
    #[arg(long)]
    pub http2_prior_knowledge: bool,
}

impl RequestArgs {
    /// Sets what these flags decide in `settings`; an error names the flag
    /// that is wrong.
    pub fn apply(&self, settings: &mut Settings) -> Result<(), String> {
        settings.timeouts.connect = Duration::from_secs_f64(self.connect_timeout);
        settings.timeouts.max_time = self.max_time.map(Duration::from_secs_f64);
        settings.timeouts.speed_limit = self.speed_limit;
        settings.timeouts.speed_time = Duration::from_secs_f64(self.speed_time);
        settings.rates.total = self.limit_rate;
        settings.rates.per_transfer = self.limit_rate_per_transfer;
        settings.compressed = self.compressed;
        settings.http_version = match (self.http1_only, self.http2_prior_knowledge) {
            (true, _) => HttpVersion::Http1Only,
            (false, true) => HttpVersion::Http2PriorKnowledge,
            (false, false) => HttpVersion::Negotiated,
        };
        settings.split = usize::from(self.split);
        settings.min_split_size = self.min_split_size;
        if let Some(user_agent) = &self.user_agent {
            settings.user_agent = user_agent.clone();
        }
        let trust = Trust {
            ca_file: self.cacert.clone(),
            ca_dir: self.capath.clone(),
            insecure: self.insecure,
        };
        if trust.ca_file.is_some() || trust.ca_dir.is_some() {
            // A wrong --cacert or --capath is a usage error before any
            // download. The variables' roots (and the system's) are loaded at
            // the first https request, so a run without https never pays for it.
            trust.roots().map_err(|error| error.to_string())?;
        }
        settings.trust = trust.with_environment();
        settings.proxies = Proxies::from_flags_and_environment(
            self.proxy.as_deref(),
            self.noproxy.as_deref(),
            |name| std::env::var(name).ok(),
        )
        .map_err(|error| error.to_string())?;
        settings.dns_servers = match &self.dns_servers {
            Some(text) => crate::http::resolve::parse_servers(text)?,
            None => Vec::new(),
        };
        settings.cookies = CookieFiles {
            load: self.load_cookies.clone(),
            save: self.save_cookies.clone(),
            keep_session: self.keep_session_cookies,
        };
        settings.netrc = match (&self.netrc_file, self.netrc) {
            (Some(file), _) => Some(file.clone()),
            (None, true) => std::env::home_dir().map(|home| home.join(".netrc")),
            (None, false) => None,
        };
        // An unreadable cookie or netrc file is a usage error before any
        // download, naming the file.
        crate::http::logins::Logins::open(settings)?;
        for line in &self.headers {
            let (name, value) = header(line)?;
            match name.eq_ignore_ascii_case("user-agent") {
                true => settings.user_agent = value,
                false => settings.headers.push((name, value)),
            }
        }
        Ok(())
    }
}

/// One `-H 'Name: value'`, checked as HTTP allows; the headers grab manages
/// itself are refused with the reason.
fn header(line: &str) -> Result<(String, String), String> {
    let Some((name, value)) = line.split_once(':') else {
        return Err(format!("-H {line}: expected 'Name: value'"));
    };
    let (name, value) = (name.trim(), value.trim());
    reqwest::header::HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("-H {line}: {name:?} is not a valid header name"))?;
    reqwest::header::HeaderValue::from_str(value)
        .map_err(|_| format!("-H {line}: the value holds characters a header cannot"))?;
    let managed = match name.to_ascii_lowercase().as_str() {
        "range" | "if-range" => Some("resumes (-c, retries) set it"),
        "host" => Some("it comes from each URL"),
        "content-length" | "transfer-encoding" | "connection" => {
            Some("the connection's framing is the client's")
        }
        _ => None,
    };
    match managed {
        Some(reason) => Err(format!("-H {line}: grab sets {name} itself ({reason})")),
        None => Ok((name.to_string(), value.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::super::{Cli, Command};
    use crate::console::Console;
    use crate::engine::processes::WorkerProgram;
    use crate::http::Settings;

    /// The request settings `grab COMMAND FLAGS...` ends with.
    fn settings_of(command: &str, flags: &[&str]) -> Settings {
        let mut line = vec!["grab", command];
        line.extend_from_slice(flags);
        let program = WorkerProgram::current;
        match Cli::try_parse_from(line).expect("the flags parse").command {
            Command::Get(arguments) => {
                arguments
                    .config(Console::silent(), program(), false)
                    .unwrap()
                    .settings
            }
            Command::Dataset(arguments) => arguments.config(program(), false).unwrap().download,
            other => panic!("not a downloading command: {other:?}"),
        }
    }

    #[test]
    fn get_and_dataset_read_the_request_flags_alike() {
        let flags = [
            "--connect-timeout",
            "3",
            "--max-time",
            "7.5",
            "--speed-limit",
            "2k",
            "--speed-time",
            "4",
            "--limit-rate",
            "1M",
            "-H",
            "X-Token: 1",
            "-A",
            "bot/2",
            "-k",
            "--proxy",
            "127.0.0.1:3128",
            "--noproxy",
            "example.org",
        ];
        let mut get = vec!["u"];
        get.extend_from_slice(&flags);
        let mut dataset = vec!["t.csv"];
        dataset.extend_from_slice(&flags);
        let get = settings_of("get", &get);
        let dataset = settings_of("dataset", &dataset);
        for settings in [&get, &dataset] {
            assert_eq!(settings.timeouts.connect.as_secs_f64(), 3.0);
            assert_eq!(settings.timeouts.max_time.unwrap().as_secs_f64(), 7.5);
            assert_eq!(settings.timeouts.speed_limit, Some(2048));
            assert_eq!(settings.timeouts.speed_time.as_secs_f64(), 4.0);
            assert_eq!(settings.rates.total, Some(1 << 20));
            assert_eq!(settings.user_agent, "bot/2");
            assert_eq!(settings.headers, [("X-Token".into(), "1".into())]);
            assert!(settings.trust.insecure);
        }
        assert_eq!(get.proxies, dataset.proxies);
        assert_ne!(get.proxies, Default::default());
    }
}
