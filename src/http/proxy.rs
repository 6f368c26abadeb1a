//! Proxies, decided once for both clients so every strategy goes the same way:
//! `--proxy` or curl's environment variables, `--noproxy` or `NO_PROXY`, then
//! for each request (and each redirect hop) [`Proxies::for_url`] says whether
//! it goes through a proxy. A plain `http://` URL is sent to the proxy as an
//! absolute-form `GET http://host/path` (RFC 9112, section 3.2.2); an `https://`
//! URL goes through a `CONNECT` tunnel. A `socks5://` proxy (names resolved
//! here) or `socks5h://` (names resolved by the proxy) carries both. An
//! `https://` proxy is spoken to over TLS first, its certificate checked
//! against the same roots as servers' (`--cacert`, `--capath`, the
//! `SSL_CERT_*` variables or the system's store; `-k` skips the check).
//!
//! reqwest does both itself. ureq 3 tunnels every proxied request with
//! CONNECT, which proxies refuse for port 80 (squid's default), so for plain
//! http the blocking client is given a resolver that connects to the proxy and
//! a transport that rewrites the request line to absolute form: the only
//! thing ureq's extension points cannot express. grab only sends GETs without
//! a body, so every request head that transport sees is a whole head. That
//! transport is plain TCP to the proxy, and ureq decides TLS by the target's
//! scheme, so an `https://` proxy for a plain-http URL would take a TLS layer
//! of grab's own there; instead the blocking client sends whatever goes
//! through an `https://` proxy over reqwest (see [`super::blocking`]), which
//! does both forms over TLS and keeps HTTP/2 to the origin through the tunnel.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use url::Url;

/// Which proxy each request goes through.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proxies {
    /// For `http://` URLs (`--proxy`, `http_proxy`, `ALL_PROXY`).
    pub http: Option<Url>,
    /// For `https://` URLs (`--proxy`, `HTTPS_PROXY`, `ALL_PROXY`).
    pub https: Option<Url>,
    /// Hosts reached directly (`--noproxy`, `NO_PROXY`).
    pub bypass: Vec<String>,
}

/// A proxy address grab cannot use.
#[derive(Debug, thiserror::Error)]
#[error("{source_name}: {message}: {value}")]
pub struct ProxyError {
    pub source_name: String,
    pub value: String,
    pub message: String,
}

/// A proxy address as curl reads it: `host:port` is `http://host:port`, and a
/// missing port is 1080 (443 for `https://`, as curl). http, https, socks5 and
/// socks5h proxies are supported.
pub fn parse_proxy(source_name: &str, value: &str) -> Result<Url, ProxyError> {
    let error = |message: &str| ProxyError {
        source_name: source_name.to_string(),
        value: without_credentials(value),
        message: message.to_string(),
    };
    let text = match value.contains("://") {
        true => value.to_string(),
        false => format!("http://{value}"),
    };
    let mut url = Url::parse(&text).map_err(|_| error("not a proxy address"))?;
    if !matches!(url.scheme(), "http" | "https" | "socks5" | "socks5h") {
        return Err(error(
            "only http://, https://, socks5:// and socks5h:// proxies are supported",
        ));
    }
    if url.host().is_none() {
        return Err(error("no host"));
    }
    // `Url` leaves out a scheme's default port: an https proxy's is 443.
    if url.port().is_none() && !is_tls(&url) {
        let _ = url.set_port(Some(1080));
    }
    Ok(url)
}

/// A proxy address as it may be shown: `user:password@` becomes `***@`.
fn without_credentials(value: &str) -> String {
    match value.rsplit_once('@') {
        Some((before, host)) => {
            let scheme = before.split_once("://").map_or("", |(scheme, _)| scheme);
            match scheme.is_empty() {
                true => format!("***@{host}"),
                false => format!("{scheme}://***@{host}"),
            }
        }
        None => value.to_string(),
    }
}

