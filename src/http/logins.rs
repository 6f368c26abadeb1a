//! Logins a run carries from one request to the next: the cookies responses
//! set (kept by RFC 6265's domain, path, secure and expiry rules, by the
//! `cookie_store` crate), loaded from and saved to wget's Netscape cookie
//! files, and `.netrc` credentials sent as Basic auth to their own host.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::Engine;
use cookie_store::{CookieDomain, CookieExpiration, CookiePath, CookieStore, RawCookie};

use super::Settings;

/// The cookie jar and `.netrc` entries of one process.
#[derive(Default)]
pub struct Logins {
    jar: Mutex<CookieStore>,
    netrc: Vec<Machine>,
}

/// One `.netrc` entry: `machine HOST` (or `default`, no host), login, password.
#[derive(Debug, Clone, PartialEq)]
struct Machine {
    host: Option<String>,
    login: String,
    password: String,
}

impl Logins {
    /// The jar with `--load-cookies` in it and the `--netrc` entries; an
    /// unreadable file is an error naming it.
    pub fn open(settings: &Settings) -> Result<Logins, String> {
        let mut jar = CookieStore::default();
        if let Some(path) = &settings.cookies.load {
            let text = fs::read_to_string(path).map_err(|error| {
                format!("cannot read the cookie file {}: {error}", path.display())
            })?;
            load_netscape(&mut jar, &text);
        }
        let netrc = match &settings.netrc {
            Some(path) => match fs::read_to_string(path) {
                Ok(text) => parse_netrc(&text),
                // As curl and wget: no ~/.netrc is no credentials.
                Err(error) if error.kind() == io::ErrorKind::NotFound => Vec::new(),
                Err(error) => {
                    return Err(format!(
                        "cannot read the netrc file {}: {error}",
                        path.display()
                    ));
                }
            },
            None => Vec::new(),
        };
        Ok(Logins {
            jar: Mutex::new(jar),
            netrc,
        })
    }

    /// The `Cookie` header the jar has for `url`, if any.
    pub fn cookie_header(&self, url: &url::Url) -> Option<String> {
        let jar = self
            .jar
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let pairs: Vec<String> = jar
            .get_request_values(url)
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }

    /// Keeps the `Set-Cookie` values of a response to `url`; the jar drops
    /// what the rules refuse (another domain, a secure cookie over http).
    pub fn keep(&self, url: &url::Url, values: &[String]) {
        if values.is_empty() {
            return;
        }
        let cookies: Vec<RawCookie<'static>> = values
            .iter()
            .filter_map(|value| RawCookie::parse(value.clone()).ok())
            .collect();
        let mut jar = self
            .jar
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        jar.store_response_cookies(cookies.into_iter(), url);
    }

    /// `Authorization: Basic` from the `.netrc` entry for `host`, or its
    /// `default` entry.
    pub fn basic(&self, host: &str) -> Option<String> {
        let machine = self
            .netrc
            .iter()
            .find(|machine| machine.host.as_deref() == Some(host))
            .or_else(|| self.netrc.iter().find(|machine| machine.host.is_none()))?;
        let pair = format!("{}:{}", machine.login, machine.password);
        Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        ))
    }

    /// Writes the unexpired cookies to `path` in the Netscape format, session
    /// cookies only when `sessions` (wget's --keep-session-cookies), through
    /// a temporary file so a crash never leaves half a file.
    pub fn save(&self, path: &Path, sessions: bool) -> io::Result<()> {
        let text = {
            let jar = self
                .jar
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let mut text = String::from("# Netscape HTTP Cookie File\n");
            for cookie in jar.iter_unexpired() {
                let expires = match cookie.expires {
                    CookieExpiration::AtUtc(time) => time.unix_timestamp(),
                    CookieExpiration::SessionEnd if sessions => 0,
                    CookieExpiration::SessionEnd => continue,
                };
                let (domain, subdomains) = match &cookie.domain {
                    CookieDomain::HostOnly(host) => (host.clone(), "FALSE"),
                    CookieDomain::Suffix(suffix) => (format!(".{suffix}"), "TRUE"),
                    _ => continue,
                };
                let prefix = match cookie.http_only() {
                    Some(true) => "#HttpOnly_",
                    _ => "",
                };
                let secure = match cookie.secure() {
                    Some(true) => "TRUE",
                    _ => "FALSE",
                };
                text.push_str(&format!(
                    "{prefix}{domain}\t{subdomains}\t{}\t{secure}\t{expires}\t{}\t{}\n",
                    &*cookie.path,
                    cookie.name(),
                    cookie.value()
                ));
            }
            text
        };
        let mut temporary = PathBuf::from(path);
        temporary.as_mut_os_string().push(".tmp");
        let mut file = fs::File::create(&temporary)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        fs::rename(&temporary, path)
    }
}

