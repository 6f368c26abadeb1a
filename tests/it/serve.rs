//! The local server's gallery, through a real socket.

use grab::gallery::{self, Format};

use super::support::gallery as start_gallery;

fn get(url: &str) -> (u16, Vec<u8>, String) {
    let mut response = ureq::get(url)
        .config()
        .http_status_as_error(false)
        .build()
        .call()
        .unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|value| value.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = response.body_mut().read_to_vec().unwrap();
    (status, body, content_type)
}

#[test]
fn images_are_deterministic_and_decodable() {
    let server = start_gallery();
    let (status, body, content_type) =
        get(&format!("{}/images/sun.png?w=40&h=30", server.base_url()));
    assert_eq!((status, content_type.as_str()), (200, "image/png"));
    assert_eq!(
        body,
        gallery::encode("sun.png", 40, 30, Format::Png).to_vec()
    );
    let decoded = image::load_from_memory(&body).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (40, 30));
    let (_, jpeg, content_type) = get(&format!("{}/images/moon.jpg", server.base_url()));
    assert_eq!(content_type, "image/jpeg");
    assert_eq!(image::load_from_memory(&jpeg).unwrap().width(), 640);
}

#[test]
fn index_lists_urls_that_work() {
    let server = start_gallery();
    let (status, body, _) = get(&format!(
        "{}/images/index.txt?count=3&delay_ms=5&w=20&h=10&format=png",
        server.base_url()
    ));
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(
        lines[0],
        format!(
            "{}/images/image-0001.png?w=20&h=10&delay_ms=5",
            server.base_url()
        )
    );
    let (status, body, _) = get(lines[2]);
    assert_eq!(status, 200);
    assert_eq!(image::load_from_memory(&body).unwrap().height(), 10);
}

#[test]
fn files_have_the_requested_size_small_and_streamed() {
    let server = start_gallery();
    for size in [0usize, 1, 20_000, 300_001] {
        let (status, body, content_type) =
            get(&format!("{}/files/blob.bin?size={size}", server.base_url()));
        assert_eq!(
            (status, content_type.as_str()),
            (200, "application/octet-stream")
        );
        assert_eq!(body.len(), size);
        // A prefix of a larger file: the generator is the same stream.
        let mut expected = vec![0u8; size];
        gallery::Generator::new(gallery::seed_of("blob.bin")).fill(&mut expected);
        assert_eq!(body, expected);
    }
}

#[test]
fn unknown_image_type_is_404() {
    let server = start_gallery();
    let (status, body, content_type) = get(&format!("{}/images/x.gif", server.base_url()));
    assert_eq!((status, content_type.as_str()), (404, "application/json"));
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(json["error"].as_str().unwrap().contains("x.gif"), "{json}");
}

/// The JSON body of an error answer, after checking its status.
fn error_of(url: &str, status: u16) -> serde_json::Value {
    let (answered, body, content_type) = get(url);
    let text = String::from_utf8_lossy(&body);
    assert_eq!(answered, status, "{url}: {text}");
    assert_eq!(content_type, "application/json", "{url}: {text}");
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["status"], status, "{url}: {json}");
    json
}

#[test]
fn values_out_of_range_are_400_naming_the_range() {
    let server = start_gallery();
    let base = server.base_url();
    for (path, parameter, maximum) in [
        ("/images/a.png?w=4097", "w", 4096u64),
        ("/images/a.png?h=0", "h", 4096),
        ("/images/index.txt?count=1000001", "count", 1_000_000),
        ("/files/index.txt?count=1000001", "count", 1_000_000),
        ("/files/a.bin?size=17179869185", "size", 17_179_869_184),
        ("/files/a.bin?delay_ms=60001", "delay_ms", 60_000),
        ("/images/index.txt?w=99999", "w", 4096),
    ] {
        let json = error_of(&format!("{base}{path}"), 400);
        assert_eq!(json["parameter"], parameter, "{path}: {json}");
        assert_eq!(json["maximum"], maximum, "{path}: {json}");
        let message = json["error"].as_str().unwrap();
        assert!(
            message.contains(&format!("to {maximum}")),
            "{path}: {message}"
        );
    }
    // Not a number at all, or an unknown format: 400 with what was wrong.
    let json = error_of(&format!("{base}/images/a.png?w=wide"), 400);
    assert!(json["error"].as_str().unwrap().contains("w"), "{json}");
    let json = error_of(&format!("{base}/files/a.bin?size=-1"), 400);
    assert!(json["error"].as_str().unwrap().contains("size"), "{json}");
    let json = error_of(&format!("{base}/images/index.txt?format=gif"), 400);
    assert!(json["error"].as_str().unwrap().contains("gif"), "{json}");
    // The edges themselves are allowed.
    assert_eq!(get(&format!("{base}/images/a.png?w=1&h=1")).0, 200);
    assert_eq!(get(&format!("{base}/files/index.txt?count=0")).0, 200);
}

