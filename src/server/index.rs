//! What the server says about itself at `/`: JSON for programs, and for a
//! browser (a request whose `Accept` prefers `text/html`) a page a person can
//! read: thumbnails from the gallery, served by this same server, and every
//! endpoint with what it shows, its parameters and a link to try it. Both are
//! made from one list, so they never disagree. The page is self-contained:
//! inline CSS, no script, nothing fetched from anywhere but this server.

use std::fmt::Write as _;
use std::sync::OnceLock;

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::content::{self, Parameter};
use super::operations::{FAST, MEDIUM, Operation, SLOW};
use crate::escape_markup as escape;

/// One endpoint as `/` describes it.
struct Endpoint {
    /// The route, with its parameters as `?name=&...`.
    path: String,
    alias: Option<String>,
    description: String,
    /// A URL on this server that shows it.
    example: String,
}

fn endpoints() -> Vec<Endpoint> {
    let operation = |operation: Operation| Endpoint {
        path: format!("/{}", operation.name),
        alias: Some(format!("/{}", operation.alias)),
        description: format!(
            "waits {}-{} s without blocking, answers the time waited",
            operation.shortest, operation.longest
        ),
        example: format!("/{}", operation.name),
    };
    let with_parameters = |route: &str, parameters: &[&str]| {
        let pairs: Vec<String> = parameters.iter().map(|name| format!("{name}=")).collect();
        format!("{route}?{}", pairs.join("&"))
    };
    let plain = |path: &str, alias: Option<&str>, description: &str| Endpoint {
        path: path.to_string(),
        alias: alias.map(str::to_string),
        description: description.to_string(),
        example: path.to_string(),
    };
    vec![
        operation(FAST),
        operation(MEDIUM),
        operation(SLOW),
        plain(
            "/mixed",
            Some("/mixto"),
            "fast, medium and slow at once: about the slowest",
        ),
        plain(
            "/sequential",
            Some("/secuencial"),
            "fast, medium and slow one after another: about their sum",
        ),
        plain("/fail", None, "always answers a JSON 500"),
        Endpoint {
            path: with_parameters("/images/NAME.jpg|png", content::IMAGE_PARAMETERS),
            alias: None,
            description: "a generated picture".to_string(),
            example: "/images/sun.png?w=320&h=240".to_string(),
        },
        Endpoint {
            path: with_parameters("/images/index.txt", content::IMAGE_INDEX_PARAMETERS),
            alias: None,
            description: "a list of image URLs".to_string(),
            example: "/images/index.txt?count=10".to_string(),
        },
        Endpoint {
            path: with_parameters("/files/NAME", content::FILE_PARAMETERS),
            alias: None,
            description: "seeded bytes".to_string(),
            example: "/files/file-0001.bin?size=1000".to_string(),
        },
        Endpoint {
            path: with_parameters("/files/index.txt", content::FILE_INDEX_PARAMETERS),
            alias: None,
            description: "a list of file URLs".to_string(),
            example: "/files/index.txt?count=10".to_string(),
        },
    ]
}