/// Reads a Netscape cookie file (curl's and wget's): a line per cookie,
/// `domain  subdomains  path  secure  expires  name  value` by TABs; a
/// `#HttpOnly_` prefix marks the flag, other `#` lines are comments. An
/// expiry of 0 is a session cookie. Lines that do not fit are skipped, as
/// curl does.
fn load_netscape(jar: &mut CookieStore, text: &str) {
    for line in text.lines() {
        let (line, http_only) = match line.strip_prefix("#HttpOnly_") {
            Some(rest) => (rest, true),
            None => (line, false),
        };
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let [domain, subdomains, path, secure, expires, name, value] = fields[..] else {
            continue;
        };
        let host = domain.trim_start_matches('.');
        let secure = secure.eq_ignore_ascii_case("TRUE");
        let scheme = if secure { "https" } else { "http" };
        let Ok(url) = url::Url::parse(&format!("{scheme}://{host}{path}")) else {
            continue;
        };
        let mut raw = RawCookie::new(name.to_string(), value.to_string());
        raw.set_secure(secure);
        raw.set_http_only(http_only);
        raw.set_path(path.to_string());
        let Ok(mut cookie) = cookie_store::Cookie::try_from_raw_cookie(&raw, &url) else {
            continue;
        };
        cookie.domain = match subdomains.eq_ignore_ascii_case("TRUE") {
            true => CookieDomain::Suffix(host.to_ascii_lowercase()),
            false => CookieDomain::HostOnly(host.to_ascii_lowercase()),
        };
        if let Some(path) = CookiePath::parse(path) {
            cookie.path = path;
        }
        cookie.expires = match expires.trim().parse::<i64>() {
            Ok(0) | Err(_) => CookieExpiration::SessionEnd,
            Ok(seconds) => match cookie::time::OffsetDateTime::from_unix_timestamp(seconds) {
                Ok(time) => CookieExpiration::AtUtc(time),
                Err(_) => continue,
            },
        };
        let _ = jar.insert(cookie.into_owned(), &url);
    }
}

/// Reads `.netrc`: words split by white space, `machine HOST` or `default`
/// opening an entry, `login` and `password` filling it; `account` is read
/// and ignored, and a `macdef` ends what is read (its macro runs to a blank
/// line and names no login).
fn parse_netrc(text: &str) -> Vec<Machine> {
    let mut machines = Vec::new();
    let mut current: Option<Machine> = None;
    let mut words = text.split_whitespace();
    while let Some(word) = words.next() {
        match word {
            "machine" | "default" => {
                machines.extend(current.take());
                let host = match word {
                    "machine" => words.next().map(|host| host.to_ascii_lowercase()),
                    _ => None,
                };
                current = Some(Machine {
                    host,
                    login: String::new(),
                    password: String::new(),
                });
            }
            "login" | "password" | "account" => {
                let value = words.next().unwrap_or_default().to_string();
                if let Some(machine) = current.as_mut() {
                    match word {
                        "login" => machine.login = value,
                        "password" => machine.password = value,
                        _ => {}
                    }
                }
            }
            "macdef" => break,
            _ => {}
        }
    }
    machines.extend(current);
    machines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netrc_entries_and_default() {
        let machines = parse_netrc(
            "machine files.example login ann password s3cret\n\
             default\n  login anonymous\n  password guest\n",
        );
        let logins = Logins {
            netrc: machines,
            ..Logins::default()
        };
        assert_eq!(
            logins.basic("files.example").as_deref(),
            Some("Basic YW5uOnMzY3JldA==")
        );
        // anonymous:guest
        assert_eq!(
            logins.basic("other.example").as_deref(),
            Some("Basic YW5vbnltb3VzOmd1ZXN0")
        );
    }

    #[test]
    fn cookies_follow_domain_path_and_secure() {
        let logins = Logins::default();
        let url = url::Url::parse("http://a.example/login").unwrap();
        logins.keep(
            &url,
            &[
                "session=1; Path=/files".to_string(),
                "secret=2; Secure".to_string(),
                "wide=3; Domain=a.example; Path=/".to_string(),
            ],
        );
        let page = url::Url::parse("http://a.example/files/x").unwrap();
        let header = logins.cookie_header(&page).unwrap();
        assert!(header.contains("session=1") && header.contains("wide=3"));
        assert!(!header.contains("secret"));
        let elsewhere = url::Url::parse("http://a.example/other").unwrap();
        assert_eq!(logins.cookie_header(&elsewhere).as_deref(), Some("wide=3"));
        let other_host = url::Url::parse("http://b.example/files/x").unwrap();
        assert_eq!(logins.cookie_header(&other_host), None);
    }

    #[test]
    fn netscape_files_load_and_save() {
        let mut jar = CookieStore::default();
        load_netscape(
            &mut jar,
            "# Netscape HTTP Cookie File\n\
             .a.example\tTRUE\t/\tFALSE\t4102444800\tkept\tyes\n\
             a.example\tFALSE\t/\tFALSE\t0\tsession\ton\n\
             a.example\tFALSE\t/\tFALSE\t1\told\tgone\n",
        );
        let logins = Logins {
            jar: Mutex::new(jar),
            ..Logins::default()
        };
        let sub = url::Url::parse("http://www.a.example/").unwrap();
        assert_eq!(logins.cookie_header(&sub).as_deref(), Some("kept=yes"));
        let (_folder, path) = crate::fs::scratch_file("cookies.txt");
        logins.save(&path, false).unwrap();
        let saved = fs::read_to_string(&path).unwrap();
        assert!(saved.contains(".a.example\tTRUE\t/\tFALSE\t4102444800\tkept\tyes"));
        assert!(!saved.contains("session") && !saved.contains("old"));
        logins.save(&path, true).unwrap();
        let saved = fs::read_to_string(&path).unwrap();
        assert!(saved.contains("a.example\tFALSE\t/\tFALSE\t0\tsession\ton"));
    }
}