/// A value that is not a whole number is refused in grab's words, saying what
/// the number counts, never in the query parser's (`invalid digit found in
/// string`).
#[test]
fn values_that_are_not_whole_numbers_are_400_in_plain_words() {
    let server = start_gallery();
    let base = server.base_url();
    for (path, parameter, unit, value) in [
        ("/images/a.png?w=abc", "w", "pixels", "abc"),
        ("/images/a.jpg?h=1.5", "h", "pixels", "1.5"),
        ("/images/a.jpg?delay_ms=", "delay_ms", "milliseconds", ""),
        ("/images/index.txt?count=ten", "count", "URLs", "ten"),
        ("/files/a.bin?size=-1", "size", "bytes", "-1"),
        ("/files/index.txt?size=%2B5", "size", "bytes", "+5"),
    ] {
        let json = error_of(&format!("{base}{path}"), 400);
        assert_eq!(
            json["error"],
            format!("{parameter} must be a whole number of {unit}, got \"{value}\""),
            "{path}: {json}"
        );
        assert_eq!(json["parameter"], parameter, "{path}: {json}");
        assert_eq!(json["value"], value, "{path}: {json}");
    }
    // All digits, but past any whole number the server holds: out of range.
    let json = error_of(
        &format!("{base}/images/a.png?w=99999999999999999999999"),
        400,
    );
    assert_eq!(
        json["error"],
        "w must be from 1 to 4096, got 99999999999999999999999"
    );
    let json = error_of(&format!("{base}/images/index.txt?format=gif"), 400);
    assert_eq!(json["error"], "format must be one of jpg, png, got \"gif\"");
    let json = error_of(&format!("{base}/images/a.png?w=5&w=6"), 400);
    assert_eq!(json["parameter"], "w", "{json}");
    assert!(
        json["error"].as_str().unwrap().contains("more than once"),
        "{json}"
    );
}

/// A parameter the route does not take (a typo, or one meant for another
/// route) is a 400 naming the ones it does, never silently ignored.
#[test]
fn unknown_parameters_are_400_naming_the_known_ones() {
    let server = start_gallery();
    let base = server.base_url();
    for (path, parameter, known) in [
        (
            "/images/a.png?width=5",
            "width",
            &["w", "h", "delay_ms"][..],
        ),
        (
            "/images/index.txt?count=2&size=5",
            "size",
            &["count", "delay_ms", "w", "h", "format"],
        ),
        ("/files/a.bin?w=5", "w", &["size", "delay_ms"]),
        (
            "/files/index.txt?format=png",
            "format",
            &["count", "size", "delay_ms"],
        ),
    ] {
        let json = error_of(&format!("{base}{path}"), 400);
        assert_eq!(json["parameter"], parameter, "{path}: {json}");
        assert_eq!(json["known"], serde_json::json!(known), "{path}: {json}");
        let route = path.split('?').next().unwrap();
        assert_eq!(
            json["error"],
            format!(
                "unknown parameter \"{parameter}\": {route} takes {}",
                known.join(", ")
            ),
            "{path}: {json}"
        );
    }
}

