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

/// The form every message about an address shows.
pub const ADDRESS_FORM: &str = "redis://HOST:PORT/DB";

/// A `--redis` value that cannot be a Redis server's address, or one where
/// something else answers: the command line is wrong (a usage error).
#[derive(Debug, thiserror::Error)]
pub enum AddressError {
    #[error("--redis {given}: not a Redis address ({why}): give it as {ADDRESS_FORM}{example}")]
    Invalid {
        given: String,
        why: String,
        /// `, such as redis://127.0.0.1:6379/0` when the value says enough.
        example: String,
    },
    #[error(
        "{address} is not a Redis server (it answered {answer}): give --redis the address of one, as {ADDRESS_FORM}"
    )]
    NotRedis { address: String, answer: String },
}

/// The queue's stream or consumer group is gone from a server that had it:
/// the server restarted without persistence (or its keys were deleted).
#[derive(Debug, thiserror::Error)]
#[error(
    "the queue's jobs are gone from Redis at {address} (restarted without persistence, or its keys were deleted): push them again with grab queue push"
)]
pub struct QueueGone {
    pub address: String,
}

/// The first line of a message, at most 80 characters: a reply that is not
/// Redis's (an HTTP server's page) says enough in its first line.
fn first_line(text: &str) -> String {
    let line = text
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .unwrap_or("");
    match line.char_indices().nth(80) {
        Some((end, _)) => format!("{:?}...", &line[..end]),
        None => format!("{line:?}"),
    }
}

/// `address` checked as a Redis address: a URL whose scheme the client takes.
fn check_address(address: &str) -> Result<(), AddressError> {
    let invalid = |why: &str| {
        let example = match address.contains("://") || address.contains('/') {
            true => String::new(),
            false if address.contains(':') => format!(", such as redis://{address}/0"),
            false => format!(", such as redis://{address}:6379/0"),
        };
        AddressError::Invalid {
            given: address.to_string(),
            why: why.to_string(),
            example,
        }
    };
    if !address.contains("://") {
        return Err(invalid("no scheme"));
    }
    let url = url::Url::parse(address).map_err(|error| invalid(&error.to_string()))?;
    match url.scheme() {
        "redis" | "rediss" | "redis+unix" | "unix" => Ok(()),
        other => Err(invalid(&format!("the scheme is {other}:, not redis:"))),
    }
}

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
        check_address(&crate::redact::text(address))?;
        let masked = match url::Url::parse(address) {
            Ok(url) => crate::redact::url(&url).into_owned(),
            Err(_) => address.to_string(),
        };
        let client = redis::Client::open(address).map_err(|error| AddressError::Invalid {
            given: masked.clone(),
            why: first_line(&error.to_string()).trim_matches('"').to_string(),
            example: String::new(),
        })?;
        let mut link = Link {
            client,
            address: masked,
            connection: None,
            patience: Duration::from_secs(120),
            on_retry: None,
        };
        let connection = link.connect().map_err(|error| match is_protocol(&error) {
            true => anyhow::Error::new(AddressError::NotRedis {
                address: link.address.clone(),
                answer: first_line(&error.to_string()),
            }),
            false => anyhow::anyhow!(
                "cannot connect to Redis at {}: {}",
                link.address,
                first_line(&error.to_string()).trim_matches('"')
            ),
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
            Ok(other) => {
                return Err(AddressError::NotRedis {
                    address,
                    answer: first_line(&other),
                }
                .into());
            }
            Err(error) if is_protocol(&error) => {
                return Err(AddressError::NotRedis {
                    address,
                    answer: first_line(&error.to_string()),
                }
                .into());
            }
            Err(error) => anyhow::bail!("Redis at {address}: {}", first_line(&error.to_string())),
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
                Err(error) if is_gone(&error) => {
                    return Err(QueueGone {
                        address: self.address.clone(),
                    }
                    .into());
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

/// A stream or consumer group the queue made is missing (`NOGROUP`, also
/// when raised inside a script).
fn is_gone(error: &RedisError) -> bool {
    error.code() == Some("NOGROUP") || error.to_string().contains("NOGROUP")
}

/// The reply could not be read as Redis's protocol.
fn is_protocol(error: &RedisError) -> bool {
    !error.is_io_error() && error.code().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_without_a_scheme_gets_the_form_and_an_example() {
        let message = check_address("127.0.0.1:6379").unwrap_err().to_string();
        assert_eq!(
            message,
            "--redis 127.0.0.1:6379: not a Redis address (no scheme): give it as redis://HOST:PORT/DB, such as redis://127.0.0.1:6379/0"
        );
        assert!(
            check_address("localhost")
                .unwrap_err()
                .to_string()
                .ends_with("such as redis://localhost:6379/0")
        );
        assert!(
            check_address("http://127.0.0.1:6379")
                .unwrap_err()
                .to_string()
                .contains("the scheme is http:")
        );
        check_address("redis://127.0.0.1:6379/0").unwrap();
        check_address("rediss://user:secret@example.com:6380/1").unwrap();
        assert_eq!(
            first_line("\n HTTP/1.1 400 Bad Request\r\nServer: x\r\n"),
            "\"HTTP/1.1 400 Bad Request\""
        );
    }
}