impl Proxies {
    /// From `--proxy` (which wins; an empty one means none) and `--noproxy`,
    /// else the environment as curl reads it: `http_proxy` in lower case only
    /// (a CGI server sets `HTTP_PROXY` from a request's `Proxy:` header),
    /// `HTTPS_PROXY`, `ALL_PROXY` and `NO_PROXY` in either case, lower first.
    pub fn from_flags_and_environment(
        proxy: Option<&str>,
        noproxy: Option<&str>,
        variable: impl Fn(&str) -> Option<String>,
    ) -> Result<Proxies, ProxyError> {
        let either_case = |name: &str| {
            variable(&name.to_ascii_lowercase())
                .or_else(|| variable(name))
                .filter(|value| !value.is_empty())
                .map(|value| (name.to_string(), value))
        };
        let parse = |found: Option<(String, String)>| {
            found
                .map(|(name, value)| parse_proxy(&name, &value))
                .transpose()
        };
        let (http, https) = match proxy {
            Some("") => (None, None),
            Some(value) => {
                let url = parse_proxy("--proxy", value)?;
                (Some(url.clone()), Some(url))
            }
            None => {
                let all = either_case("ALL_PROXY");
                let http = variable("http_proxy")
                    .filter(|value| !value.is_empty())
                    .map(|value| ("http_proxy".to_string(), value));
                (
                    parse(http.or_else(|| all.clone()))?,
                    parse(either_case("HTTPS_PROXY").or(all))?,
                )
            }
        };
        let bypass = noproxy
            .map(str::to_string)
            .or_else(|| either_case("NO_PROXY").map(|(_, value)| value))
            .unwrap_or_default()
            .split(',')
            .map(|entry| entry.trim().trim_start_matches('.').to_ascii_lowercase())
            .filter(|entry| !entry.is_empty())
            .collect();
        Ok(Proxies {
            http,
            https,
            bypass,
        })
    }

    /// The proxy a request to `url` goes through, if any.
    pub fn for_url(&self, url: &Url) -> Option<&Url> {
        let proxy = match url.scheme() {
            "http" => self.http.as_ref(),
            "https" => self.https.as_ref(),
            _ => None,
        }?;
        let host = url
            .host_str()?
            .trim_start_matches('[')
            .trim_end_matches(']');
        match self.bypass.iter().any(|entry| bypasses(entry, host)) {
            true => None,
            false => Some(proxy),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.http.is_none() && self.https.is_none()
    }
}

/// Whether a `NO_PROXY` entry covers `host`, as curl reads it: `*` covers
/// every host; a name covers itself and its subdomains; an address covers
/// itself, and `ADDRESS/BITS` a network.
fn bypasses(entry: &str, host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    if entry == "*" || entry == host {
        return true;
    }
    if let Some((network, bits)) = entry.split_once('/')
        && let (Ok(network), Ok(bits), Ok(address)) = (
            network.parse::<IpAddr>(),
            bits.parse::<u32>(),
            host.parse::<IpAddr>(),
        )
    {
        return in_network(address, network, bits);
    }
    host.ends_with(&format!(".{entry}"))
}

fn in_network(address: IpAddr, network: IpAddr, bits: u32) -> bool {
    let (address, network, width) = match (address, network) {
        (IpAddr::V4(address), IpAddr::V4(network)) => {
            (u32::from(address) as u128, u32::from(network) as u128, 32)
        }
        (IpAddr::V6(address), IpAddr::V6(network)) => {
            (u128::from(address), u128::from(network), 128)
        }
        _ => return false,
    };
    if bits > width {
        return false;
    }
    let shift = width - bits;
    shift >= width || (address >> shift) == (network >> shift)
}

/// `Proxy-Authorization` for a proxy URL with `user:password@`.
pub fn proxy_authorization(proxy: &Url) -> Option<String> {
    if proxy.username().is_empty() && proxy.password().is_none() {
        return None;
    }
    let decode = |text: &str| {
        percent_encoding::percent_decode_str(text)
            .decode_utf8_lossy()
            .into_owned()
    };
    let credentials = format!(
        "{}:{}",
        decode(proxy.username()),
        decode(proxy.password().unwrap_or(""))
    );
    Some(format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(credentials)
    ))
}

// ---- the blocking client's side ----

use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{
    Buffers, ConnectProxyConnector, ConnectionDetails, Connector, DefaultConnector, NextTimeout,
    RustlsConnector, SocksConnector, TcpConnector, Transport,
};

use super::resolve::ForUreq;

/// Whether a proxy speaks SOCKS: it carries http and https alike, and ureq
/// connects through it itself.
pub fn is_socks(proxy: &Url) -> bool {
    proxy.scheme().starts_with("socks")
}

/// Whether a proxy is spoken to over TLS (`https://`).
pub fn is_tls(proxy: &Url) -> bool {
    proxy.scheme() == "https"
}

/// The proxy for a plain-http target, as ureq sees the target.
fn plain_http_proxy<'a>(proxies: &'a Proxies, uri: &ureq::http::Uri) -> Option<&'a Url> {
    if uri.scheme_str() != Some("http") {
        return None;
    }
    let url = Url::parse(&uri.to_string()).ok()?;
    proxies.for_url(&url).filter(|proxy| !is_socks(proxy))
}

/// Resolves a proxied plain-http target to its proxy's addresses, so ureq's
/// TCP connector connects to the proxy.
#[derive(Debug)]
struct ProxyResolver {
    proxies: Arc<Proxies>,
    inner: ForUreq,
}

