//! One connection to Redis that outlives the server's restarts: a call that
//! fails on the network (or while Redis loads its append-only file) is tried
//! again on a new connection, backing off up to a few seconds, until the
//! link's patience runs out. A wrong address or a server that does not speak
//! Redis is an error at once, naming the address.

use std::thread;
use std::time::{Duration, Instant};

use redis::{Connection, RedisError, RedisResult};

/// How long a connection attempt, and a reply, may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// The oldest Redis with every command the queue uses (XAUTOCLAIM).
const MINIMUM_VERSION: (u64, u64) = (6, 2);

/// Hears that the server was lost and is being tried again.
type Retried = Box<dyn Fn(&str) + Send>;

pub struct Link {
    client: redis::Client,
    /// The address with any password masked, for messages.
    address: String,
    connection: Option<Connection>,
    /// How long a lost server is waited for before a call fails.
    pub patience: Duration,
    /// Called once per outage, with what was lost.
    on_retry: Option<Retried>,
}

impl Link {
    /// Connects to `address` (`redis://HOST:PORT/DB`) and checks that a Redis
    /// of 6.2 or later answers there.
    pub fn open(address: &str) -> anyhow::Result<Link> {
        let masked = match url::Url::parse(address) {
            Ok(url) => crate::redact::url(&url).into_owned(),
            Err(_) => address.to_string(),
        };
        let client = redis::Client::open(address)
            .map_err(|error| anyhow::anyhow!("not a Redis address {masked}: {error}"))?;
        let mut link = Link {
            client,
            address: masked,
            connection: None,
            patience: Duration::from_secs(120),
            on_retry: None,
        };
        let connection = link.connect().map_err(|error| match is_protocol(&error) {
            true => anyhow::anyhow!("{} is not a Redis server: {error}", link.address),
            false => anyhow::anyhow!("cannot connect to Redis at {}: {error}", link.address),
        })?;
        link.connection = Some(connection);
        let info: String =
            link.call_once(|connection| redis::cmd("INFO").arg("server").query(connection))?;
        let version = info
            .lines()
            .find_map(|line| line.strip_prefix("redis_version:"))
            .map(str::trim)
            .unwrap_or("");
        let mut parts = version
            .split('.')
            .map(|part| part.parse::<u64>().unwrap_or(0));
        let found = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        if found < MINIMUM_VERSION {
            anyhow::bail!(
                "Redis at {} is version {version:?}; the queue needs 6.2 or later (XAUTOCLAIM)",
                link.address
            );
        }
        Ok(link)
    }

    /// Says `message` once each time the server is lost.
    pub fn on_retry(&mut self, report: impl Fn(&str) + Send + 'static) {
        self.on_retry = Some(Box::new(report));
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// A new connection that answers PING as Redis does: anything else (an
    /// HTTP server, say) is "not a Redis server".
    fn connect(&self) -> RedisResult<Connection> {
        let connection = self.client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
        connection.set_read_timeout(Some(REPLY_TIMEOUT))?;
        connection.set_write_timeout(Some(REPLY_TIMEOUT))?;
        Ok(connection)
    }

    /// A call on the first connection: any failure is final.
    fn call_once<T>(
        &mut self,
        mut call: impl FnMut(&mut Connection) -> RedisResult<T>,
    ) -> anyhow::Result<T> {
        let address = self.address.clone();
        let connection = self.connection.as_mut().expect("connected");
        let pong: RedisResult<String> = redis::cmd("PING").query(connection);
        match pong {
            Ok(pong) if pong == "PONG" => {}
            Ok(other) => anyhow::bail!("{address} is not a Redis server (PING answered {other:?})"),
            Err(error) if is_protocol(&error) => {
                anyhow::bail!("{address} is not a Redis server: {error}")
            }
            Err(error) => anyhow::bail!("Redis at {address}: {error}"),
        }
        call(connection).map_err(|error| anyhow::anyhow!("Redis at {address}: {error}"))
    }

    /// Runs `call`, reconnecting and trying again while the server is away
    /// (up to `patience`). `what` names the call in the error.
    pub fn run<T>(
        &mut self,
        what: &str,
        mut call: impl FnMut(&mut Connection) -> RedisResult<T>,
    ) -> anyhow::Result<T> {
        let deadline = Instant::now() + self.patience;
        let mut wait = Duration::from_millis(100);
        let mut reported = false;
        loop {
            let result = match self.connection.as_mut() {
                Some(connection) => call(connection),
                None => self.connect().and_then(|mut connection| {
                    let result = call(&mut connection);
                    self.connection = Some(connection);
                    result
                }),
            };
            match result {
                Ok(value) => return Ok(value),
                Err(error) if is_outage(&error) && Instant::now() < deadline => {
                    if !reported {
                        if let Some(report) = &self.on_retry {
                            report(&format!(
                                "lost Redis at {} ({error}); trying again",
                                self.address
                            ));
                        }
                        reported = true;
                    }
                    self.connection = None;
                    thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(3));
                }
                Err(error) => {
                    if is_outage(&error) {
                        self.connection = None;
                    }
                    anyhow::bail!("{what} on Redis at {}: {error}", self.address)
                }
            }
        }
    }
}

/// A network fault, a server restarting or loading its data: worth a retry.
fn is_outage(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_timeout()
        || error.is_unrecoverable_error()
        || error.code() == Some("LOADING")
}

/// The reply could not be read as Redis's protocol.
fn is_protocol(error: &RedisError) -> bool {
    !error.is_io_error() && error.code().is_none()
}
