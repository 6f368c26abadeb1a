//! Names to addresses, once per host: one [`Resolver`] with a cache, shared by
//! both clients (ureq through its `Resolver` trait, reqwest through
//! `reqwest::dns::Resolve`, hyper's plain-http client through its connector's
//! resolver service), so every strategy and command asks the name servers
//! about a host once per TTL, not once per URL. A table over many hosts or a
//! list of a million URLs on one costs one query a record type (A and AAAA)
//! a host; 64 threads that start on one host at once wait for one query.
//!
//! How long an answer holds: its TTL, kept between [`TTL_FLOOR`] and
//! [`TTL_CEILING`] (a TTL of 0, as dnsmasq gives its own names, would
//! otherwise mean a query per URL; a day-long TTL would outlive a host that
//! moved). A failure (no such host, no address, the servers not answering)
//! holds for [`FAILURE_TTL`], so the URLs of a dead host fail at once, and
//! the name is asked again a little later.
//!
//! Where answers come from: names in the hosts file (`/etc/hosts`, Windows'
//! `drivers\etc\hosts`) from it alone, as the system's resolver does; others
//! from the name servers `--dns-servers` gives, else the system's
//! (`/etc/resolv.conf` on Unix, the registry on Windows), asked by
//! hickory-resolver, A and AAAA together, IPv4 addresses first (ureq tries
//! addresses in order, with no happy eyeballs, and IPv6 is the family more
//! often broken). Where hickory cannot read the system's configuration (no
//! `/etc/resolv.conf`, as in some containers), the system's own resolver
//! (`getaddrinfo`) answers, cached for [`SYSTEM_TTL`] since it tells no TTL.
//! A worker process of `-s processes` asks its parent ([`Resolver::through`]),
//! so the whole run shares the parent's cache.
//!
//! Lookups run on a small runtime of the resolver's own (one thread), whatever
//! thread or runtime asks: hickory's connections live on the runtime that
//! made them, and the async strategy's runtimes come and go.
//!
//! An address in the URL (`http://127.0.0.1/`, `http://[::1]/`) is never
//! looked up, and neither is a host that a `socks5h://` proxy resolves (no
//! client asks then).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_lock::OnceCell;
use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::lookup_ip::LookupIp;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::op::Query;
use hickory_resolver::proto::rr::{Name, RecordType};
use hickory_resolver::{Hosts, TokioResolver};
use serde::{Deserialize, Serialize};

/// The shortest an answer is kept, whatever its TTL.
pub const TTL_FLOOR: Duration = Duration::from_secs(30);
/// The longest an answer is kept, whatever its TTL.
pub const TTL_CEILING: Duration = Duration::from_secs(600);
/// How long a failed lookup is kept.
pub const FAILURE_TTL: Duration = Duration::from_secs(5);
/// How long an answer of the system's resolver is kept (curl's
/// `--dns-cache-timeout` default).
pub const SYSTEM_TTL: Duration = Duration::from_secs(60);

/// The port a name server listens on unless `--dns-servers` says otherwise.
const DNS_PORT: u16 = 53;

/// A name that gave no address: why, with the name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("could not resolve {host}: {reason}")]
pub struct NotResolved {
    pub host: String,
    pub reason: String,
}

/// A lookup's result and how long it holds, as a worker process is told it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Answer {
    pub addresses: Result<Vec<IpAddr>, NotResolved>,
    pub valid_for: Duration,
}

/// How a worker process asks its parent.
pub type Ask = Arc<dyn Fn(&str) -> Answer + Send + Sync>;

/// A cached answer.
#[derive(Clone)]
struct Entry {
    addresses: Result<Arc<[IpAddr]>, NotResolved>,
    until: Instant,
}

impl Entry {
    fn new(addresses: Result<Vec<IpAddr>, NotResolved>, valid_for: Duration) -> Entry {
        Entry {
            addresses: addresses.map(Arc::from),
            until: Instant::now() + valid_for,
        }
    }

    fn failed(host: &str, reason: impl Into<String>) -> Entry {
        Entry::new(
            Err(NotResolved {
                host: host.to_string(),
                reason: reason.into(),
            }),
            FAILURE_TTL,
        )
    }
}

/// Where answers come from.
#[derive(Clone)]
enum Source {
    /// hickory, with the names of the hosts file answered from it alone.
    Dns {
        /// Boxed: it is some hundreds of bytes, the other sources a pointer.
        resolver: Box<TokioResolver>,
        hosts: Arc<Hosts>,
    },
    /// The system's resolver, where hickory cannot read its configuration.
    System,
    /// The parent process.
    Parent(Ask),
}