impl Resolver for ProxyResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        match plain_http_proxy(&self.proxies, uri) {
            Some(proxy) => {
                let proxy_uri: ureq::http::Uri = proxy
                    .as_str()
                    .parse()
                    .map_err(|_| ureq::Error::BadUri(proxy.to_string()))?;
                self.inner.resolve(&proxy_uri, config, timeout)
            }
            None => self.inner.resolve(uri, config, timeout),
        }
    }
}

/// Wraps the connection to a proxy for plain http in [`AbsoluteForm`].
#[derive(Debug)]
struct AbsoluteFormConnector {
    proxies: Arc<Proxies>,
}

impl<In: Transport> Connector<In> for AbsoluteFormConnector {
    type Out = Box<dyn Transport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let Some(inner) = chained else {
            return Ok(None);
        };
        match plain_http_proxy(&self.proxies, details.uri) {
            Some(proxy) => {
                let authority = details
                    .uri
                    .authority()
                    .map(|authority| authority.as_str().to_string())
                    .unwrap_or_default();
                Ok(Some(Box::new(AbsoluteForm {
                    inner,
                    origin: format!("http://{authority}"),
                    authorization: proxy_authorization(proxy),
                })))
            }
            None => Ok(Some(Box::new(inner))),
        }
    }
}

/// A connection to a proxy on which each request line is sent in absolute
/// form, with the proxy's credentials.
struct AbsoluteForm<T> {
    inner: T,
    /// `http://host:port` of the target.
    origin: String,
    authorization: Option<String>,
}

impl<T> fmt::Debug for AbsoluteForm<T> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("AbsoluteForm")
            .field("origin", &self.origin)
            .finish()
    }
}

/// `METHOD /path HTTP/1.1\r\n...` as `METHOD http://host/path HTTP/1.1\r\n`
/// with a `Proxy-Authorization` line after it; `None` for anything else.
fn absolute_form(head: &[u8], origin: &str, authorization: Option<&str>) -> Option<Vec<u8>> {
    let line_end = head.windows(2).position(|pair| pair == b"\r\n")?;
    let line = std::str::from_utf8(&head[..line_end]).ok()?;
    let mut parts = line.splitn(3, ' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if !target.starts_with('/') || !version.starts_with("HTTP/1.") {
        return None;
    }
    let mut rewritten = format!("{method} {origin}{target} {version}\r\n");
    if let Some(authorization) = authorization {
        rewritten += &format!("proxy-authorization: {authorization}\r\n");
    }
    let mut bytes = rewritten.into_bytes();
    bytes.extend_from_slice(&head[line_end + 2..]);
    Some(bytes)
}