/// The `<img>` sources of a page, in order.
fn image_sources(html: &str) -> Vec<String> {
    html.match_indices("<img ")
        .map(|(at, _)| {
            let tag = &html[at..at + html[at..].find('>').unwrap()];
            let from = tag.find(" src=\"").expect("an img with a src") + " src=\"".len();
            tag[from..from + tag[from..].find('"').unwrap()].replace("&amp;", "&")
        })
        .collect()
}

/// A browser at `/` gets a page, not JSON: thumbnails from the gallery and every
/// endpoint; curl's `*/*`, no `Accept` or `application/json` still get JSON.
#[test]
fn a_browser_at_root_gets_a_page_and_programs_get_json() {
    let server = start_gallery();
    let base = server.base_url();
    let browser_accept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    let (status, headers, body) = get_with(&format!("{base}/"), &[("accept", browser_accept)]);
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(headers["vary"], "accept");
    let html = String::from_utf8(body).unwrap();
    let (_, _, json) = get_with(&format!("{base}/"), &[("accept", "*/*")]);
    let json: serde_json::Value = serde_json::from_slice(&json).unwrap();
    for endpoint in json["endpoints"].as_array().unwrap() {
        let path = endpoint["path"].as_str().unwrap();
        assert!(
            html.contains(&grab::escape_markup(path)),
            "{path} missing from the page"
        );
    }
    // Self-contained: every image from this server, no script, no stylesheet
    // fetched from anywhere.
    let sources = image_sources(&html);
    assert_eq!(sources.len(), 12, "{sources:?}");
    for source in &sources {
        assert!(source.starts_with("/images/"), "{source}");
        let (status, body, content_type) = get(&format!("{base}{source}"));
        assert_eq!(status, 200, "{source}");
        assert!(
            content_type.starts_with("image/"),
            "{source}: {content_type}"
        );
        assert_eq!(image::load_from_memory(&body).unwrap().width(), 160);
    }
    assert!(
        !html.contains("<script") && !html.contains("<link"),
        "{html}"
    );
    for accept in [None, Some("*/*"), Some("application/json")] {
        let headers: Vec<(&str, &str)> =
            accept.map(|value| ("accept", value)).into_iter().collect();
        let (status, headers, body) = get_with(&format!("{base}/"), &headers);
        assert_eq!(status, 200);
        assert_eq!(headers["content-type"], "application/json", "{accept:?}");
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["server"], "grab", "{accept:?}");
    }
}