/// What the first lookup starts: the runtime lookups run on, and the source.
struct Engine {
    /// Always `Some` until dropped.
    runtime: Option<tokio::runtime::Runtime>,
    source: Source,
}

impl Drop for Engine {
    /// Without waiting for hickory's tasks, so a resolver dropped inside
    /// another runtime does not panic.
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Names to addresses with a cache; see the module's documentation.
pub struct Resolver {
    /// `--dns-servers`; empty: the system's.
    servers: Vec<SocketAddr>,
    parent: Option<Ask>,
    engine: OnceLock<Result<Engine, String>>,
    /// One slot a host: filled once by the first lookup, which the others
    /// wait for; replaced once its answer expires.
    slots: Mutex<Slots>,
}

struct Slots {
    by_host: HashMap<String, Arc<OnceCell<Entry>>>,
    /// Expired slots are swept when there are this many, so a run over
    /// millions of hosts keeps only the live ones.
    sweep_at: usize,
}

const FIRST_SWEEP: usize = 4096;

impl std::fmt::Debug for Resolver {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Resolver")
            .field("servers", &self.servers)
            .field("through_parent", &self.parent.is_some())
            .finish()
    }
}

impl Resolver {
    /// A resolver asking `servers` (empty: the system's name servers).
    pub fn new(servers: &[SocketAddr]) -> Resolver {
        Resolver {
            servers: servers.to_vec(),
            parent: None,
            engine: OnceLock::new(),
            slots: Mutex::new(Slots {
                by_host: HashMap::new(),
                sweep_at: FIRST_SWEEP,
            }),
        }
    }

    /// A resolver that asks `ask` (a worker process's parent), keeping its
    /// answers for as long as they hold.
    pub fn through(ask: Ask) -> Resolver {
        Resolver {
            parent: Some(ask),
            ..Resolver::new(&[])
        }
    }

    /// This process's resolver for `servers`: one for every run, client and
    /// thread that asks the same servers (a queue worker's runs share it too).
    pub fn shared(servers: &[SocketAddr]) -> Arc<Resolver> {
        static SHARED: Mutex<Vec<Arc<Resolver>>> = Mutex::new(Vec::new());
        let mut shared = crate::lock(&SHARED);
        if let Some(found) = shared.iter().find(|resolver| resolver.servers == servers) {
            return found.clone();
        }
        let resolver = Arc::new(Resolver::new(servers));
        shared.push(resolver.clone());
        resolver
    }

    /// The addresses of `host` (a name or an address, IPv6 with or without
    /// brackets), waiting on this thread.
    pub fn lookup_blocking(&self, host: &str) -> Result<Arc<[IpAddr]>, NotResolved> {
        self.entry_blocking(host).addresses
    }

    /// The addresses of `host`, waiting on the caller's runtime.
    pub async fn lookup(&self, host: &str) -> Result<Arc<[IpAddr]>, NotResolved> {
        if let Some(address) = literal(host) {
            return Ok(Arc::from([address]));
        }
        let (host, slot) = self.slot(host);
        slot.get_or_init(|| self.query(host))
            .await
            .addresses
            .clone()
    }

    /// `host`'s answer and how much longer it holds: what a parent tells its
    /// worker process.
    pub fn answer_blocking(&self, host: &str) -> Answer {
        let entry = self.entry_blocking(host);
        Answer {
            addresses: entry.addresses.map(|addresses| addresses.to_vec()),
            valid_for: entry.until.saturating_duration_since(Instant::now()),
        }
    }

    fn entry_blocking(&self, host: &str) -> Entry {
        if let Some(address) = literal(host) {
            return Entry::new(Ok(vec![address]), TTL_CEILING);
        }
        let (host, slot) = self.slot(host);
        slot.get_or_init_blocking(|| self.query_blocking(host))
            .clone()
    }

    /// `host`'s slot (its name in lower case, without a final dot): the
    /// live one, or a new one in place of one that expired.
    fn slot(&self, host: &str) -> (String, Arc<OnceCell<Entry>>) {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let now = Instant::now();
        let live = |slot: &OnceCell<Entry>| slot.get().is_none_or(|entry| entry.until > now);
        let mut slots = crate::lock(&self.slots);
        if let Some(slot) = slots.by_host.get(&host)
            && live(slot)
        {
            return (host, slot.clone());
        }
        if slots.by_host.len() >= slots.sweep_at {
            slots.by_host.retain(|_, slot| live(slot));
            slots.sweep_at = (slots.by_host.len() * 2).max(FIRST_SWEEP);
        }
        let slot = Arc::new(OnceCell::new());
        slots.by_host.insert(host.clone(), slot.clone());
        (host, slot)
    }