impl<T: Transport> Transport for AbsoluteForm<T> {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        let output = self.inner.buffers().output();
        match absolute_form(
            &output[..amount],
            &self.origin,
            self.authorization.as_deref(),
        ) {
            Some(head) if head.len() <= output.len() => {
                output[..head.len()].copy_from_slice(&head);
                self.inner.transmit_output(head.len(), timeout)
            }
            Some(_) => Err(ureq::Error::LargeResponseHeader(amount, output.len())),
            None => self.inner.transmit_output(amount, timeout),
        }
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.inner.await_input(timeout)
    }

    fn is_open(&mut self) -> bool {
        self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

/// A ureq agent built with `config`, going through `proxies`: https through
/// ureq's own CONNECT (set per request, see [`connect_proxy`]), plain http in
/// absolute form. Without proxies, ureq's connectors. Names (the proxy's too)
/// are looked up by `resolver`.
pub fn agent_with_proxies(
    config: ureq::config::Config,
    proxies: &Proxies,
    resolver: ForUreq,
) -> ureq::Agent {
    if proxies.is_empty() {
        return ureq::Agent::with_parts(config, DefaultConnector::default(), resolver);
    }
    let proxies = Arc::new(proxies.clone());
    let connector = ()
        .chain(SocksConnector::default())
        .chain(ConnectProxyConnector::default())
        .chain(TcpConnector::default())
        .chain(AbsoluteFormConnector {
            proxies: proxies.clone(),
        })
        .chain(RustlsConnector::default());
    let resolver = ProxyResolver {
        proxies,
        inner: resolver,
    };
    ureq::Agent::with_parts(config, connector, resolver)
}

/// The proxy ureq should connect a request to `url` through itself: a SOCKS
/// proxy for any URL, an http proxy's CONNECT tunnel only for https (plain
/// http is sent to it in absolute form).
pub fn connect_proxy(proxies: &Proxies, url: &Url) -> Option<ureq::Proxy> {
    let proxy = proxies.for_url(url)?;
    if url.scheme() != "https" && !is_socks(proxy) {
        return None;
    }
    match ureq::Proxy::new(proxy.as_str()) {
        Ok(proxy) => Some(proxy),
        Err(error) => {
            let address = format!(
                "{}:{}",
                proxy.host_str().unwrap_or(""),
                proxy.port().unwrap_or(0)
            );
            tracing::warn!(%error, proxy = address, "unusable proxy");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(variables: &[(&str, &str)]) -> Proxies {
        Proxies::from_flags_and_environment(None, None, |name| {
            variables
                .iter()
                .find(|(variable, _)| *variable == name)
                .map(|(_, value)| value.to_string())
        })
        .unwrap()
    }

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    #[test]
    fn the_environment_is_read_as_curl_reads_it() {
        let found = proxies(&[("http_proxy", "p:3128"), ("HTTPS_PROXY", "http://s:8080")]);
        assert_eq!(found.http, Some(url("http://p:3128")));
        assert_eq!(found.https, Some(url("http://s:8080")));
        // Upper-case HTTP_PROXY is ignored (httpoxy); ALL_PROXY fills in.
        let found = proxies(&[("HTTP_PROXY", "evil:1"), ("ALL_PROXY", "all")]);
        assert_eq!(found.http, Some(url("http://all:1080")));
        assert_eq!(found.https, Some(url("http://all:1080")));
        // Lower case wins over upper case.
        let found = proxies(&[("https_proxy", "low:1"), ("HTTPS_PROXY", "up:1")]);
        assert_eq!(found.https, Some(url("http://low:1")));
        // --proxy wins; an empty one means none.
        let flagged =
            Proxies::from_flags_and_environment(Some("f:2"), Some("a.com"), |_| Some("x:1".into()))
                .unwrap();
        assert_eq!(flagged.http, Some(url("http://f:2")));
        assert_eq!(flagged.bypass, ["a.com"]);
        let none =
            Proxies::from_flags_and_environment(Some(""), None, |_| Some("x:1".into())).unwrap();
        assert!(none.is_empty());
        // SOCKS carries both schemes; a kind grab does not speak is refused.
        let tls = proxies(&[("ALL_PROXY", "https://t")]);
        assert_eq!(
            tls.https.as_ref().map(Url::port_or_known_default),
            Some(Some(443))
        );
        let socks = proxies(&[("ALL_PROXY", "socks5h://s")]);
        assert_eq!(socks.http, Some(url("socks5h://s:1080")));
        assert_eq!(socks.https, Some(url("socks5h://s:1080")));
        let error =
            Proxies::from_flags_and_environment(Some("socks4://s:1"), None, |_| None).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("only http://, https://, socks5:// and socks5h://"),
            "{error}"
        );
    }

    #[test]
    fn no_proxy_covers_names_subdomains_addresses_and_networks() {
        let found = proxies(&[
            ("http_proxy", "p:1"),
            ("NO_PROXY", "example.com, .internal,10.0.0.0/8,::1"),
        ]);
        for direct in [
            "http://example.com/",
            "http://www.example.com/",
            "http://a.internal/",
            "http://10.1.2.3/",
            "http://[::1]:8080/",
        ] {
            assert_eq!(found.for_url(&url(direct)), None, "{direct}");
        }
        for proxied in [
            "http://notexample.com/",
            "http://11.0.0.1/",
            "http://internal.org/",
        ] {
            assert!(found.for_url(&url(proxied)).is_some(), "{proxied}");
        }
        // No https proxy: https goes direct.
        assert_eq!(found.for_url(&url("https://other.org/")), None);
        let everything = proxies(&[("http_proxy", "p:1"), ("no_proxy", "*")]);
        assert_eq!(everything.for_url(&url("http://any/")), None);
    }

    #[test]
    fn request_lines_are_rewritten_to_absolute_form() {
        let head = b"GET /a/b?c=1 HTTP/1.1\r\nhost: h:8\r\n\r\n";
        let rewritten = absolute_form(head, "http://h:8", Some("Basic eDp5")).unwrap();
        assert_eq!(
            String::from_utf8(rewritten).unwrap(),
            "GET http://h:8/a/b?c=1 HTTP/1.1\r\nproxy-authorization: Basic eDp5\r\nhost: h:8\r\n\r\n"
        );
        assert_eq!(absolute_form(b"body bytes", "http://h", None), None);
        assert_eq!(
            proxy_authorization(&url("http://us%40er:p%3Ass@p:1")).as_deref(),
            Some("Basic dXNAZXI6cDpzcw==")
        );
        assert_eq!(proxy_authorization(&url("http://p:1")), None);
    }
}