/// The page at `/` in a real headless Chromium: every image on it has loaded
/// (a natural size, the thumbnail's), each served by the server itself. The
/// screenshot is kept as target/test-artefacts/serve.png.
#[test]
#[cfg(unix)]
fn the_page_at_root_loads_its_thumbnails_in_a_real_browser() {
    let server = start_gallery();
    let base = server.base_url();
    let (_, _, body) = get_with(&format!("{base}/"), &[("accept", "text/html")]);
    let expected = image_sources(&String::from_utf8(body).unwrap()).len();
    let mut page = super::browser::Page::open(&format!("{base}/"));
    assert_eq!(page.evaluate("document.title"), "grab serve");
    let images = page.evaluate(
        "Array.from(document.images, image => \
         ({source: image.currentSrc, width: image.naturalWidth, height: image.naturalHeight}))",
    );
    let images = images.as_array().unwrap();
    assert_eq!(images.len(), expected, "{images:?}");
    assert!(expected > 0);
    for image in images {
        assert!(
            image["source"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{base}/images/")),
            "{image}"
        );
        assert_eq!(
            (image["width"].as_u64(), image["height"].as_u64()),
            (Some(160), Some(120)),
            "not loaded: {image}"
        );
    }
    page.screenshot("serve.png");
}

/// Status, headers and body of a GET with extra request headers.
fn get_with(url: &str, headers: &[(&str, &str)]) -> (u16, axum::http::HeaderMap, Vec<u8>) {
    let mut request = ureq::get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut response = request
        .config()
        .http_status_as_error(false)
        .build()
        .call()
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.body_mut().read_to_vec().unwrap();
    (status, headers, body)
}

#[test]
fn images_carry_validators_and_honour_conditions_and_ranges() {
    let server = start_gallery();
    let url = format!("{}/images/owl.jpg?w=64&h=48", server.base_url());
    let whole = gallery::encode("owl.jpg", 64, 48, Format::Jpeg).to_vec();
    let (status, headers, body) = get_with(&url, &[]);
    assert_eq!((status, body.len()), (200, whole.len()));
    let etag = headers["etag"].to_str().unwrap().to_string();
    assert!(etag.starts_with('"'), "a strong validator: {etag}");
    let last_modified = headers["last-modified"].to_str().unwrap().to_string();
    assert_eq!(headers["accept-ranges"], "bytes");
    // The same on another server: the validator comes from what decides the bytes.
    let again = start_gallery();
    let (_, other_headers, _) = get_with(
        &format!("{}/images/owl.jpg?w=64&h=48", again.base_url()),
        &[],
    );
    assert_eq!(other_headers["etag"], etag.as_str());
    assert_eq!(other_headers["last-modified"], last_modified.as_str());
    // Another size is another image, with another validator.
    let (_, resized, _) = get_with(
        &format!("{}/images/owl.jpg?w=65&h=48", server.base_url()),
        &[],
    );
    assert_ne!(resized["etag"], etag.as_str());

    let (status, _, body) = get_with(&url, &[("if-none-match", &etag)]);
    assert_eq!((status, body.len()), (304, 0));
    let (status, _, _) = get_with(&url, &[("if-modified-since", &last_modified)]);
    assert_eq!(status, 304);
    let (status, _, body) = get_with(&url, &[("if-none-match", "\"other\"")]);
    assert_eq!((status, body), (200, whole.clone()));

    let (status, headers, body) = get_with(&url, &[("range", "bytes=100-")]);
    assert_eq!(status, 206);
    assert_eq!(body, whole[100..]);
    assert_eq!(
        headers["content-range"],
        format!("bytes 100-{}/{}", whole.len() - 1, whole.len()).as_str()
    );
    let (status, _, body) = get_with(&url, &[("range", "bytes=100-"), ("if-range", &etag)]);
    assert_eq!((status, body.as_slice()), (206, &whole[100..]));
    // A stale validator in If-Range: the whole image.
    let (status, _, body) = get_with(&url, &[("range", "bytes=100-"), ("if-range", "\"stale\"")]);
    assert_eq!((status, body), (200, whole.clone()));
    let (status, headers, _) = get_with(&url, &[("range", &format!("bytes={}-", whole.len()))]);
    assert_eq!(status, 416);
    assert_eq!(
        headers["content-range"],
        format!("bytes */{}", whole.len()).as_str()
    );
}

#[test]
fn continue_resumes_a_gallery_image() {
    let server = start_gallery();
    let url = format!("{}/images/heron.png?w=80&h=60", server.base_url());
    let (_, headers, whole) = get_with(&url, &[]);
    let etag = headers["etag"].to_str().unwrap();
    let scratch = super::support::Scratch::new();
    std::fs::create_dir_all(scratch.output()).unwrap();
    // A part whose first half is zeros: if the server honours the range, only the
    // second half is fetched and the zeros stay, which shows the resume happened.
    let half = whole.len() / 2;
    std::fs::write(scratch.output().join("heron.png.part"), vec![0u8; half]).unwrap();
    let entry =
        serde_json::json!({"event": "started", "url": url, "name": "heron.png", "etag": etag});
    std::fs::write(
        scratch.output().join(grab::fs::MANIFEST_NAME),
        format!("{entry}\n"),
    )
    .unwrap();
    let output = super::support::grab(&["get", &url, "-o", &scratch.output_arg(), "-c"], None);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        super::support::stderr_of(&output)
    );
    let saved = std::fs::read(scratch.output().join("heron.png")).unwrap();
    assert_eq!(saved.len(), whole.len());
    assert_eq!(saved[..half], vec![0u8; half][..]);
    assert_eq!(saved[half..], whole[half..]);
    // A re-run finds the file complete and leaves it alone.
    let output = super::support::grab(&["get", &url, "-o", &scratch.output_arg()], None);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        std::fs::read(scratch.output().join("heron.png")).unwrap(),
        saved
    );
}