    /// The runtime and source, started at the first lookup.
    fn engine(&self) -> Result<&Engine, String> {
        self.engine
            .get_or_init(|| {
                let runtime = super::one_thread_runtime("grab-dns", "the name resolver")?;
                let source = {
                    // hickory spawns its connections on the runtime it is
                    // made in.
                    let _inside = runtime.enter();
                    match &self.parent {
                        Some(ask) => Source::Parent(ask.clone()),
                        None => dns_source(&self.servers)?,
                    }
                };
                Ok(Engine {
                    runtime: Some(runtime),
                    source,
                })
            })
            .as_ref()
            .map_err(String::clone)
    }

    /// Asks the source about `host` on the resolver's runtime, from a thread.
    fn query_blocking(&self, host: String) -> Entry {
        let engine = match self.engine() {
            Ok(engine) => engine,
            Err(message) => return Entry::failed(&host, message),
        };
        let (sender, receiver) = std::sync::mpsc::sync_channel(1);
        let source = engine.source.clone();
        let asked = host.clone();
        runtime_of(engine).spawn(async move {
            let _ = sender.send(query(&source, &asked).await);
        });
        receiver
            .recv()
            .unwrap_or_else(|_| Entry::failed(&host, "the name resolver stopped"))
    }

    /// Asks the source about `host` on the resolver's runtime, from a task.
    async fn query(&self, host: String) -> Entry {
        let engine = match self.engine() {
            Ok(engine) => engine,
            Err(message) => return Entry::failed(&host, message),
        };
        let source = engine.source.clone();
        let asked = host.clone();
        runtime_of(engine)
            .spawn(async move { query(&source, &asked).await })
            .await
            .unwrap_or_else(|_| Entry::failed(&host, "the name resolver stopped"))
    }
}

fn runtime_of(engine: &Engine) -> &tokio::runtime::Runtime {
    engine
        .runtime
        .as_ref()
        .expect("the runtime lives as long as the engine")
}