/// The numeric parameters with their defaults, as the page and the JSON list them.
fn parameters() -> [(&'static Parameter, String); 5] {
    [
        (&content::WIDTH, content::DEFAULT_WIDTH.to_string()),
        (&content::HEIGHT, content::DEFAULT_HEIGHT.to_string()),
        (&content::DELAY, "0".to_string()),
        (
            &content::COUNT,
            format!(
                "{} images, {} files",
                content::DEFAULT_IMAGE_COUNT,
                content::DEFAULT_FILE_COUNT
            ),
        ),
        (&content::SIZE, content::DEFAULT_FILE_SIZE.to_string()),
    ]
}

const HEADERS: [&str; 2] = ["X-Response-Time (seconds)", "Server-Timing"];

fn describe() -> serde_json::Value {
    let endpoints: Vec<serde_json::Value> = endpoints()
        .into_iter()
        .map(|endpoint| {
            let mut fields = serde_json::json!({
                "path": endpoint.path,
                "description": endpoint.description,
                "example": endpoint.example,
            });
            if let Some(alias) = endpoint.alias {
                fields["alias"] = alias.into();
            }
            fields
        })
        .collect();
    let mut parameters: Vec<serde_json::Value> = parameters()
        .into_iter()
        .map(|(parameter, default)| {
            serde_json::json!({
                "name": parameter.name,
                "unit": parameter.unit,
                "minimum": parameter.allowed.start(),
                "maximum": parameter.allowed.end(),
                "default": default,
            })
        })
        .collect();
    parameters.push(serde_json::json!({
        "name": content::FORMAT,
        "values": content::FORMATS,
        "default": content::FORMATS[0],
    }));
    serde_json::json!({
        "server": "grab",
        "version": env!("CARGO_PKG_VERSION"),
        "endpoints": endpoints,
        "parameters": parameters,
        "headers": HEADERS,
    })
}

/// How many thumbnails the page shows, and their size.
const THUMBNAILS: usize = 12;
const THUMBNAIL_WIDTH: u64 = 160;
const THUMBNAIL_HEIGHT: u64 = 120;

const STYLE: &str = "body{font-family:sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}\
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.8em}\
code,pre{font-size:13px}pre{background:#f6f8fa;padding:1em;overflow-x:auto}\
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(160px,1fr));gap:10px}\
.gallery a{display:block;text-align:center;font-size:12px;color:#555;text-decoration:none}\
.gallery img{display:block;width:100%;height:auto;border:1px solid #ddd;background:#f1f3f5}\
table{border-collapse:collapse;width:100%}td,th{padding:6px 10px;text-align:left;vertical-align:top;border-bottom:1px solid #e5e5e5}\
th{background:#f6f8fa}";

/// The page for a person. The command line uses the host the browser asked
/// for, so it can be pasted as it is.
fn page(host: &str) -> String {
    let mut html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>grab serve</title><style>{STYLE}</style></head><body>\n\
         <h1>grab serve</h1>\n\
         <p>A local server for downloading without the internet. Its gallery draws each picture from \
         its name, so the same URL always gives the same bytes; its files are seeded bytes of any size; \
         its indexes list their URLs, one a line, for <code>grab get -i</code>. The other endpoints wait \
         without holding a thread, alone, all at once or one after another, to show what an asynchronous \
         server does. A program that asks for <code>/</code> gets this description as JSON.</p>\n\
         <h2>The gallery</h2>\n<p>{THUMBNAILS} of its pictures as {THUMBNAIL_WIDTH}x{THUMBNAIL_HEIGHT} \
         thumbnails, served by this server; each links to the full {}x{} picture.</p>\n<div class=\"gallery\">\n",
        content::DEFAULT_WIDTH,
        content::DEFAULT_HEIGHT,
    );
    for number in 1..=THUMBNAILS {
        // Every fourth a PNG, so both encoders show.
        let extension = if number % 4 == 0 { "png" } else { "jpg" };
        let name = format!("image-{number:04}.{extension}");
        let _ = writeln!(
            html,
            "<a href=\"/images/{name}\"><img src=\"/images/{name}?w={THUMBNAIL_WIDTH}&amp;h={THUMBNAIL_HEIGHT}\" \
             width=\"{THUMBNAIL_WIDTH}\" height=\"{THUMBNAIL_HEIGHT}\" alt=\"{name}\">{name}</a>"
        );
    }
    html += "</div>\n<h2>Endpoints</h2>\n\
             <table class=\"endpoints\"><tr><th>path</th><th>what it shows</th><th>try it</th></tr>\n";
    for endpoint in endpoints() {
        let alias = endpoint
            .alias
            .map(|alias| format!("<br>also <code>{}</code>", escape(&alias)))
            .unwrap_or_default();
        let _ = writeln!(
            html,
            "<tr><td><code>{}</code>{alias}</td><td>{}</td><td><a href=\"{example}\">{example}</a></td></tr>",
            escape(&endpoint.path),
            escape(&endpoint.description),
            example = escape(&endpoint.example),
        );
    }
    html += "</table>\n<h2>Parameters</h2>\n<p>Whole numbers; a value out of its range, a parameter \
             given twice or one the endpoint does not take is a JSON 400 that says so.</p>\n\
             <table class=\"parameters\"><tr><th>name</th><th>counts</th><th>from</th><th>to</th><th>default</th></tr>\n";
    for (parameter, default) in parameters() {
        let _ = writeln!(
            html,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            parameter.name,
            parameter.unit,
            parameter.allowed.start(),
            parameter.allowed.end(),
            escape(&default),
        );
    }
    let _ = writeln!(
        html,
        "<tr><td><code>{}</code></td><td>an index's file type</td><td colspan=\"2\">{}</td><td>{}</td></tr>\n</table>",
        content::FORMAT,
        content::FORMATS.join(", "),
        content::FORMATS[0],
    );
    let base = escape(&format!("http://{host}"));
    let _ = write!(
        html,
        "<p>Every response carries its handling time as {}.</p>\n\
         <h2>From the command line</h2>\n\
         <pre>curl -s '{base}/images/index.txt?count=100&amp;delay_ms=50' | grab get -i - -o gallery\n\
         curl -s {base}/mixed</pre>\n</body></html>\n",
        HEADERS.join(" and "),
    );
    html
}