#[test]
fn bind_accepts_a_host_name() {
    use std::io::{BufRead, BufReader};
    let mut child = super::support::grab_command()
        .args(["serve", "--port", "0", "--bind", "localhost", "--quiet"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line.split_whitespace().nth(2).map(str::to_string);
    let answered = base.as_deref().map(|base| get(&format!("{base}/")).0);
    child.kill().unwrap();
    let _ = child.wait();
    assert_eq!(answered, Some(200), "first line: {line:?}");
    // A name that does not resolve is an error naming it.
    let output = super::support::grab(
        &["serve", "--port", "0", "--bind", "no-such-host.invalid"],
        None,
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        super::support::stderr_of(&output).contains("no-such-host.invalid"),
        "{}",
        super::support::stderr_of(&output)
    );
}

// ---- the asynchronous demo endpoints, called in-process through the router ----

mod endpoints {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use serde_json::Value;
    use tower::ServiceExt;

    /// Calls the router in-process: status, JSON body, and the two timing headers.
    async fn call(path: &str) -> (StatusCode, Value, Option<String>, Option<String>) {
        let request = Request::builder().uri(path).body(Body::empty()).unwrap();
        let response = grab::server::app().oneshot(request).await.unwrap();
        let status = response.status();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|value| value.to_str().unwrap().to_string())
        };
        let (timing, server_timing) = (header("x-response-time"), header("server-timing"));
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
        (status, json, timing, server_timing)
    }

    #[tokio::test]
    async fn index_describes_the_endpoints() {
        let (status, json, _, _) = call("/").await;
        assert_eq!(status, StatusCode::OK);
        let paths: Vec<&str> = json["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|endpoint| endpoint["path"].as_str().unwrap())
            .collect();
        for path in ["/fast", "/medium", "/slow", "/mixed", "/sequential"] {
            assert!(paths.contains(&path), "{path} missing from {paths:?}");
        }
    }

    #[tokio::test]
    async fn operations_wait_within_their_ranges_with_timing_headers() {
        let cases = [
            ("/fast", 0.1, 0.3),
            ("/rapido", 0.1, 0.3),
            ("/medium", 0.5, 1.5),
            ("/medio", 0.5, 1.5),
            ("/slow", 2.0, 4.0),
            ("/lento", 2.0, 4.0),
        ];
        let calls = futures_util::future::join_all(cases.map(|(path, _, _)| call(path))).await;
        for ((path, shortest, longest), (status, json, timing, server_timing)) in
            cases.into_iter().zip(calls)
        {
            assert_eq!(status, StatusCode::OK, "{path}");
            let seconds = json["seconds"].as_f64().unwrap();
            // The measured sleep: never shorter than asked, and a loaded machine may add a little.
            assert!(
                seconds >= shortest && seconds < longest + 0.5,
                "{path} waited {seconds}"
            );
            let reported: f64 = timing.expect("X-Response-Time").parse().unwrap();
            assert!(
                reported >= seconds - 0.001,
                "{path}: header {reported} < {seconds}"
            );
            assert!(
                server_timing
                    .expect("Server-Timing")
                    .starts_with("total;dur=")
            );
        }
    }

    fn parts_of(json: &Value) -> Vec<f64> {
        json["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|result| result["seconds"].as_f64().unwrap())
            .collect()
    }

    #[tokio::test]
    async fn mixed_takes_about_the_slowest_sequential_the_sum() {
        let (mixed, sequential) = tokio::join!(call("/mixed"), call("/secuencial"));
        let (status, mixed, _, _) = mixed;
        assert_eq!(status, StatusCode::OK);
        let parts = parts_of(&mixed);
        assert_eq!(parts.len(), 3);
        let slowest = parts.iter().cloned().fold(0.0, f64::max);
        let total = mixed["total_seconds"].as_f64().unwrap();
        assert!(
            total >= slowest && total < slowest + 0.25,
            "mixed took {total}, slowest part {slowest}"
        );
        let (status, sequential, _, _) = sequential;
        assert_eq!(status, StatusCode::OK);
        let parts = parts_of(&sequential);
        let sum: f64 = parts.iter().sum();
        let total = sequential["total_seconds"].as_f64().unwrap();
        assert!(total >= sum, "sequential took {total}, parts sum to {sum}");
    }

    #[tokio::test]
    async fn failing_handler_answers_json_500() {
        let (status, json, timing, _) = call("/fail").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(json["error"].as_str().unwrap().contains("fails"));
        assert!(timing.is_some());
    }

    #[tokio::test]
    async fn unknown_path_is_404_with_timing() {
        let (status, json, timing, _) = call("/nowhere").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(json["status"], 404);
        assert!(
            json["error"].as_str().unwrap().contains("/nowhere"),
            "{json}"
        );
        assert!(timing.is_some());
    }

    #[tokio::test]
    async fn other_methods_are_a_json_405() {
        let request = Request::builder()
            .method("POST")
            .uri("/fast")
            .body(Body::empty())
            .unwrap();
        let response = grab::server::app().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()["allow"], "GET, HEAD");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let json: Value = serde_json::from_slice(&body).unwrap();
        assert!(json["error"].as_str().unwrap().contains("POST"), "{json}");
    }

    #[tokio::test]
    async fn a_handler_past_the_request_timeout_is_a_json_503() {
        let limits = grab::server::Limits {
            request_timeout: std::time::Duration::from_millis(50),
            ..grab::server::Limits::default()
        };
        let request = Request::builder().uri("/slow").body(Body::empty()).unwrap();
        let response = grab::server::app_with(&limits)
            .oneshot(request)
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().contains_key("x-response-time"));
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let json: Value = serde_json::from_slice(&body).unwrap();
        assert!(
            json["error"].as_str().unwrap().contains("timeout"),
            "{json}"
        );
    }
}