/// An address written as the host (`127.0.0.1`, `::1`, `[::1]`).
fn literal(host: &str) -> Option<IpAddr> {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// hickory, asking `servers` or the system's name servers; the hosts file
/// read once.
fn dns_source(servers: &[SocketAddr]) -> Result<Source, String> {
    let provider = TokioRuntimeProvider::default();
    let mut builder = match servers {
        [] => match TokioResolver::builder_tokio() {
            Ok(builder) => builder,
            Err(error) => {
                tracing::debug!(%error, "the system's resolver answers: hickory cannot read its configuration");
                return Ok(Source::System);
            }
        },
        servers => {
            let servers = servers
                .iter()
                .map(|server| {
                    let mut config = NameServerConfig::udp_and_tcp(server.ip());
                    for connection in &mut config.connections {
                        connection.port = server.port();
                    }
                    config
                })
                .collect();
            TokioResolver::builder_with_config(ResolverConfig::from_name_servers(servers), provider)
                .with_options(ResolverOpts::default())
        }
    };
    let options = builder.options_mut();
    options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    // The hosts file is read here, to answer its names from it alone.
    options.use_hosts_file = ResolveHosts::Never;
    let resolver = builder
        .build()
        .map_err(|error| format!("cannot start the name resolver: {error}"))?;
    Ok(Source::Dns {
        resolver: Box::new(resolver),
        hosts: Arc::new(Hosts::from_system().unwrap_or_default()),
    })
}

/// One lookup of `host` from `source`.
async fn query(source: &Source, host: &str) -> Entry {
    match source {
        Source::Dns { resolver, hosts } => query_dns(resolver, hosts, host).await,
        Source::System => {
            let asked = host.to_string();
            let found = tokio::task::spawn_blocking(move || {
                (asked.as_str(), 0)
                    .to_socket_addrs()
                    .map(|addresses| ipv4_first(addresses.map(|address| address.ip())))
            })
            .await;
            match found {
                Ok(Ok(addresses)) if !addresses.is_empty() => Entry::new(Ok(addresses), SYSTEM_TTL),
                Ok(Ok(_)) => Entry::failed(host, "no address"),
                Ok(Err(error)) => Entry::failed(host, error.to_string()),
                Err(_) => Entry::failed(host, "the name resolver stopped"),
            }
        }
        Source::Parent(ask) => {
            let (ask, asked) = (ask.clone(), host.to_string());
            match tokio::task::spawn_blocking(move || ask(&asked)).await {
                Ok(answer) => Entry::new(answer.addresses, answer.valid_for),
                Err(_) => Entry::failed(host, "the name resolver stopped"),
            }
        }
    }
}

async fn query_dns(resolver: &TokioResolver, hosts: &Hosts, host: &str) -> Entry {
    let Ok(name) = Name::from_str(host) else {
        return Entry::failed(host, "not a valid host name");
    };
    let from_hosts: Vec<IpAddr> = [RecordType::A, RecordType::AAAA]
        .into_iter()
        .filter_map(|record_type| {
            hosts.lookup_static_host(&Query::query(name.clone(), record_type))
        })
        .flat_map(|lookup| LookupIp::from(lookup).iter().collect::<Vec<_>>())
        .collect();
    if !from_hosts.is_empty() {
        return Entry::new(Ok(from_hosts), TTL_CEILING);
    }
    match resolver.lookup_ip(name).await {
        Ok(lookup) => {
            let addresses = ipv4_first(lookup.iter());
            if addresses.is_empty() {
                return Entry::failed(host, "no address");
            }
            let ttl = lookup
                .valid_until()
                .saturating_duration_since(Instant::now())
                .clamp(TTL_FLOOR, TTL_CEILING);
            Entry::new(Ok(addresses), ttl)
        }
        Err(error) if error.is_nx_domain() => Entry::failed(host, "no such host"),
        Err(error) if error.is_no_records_found() => Entry::failed(host, "no address"),
        Err(error) => Entry::failed(host, error.to_string()),
    }
}

/// IPv4 addresses before IPv6 ones, each family in the order given.
fn ipv4_first(addresses: impl Iterator<Item = IpAddr>) -> Vec<IpAddr> {
    let (mut first, second): (Vec<IpAddr>, Vec<IpAddr>) =
        addresses.partition(|address| address.is_ipv4());
    first.extend(second);
    first.dedup();
    first
}

/// `--dns-servers ADDR[:PORT][,...]`, as curl reads it: an IPv4 address, an
/// IPv6 one (in brackets when a port follows), port 53 unless given.
pub fn parse_servers(text: &str) -> Result<Vec<SocketAddr>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            entry
                .parse::<SocketAddr>()
                .ok()
                .or_else(|| literal(entry).map(|address| SocketAddr::new(address, DNS_PORT)))
                .ok_or_else(|| format!("--dns-servers {text}: {entry} is not ADDRESS[:PORT]"))
        })
        .collect::<Result<Vec<_>, _>>()
        .and_then(|servers| match servers.is_empty() {
            true => Err(format!("--dns-servers {text}: no server")),
            false => Ok(servers),
        })
}

// ---- the clients' sides ----

/// The resolver as ureq asks it: the URI's host, with its port (the scheme's
/// when none is written).
#[derive(Debug, Clone)]
pub struct ForUreq(pub Arc<Resolver>);

impl ureq::unversioned::resolver::Resolver for ForUreq {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        _config: &ureq::config::Config,
        _timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        let authority = uri
            .authority()
            .ok_or_else(|| ureq::Error::BadUri(uri.to_string()))?;
        let port = authority.port_u16().unwrap_or(match uri.scheme_str() {
            Some("https") => 443,
            Some(scheme) if scheme.starts_with("socks") => 1080,
            _ => 80,
        });
        let addresses = self
            .0
            .lookup_blocking(authority.host())
            .map_err(|error| ureq::Error::Io(io::Error::other(error)))?;
        let mut resolved = self.empty();
        // ureq keeps at most 16.
        for address in addresses.iter().take(16) {
            resolved.push(SocketAddr::new(*address, port));
        }
        Ok(resolved)
    }
}

/// The resolver as reqwest asks it (the port is reqwest's).
#[derive(Debug, Clone)]
pub struct ForReqwest(pub Arc<Resolver>);

impl reqwest::dns::Resolve for ForReqwest {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let resolver = self.0.clone();
        Box::pin(async move {
            let addresses = resolver.lookup(name.as_str()).await?;
            let addresses: reqwest::dns::Addrs = Box::new(
                addresses
                    .iter()
                    .map(|address| SocketAddr::new(*address, 0))
                    .collect::<Vec<_>>()
                    .into_iter(),
            );
            Ok(addresses)
        })
    }
}