/// Whether the client prefers HTML: `Accept` gives `text/html` a quality above
/// zero and above `application/json`'s. Browsers do; curl (`*/*`), clients that
/// send no `Accept` and clients that ask for JSON get JSON, as before the page.
fn wants_html(headers: &HeaderMap) -> bool {
    let (mut html, mut json) = (0.0f32, 0.0f32);
    for value in headers.get_all(header::ACCEPT) {
        let Ok(value) = value.to_str() else { continue };
        for range in value.split(',') {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or_default().trim();
            let quality = parts
                .filter_map(|parameter| parameter.trim().strip_prefix("q="))
                .find_map(|quality| quality.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            if media.eq_ignore_ascii_case("text/html") {
                html = html.max(quality);
            } else if media.eq_ignore_ascii_case("application/json") {
                json = json.max(quality);
            }
        }
    }
    html > 0.0 && html > json
}

/// `/`: the page for a browser, JSON for everything else. The JSON never
/// changes, so it is serialised once: this is the endpoint load tests hammer
/// hardest.
pub async fn index(headers: HeaderMap) -> Response {
    static JSON: OnceLock<Bytes> = OnceLock::new();
    let (content_type, body) = if wants_html(&headers) {
        let host = headers
            .get(header::HOST)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("127.0.0.1");
        ("text/html; charset=utf-8", Bytes::from(page(host)))
    } else {
        let body = JSON.get_or_init(|| Bytes::from(describe().to_string()));
        ("application/json", body.clone())
    };
    let mut response = ([(header::CONTENT_TYPE, content_type)], body).into_response();
    // One URL, two representations: caches must key on Accept.
    response
        .headers_mut()
        .insert(header::VARY, HeaderValue::from_static("accept"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepting(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn browsers_get_the_page_and_programs_json() {
        // What Chromium and Firefox send for a page.
        assert!(wants_html(&accepting(
            "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
        )));
        assert!(wants_html(&accepting("application/json;q=0.5, text/html")));
        assert!(!wants_html(&HeaderMap::new()));
        assert!(!wants_html(&accepting("*/*")));
        assert!(!wants_html(&accepting("application/json")));
        assert!(!wants_html(&accepting("text/html;q=0")));
        assert!(!wants_html(&accepting("text/html, application/json")));
    }

    #[test]
    fn the_page_escapes_the_host_it_was_asked_for() {
        let html = page("a<b>:80");
        assert!(html.contains("http://a&lt;b&gt;:80/mixed"));
        assert!(!html.contains("a<b>"));
    }
}