// ---- shutdown, through real sockets ----

#[tokio::test]
async fn shutdown_lets_an_inflight_slow_request_finish() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(grab::server::run(listener, async move {
        let _ = stopped.await;
    }));
    let request = tokio::task::spawn_blocking(move || get(&format!("http://{address}/slow")));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    stop.send(()).unwrap();
    let (status, body, _) = request.await.unwrap();
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(json["seconds"].as_f64().unwrap() >= 2.0);
    server.await.unwrap().unwrap();
}

#[test]
fn sigterm_stops_the_binary_after_inflight_requests() {
    use std::io::{BufRead, BufReader};
    let mut child = super::support::grab_command()
        .args(["serve", "--port", "0", "--quiet"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .split_whitespace()
        .nth(2)
        .expect("serving on URL")
        .to_string();
    let url = format!("{base}/medium");
    let request = std::thread::spawn(move || get(&url));
    std::thread::sleep(std::time::Duration::from_millis(200));
    let signalled = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(signalled.success());
    let (status, body, _) = request.join().unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

// ---- hardening: silent, oversize and stalled clients, through real sockets ----

mod hardening {
    use std::io::{ErrorKind, Read, Write};
    use std::net::{Ipv4Addr, SocketAddr, TcpStream};
    use std::time::Duration;

    use grab::server::{Background, Limits};

    fn start(limits: Limits) -> Background {
        Background::start_with(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), limits).unwrap()
    }

    /// Reads until the server closes the connection; the bytes read. Panics if it
    /// is still open after `patience`.
    fn read_until_closed(stream: &mut TcpStream, patience: Duration) -> usize {
        stream.set_read_timeout(Some(patience)).unwrap();
        let mut buffer = vec![0u8; 64 * 1024];
        let mut total = 0;
        loop {
            match stream.read(&mut buffer) {
                Ok(0) => return total,
                Ok(count) => total += count,
                Err(error) if error.kind() == ErrorKind::ConnectionReset => return total,
                Err(error) => panic!("still open after {patience:?}: {error}"),
            }
        }
    }

    #[test]
    fn silent_sockets_are_closed_and_a_request_still_gets_through_at_the_cap() {
        let server = start(Limits {
            max_connections: 8,
            header_timeout: Duration::from_millis(300),
            ..Limits::default()
        });
        // Eight silent sockets take every slot; one more waits in the backlog.
        let mut silent: Vec<TcpStream> = (0..9)
            .map(|_| TcpStream::connect(server.address()).unwrap())
            .collect();
        // One that sends half a head and stops is silent too.
        silent[0]
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        let url = format!("{}/", server.base_url());
        let legitimate = std::thread::spawn(move || super::get(&url).0);
        for stream in &mut silent {
            assert_eq!(read_until_closed(stream, Duration::from_secs(10)), 0);
        }
        assert_eq!(legitimate.join().unwrap(), 200);
        // A keep-alive connection that goes quiet after a request is closed too.
        let mut idle = TcpStream::connect(server.address()).unwrap();
        idle.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let answered = read_until_closed(&mut idle, Duration::from_secs(10));
        assert!(answered > 0, "the request was answered before the close");
    }

    #[test]
    fn an_oversize_head_gets_431_and_the_server_goes_on() {
        let server = start(Limits {
            max_header_bytes: 8 * 1024,
            ..Limits::default()
        });
        for (name, head) in [
            (
                "one huge header",
                format!(
                    "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
                    "a".repeat(64 * 1024)
                ),
            ),
            (
                "many headers",
                format!(
                    "GET / HTTP/1.1\r\nHost: x\r\n{}\r\n",
                    (0..500)
                        .map(|number| format!("X-{number}: 1\r\n"))
                        .collect::<String>()
                ),
            ),
        ] {
            let mut stream = TcpStream::connect(server.address()).unwrap();
            // The server may close before it has read everything: a failed write is fine.
            let _ = stream.write_all(head.as_bytes());
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut answer = Vec::new();
            let _ = stream.read_to_end(&mut answer);
            let answer = String::from_utf8_lossy(&answer);
            assert!(
                answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
                "{name}: {answer}"
            );
        }
        assert_eq!(super::get(&format!("{}/", server.base_url())).0, 200);
    }

    #[test]
    fn a_client_that_stops_reading_gives_its_slot_back() {
        let server = start(Limits {
            max_connections: 1,
            send_timeout: Duration::from_millis(300),
            ..Limits::default()
        });
        let size: usize = 1 << 30;
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        socket.connect(&server.address().into()).unwrap();
        let mut stalled: TcpStream = socket.into();
        stalled
            .write_all(
                format!("GET /files/huge.bin?size={size} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
            )
            .unwrap();
        // Only possible once the stalled client has been cut: the cap is one.
        let url = format!("{}/files/small.bin?size=10", server.base_url());
        assert_eq!(super::get(&url).0, 200);
        let received = read_until_closed(&mut stalled, Duration::from_secs(10));
        assert!(received < size, "the whole body arrived");
    }

    #[test]
    fn a_range_deep_into_a_huge_file_is_served_at_once() {
        let server = start(Limits::default());
        let size: u64 = 16 << 30;
        let start = size - 100;
        let (status, headers, body) = super::get_with(
            &format!("{}/files/deep.bin?size={size}", server.base_url()),
            &[("range", &format!("bytes={start}-"))],
        );
        assert_eq!(status, 206);
        assert_eq!(
            headers["content-range"],
            format!("bytes {start}-{}/{size}", size - 1).as_str()
        );
        let mut generator = grab::gallery::Generator::new(grab::gallery::seed_of("deep.bin"));
        generator.skip(start);
        let mut expected = vec![0u8; 100];
        generator.fill(&mut expected);
        assert_eq!(body, expected);
    }

    #[test]
    fn a_long_index_streams_in_chunks() {
        let server = start(Limits::default());
        let (status, body, _) = super::get(&format!(
            "{}/files/index.txt?count=100000&size=1",
            server.base_url()
        ));
        assert_eq!(status, 200);
        let text = String::from_utf8(body).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 100_000);
        assert!(
            lines[0].ends_with("/files/file-000001.bin?size=1"),
            "{}",
            lines[0]
        );
        assert!(lines[99_999].ends_with("/files/file-100000.bin?size=1"));
    }
}