/// The resolver as hyper's connector asks it (the port is the connector's).
#[derive(Debug, Clone)]
pub struct ForHyper(pub Arc<Resolver>);

type HyperName = hyper_util::client::legacy::connect::dns::Name;

impl tower_service::Service<HyperName> for ForHyper {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = NotResolved;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, _context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: HyperName) -> Self::Future {
        let resolver = self.0.clone();
        Box::pin(async move {
            let addresses = resolver.lookup(name.as_str()).await?;
            Ok(addresses
                .iter()
                .map(|address| SocketAddr::new(*address, 0))
                .collect::<Vec<_>>()
                .into_iter())
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A resolver whose source counts its questions, answering `answer` after
    /// a pause (so that concurrent lookups overlap).
    fn counting(answer: Answer) -> (Resolver, Arc<AtomicUsize>) {
        let asked = Arc::new(AtomicUsize::new(0));
        let counter = asked.clone();
        let resolver = Resolver::through(Arc::new(move |_host: &str| {
            counter.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(50));
            answer.clone()
        }));
        (resolver, asked)
    }

    fn found(addresses: &[&str], valid_for: Duration) -> Answer {
        Answer {
            addresses: Ok(addresses.iter().map(|text| text.parse().unwrap()).collect()),
            valid_for,
        }
    }

    #[test]
    fn threads_starting_on_one_host_wait_for_one_query() {
        let (resolver, asked) = counting(found(&["10.0.0.1"], TTL_FLOOR));
        std::thread::scope(|scope| {
            for _ in 0..64 {
                scope.spawn(|| {
                    let addresses = resolver.lookup_blocking("Gallery.Test.").unwrap();
                    assert_eq!(*addresses, ["10.0.0.1".parse::<IpAddr>().unwrap()]);
                });
            }
        });
        assert_eq!(asked.load(Ordering::SeqCst), 1);
        // Tasks on other runtimes share the same answer.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let lookups = (0..16).map(|_| resolver.lookup("gallery.test"));
            for addresses in futures_util::future::join_all(lookups).await {
                assert_eq!(addresses.unwrap().len(), 1);
            }
        });
        assert_eq!(asked.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_failure_is_kept_as_long_as_it_holds_and_then_asked_again() {
        let failed = Answer {
            addresses: Err(NotResolved {
                host: "dead.test".to_string(),
                reason: "no such host".to_string(),
            }),
            valid_for: FAILURE_TTL,
        };
        let (resolver, asked) = counting(failed);
        for _ in 0..10 {
            let error = resolver.lookup_blocking("dead.test").unwrap_err();
            assert_eq!(
                error.to_string(),
                "could not resolve dead.test: no such host"
            );
        }
        assert_eq!(asked.load(Ordering::SeqCst), 1);
        // An answer that holds for no time is asked for every time.
        let (resolver, asked) = counting(found(&["10.0.0.2"], Duration::ZERO));
        for _ in 0..3 {
            resolver.lookup_blocking("moved.test").unwrap();
        }
        assert_eq!(asked.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn addresses_in_the_url_are_never_looked_up() {
        let (resolver, asked) = counting(found(&["10.0.0.3"], TTL_FLOOR));
        let v6 = resolver.lookup_blocking("[::1]").unwrap();
        assert_eq!(*v6, ["::1".parse::<IpAddr>().unwrap()]);
        let v4 = resolver.lookup_blocking("127.0.0.1").unwrap();
        assert_eq!(*v4, ["127.0.0.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(asked.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn ipv4_comes_first_and_servers_are_read_as_curl_reads_them() {
        let mixed = ["::1", "10.0.0.1", "fe80::1", "10.0.0.2"].map(|text| text.parse().unwrap());
        let ordered: Vec<String> = ipv4_first(mixed.into_iter())
            .iter()
            .map(IpAddr::to_string)
            .collect();
        assert_eq!(ordered, ["10.0.0.1", "10.0.0.2", "::1", "fe80::1"]);
        let servers = parse_servers("127.0.0.1:5353, 10.0.0.1,[::1]:54,::2").unwrap();
        let servers: Vec<String> = servers.iter().map(SocketAddr::to_string).collect();
        assert_eq!(
            servers,
            ["127.0.0.1:5353", "10.0.0.1:53", "[::1]:54", "[::2]:53"]
        );
        for wrong in ["", "dns.example", "127.0.0.1:x", "1.2.3.4,nope"] {
            let error = parse_servers(wrong).unwrap_err();
            assert!(error.starts_with("--dns-servers"), "{error}");
        }
    }
}
