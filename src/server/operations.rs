//! The classic asynchronous-server demo: endpoints that wait a random while without
//! blocking any thread, alone, all at once (`/mixed`) or one after another
//! (`/sequential`), so the difference shows in the times they report. Spanish
//! aliases keep the routes of the Python original working.

use std::time::{Duration, Instant};

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// One operation's kind and how long it may wait, in seconds.
#[derive(Debug, Clone, Copy)]
pub struct Operation {
    pub name: &'static str,
    pub alias: &'static str,
    pub shortest: f64,
    pub longest: f64,
}

pub const FAST: Operation = Operation {
    name: "fast",
    alias: "rapido",
    shortest: 0.1,
    longest: 0.3,
};
pub const MEDIUM: Operation = Operation {
    name: "medium",
    alias: "medio",
    shortest: 0.5,
    longest: 1.5,
};
pub const SLOW: Operation = Operation {
    name: "slow",
    alias: "lento",
    shortest: 2.0,
    longest: 4.0,
};

/// What an operation reports.
#[derive(Debug, Serialize)]
pub struct Report {
    pub operation: &'static str,
    /// The time actually waited, measured.
    pub seconds: f64,
}

/// What `/mixed` and `/sequential` report.
#[derive(Debug, Serialize)]
pub struct Combined {
    pub operation: &'static str,
    pub results: Vec<Report>,
    pub total_seconds: f64,
}

impl Operation {
    /// Waits a random time within the operation's range, on the timer: no thread
    /// is held while it waits.
    pub async fn perform(self) -> Report {
        let seconds = self.shortest + fastrand::f64() * (self.longest - self.shortest);
        let started = Instant::now();
        tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
        Report {
            operation: self.name,
            seconds: started.elapsed().as_secs_f64(),
        }
    }
}

pub async fn fast() -> Json<Report> {
    Json(FAST.perform().await)
}

pub async fn medium() -> Json<Report> {
    Json(MEDIUM.perform().await)
}

pub async fn slow() -> Json<Report> {
    Json(SLOW.perform().await)
}

/// The three operations at once: about as long as the slowest.
pub async fn mixed() -> Json<Combined> {
    let started = Instant::now();
    let (fast, medium, slow) = tokio::join!(FAST.perform(), MEDIUM.perform(), SLOW.perform());
    Json(Combined {
        operation: "mixed",
        results: vec![fast, medium, slow],
        total_seconds: started.elapsed().as_secs_f64(),
    })
}

/// The three operations one after another: about the sum of the three.
pub async fn sequential() -> Json<Combined> {
    let started = Instant::now();
    let mut results = Vec::new();
    for operation in [FAST, MEDIUM, SLOW] {
        results.push(operation.perform().await);
    }
    Json(Combined {
        operation: "sequential",
        results,
        total_seconds: started.elapsed().as_secs_f64(),
    })
}

/// A handler error: answered as JSON with status 500 and the message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HandlerError(pub String);

impl IntoResponse for HandlerError {
    fn into_response(self) -> Response {
        error_response(StatusCode::INTERNAL_SERVER_ERROR, &self.0)
    }
}

/// `{"error": message, "status": code}`: every error the server answers.
pub fn error_response(status: StatusCode, message: &str) -> Response {
    error_with(status, message, serde_json::Map::new())
}

/// [`error_response`] with more fields that say what was wrong.
fn error_with(
    status: StatusCode,
    message: &str,
    mut fields: serde_json::Map<String, serde_json::Value>,
) -> Response {
    fields.insert("error".to_string(), message.into());
    fields.insert("status".to_string(), status.as_u16().into());
    (status, Json(serde_json::Value::Object(fields))).into_response()
}

/// A 400 for a parameter outside its range, naming the range.
pub fn out_of_range(parameter: &str, value: u64, minimum: u64, maximum: u64) -> Response {
    let fields = serde_json::json!({
        "parameter": parameter,
        "value": value,
        "minimum": minimum,
        "maximum": maximum,
    });
    let serde_json::Value::Object(fields) = fields else {
        unreachable!("a JSON object literal")
    };
    error_with(
        StatusCode::BAD_REQUEST,
        &format!("{parameter} must be from {minimum} to {maximum}, got {value}"),
        fields,
    )
}

/// Any path the server does not serve: a JSON 404 pointing at `/`.
pub async fn not_found(uri: axum::http::Uri) -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        &format!("no such path: {}; GET / lists the endpoints", uri.path()),
    )
}

/// A known path asked with a method other than GET (or HEAD).
pub async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    let mut response = error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("{method} is not allowed on {}: use GET", uri.path()),
    );
    response.headers_mut().insert(
        axum::http::header::ALLOW,
        axum::http::HeaderValue::from_static("GET, HEAD"),
    );
    response
}

/// Always fails, to show (and test) how a failing handler answers.
pub async fn fail() -> Result<Json<Report>, HandlerError> {
    Err(HandlerError(
        "this endpoint always fails, to show how errors are answered".to_string(),
    ))
}

/// `/`: what the server offers. The body never changes, so it is serialised once;
/// this is the endpoint load tests hammer hardest.
pub async fn index() -> Response {
    static BODY: std::sync::OnceLock<bytes::Bytes> = std::sync::OnceLock::new();
    let body = BODY
        .get_or_init(|| bytes::Bytes::from(describe().to_string()))
        .clone();
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

fn describe() -> serde_json::Value {
    let operation = |operation: Operation| {
        serde_json::json!({
            "path": format!("/{}", operation.name),
            "alias": format!("/{}", operation.alias),
            "description": format!("waits {}-{} s without blocking, answers the time waited", operation.shortest, operation.longest),
        })
    };
    serde_json::json!({
        "server": "grab",
        "version": env!("CARGO_PKG_VERSION"),
        "endpoints": [
            operation(FAST),
            operation(MEDIUM),
            operation(SLOW),
            {"path": "/mixed", "alias": "/mixto", "description": "fast, medium and slow at once: about the slowest"},
            {"path": "/sequential", "alias": "/secuencial", "description": "fast, medium and slow one after another: about their sum"},
            {"path": "/fail", "description": "always answers a JSON 500"},
            {"path": "/images/NAME.jpg|png?w=&h=&delay_ms=", "description": "a generated picture"},
            {"path": "/images/index.txt?count=&delay_ms=&w=&h=&format=", "description": "a list of image URLs"},
            {"path": "/files/NAME?size=&delay_ms=", "description": "seeded bytes"},
            {"path": "/files/index.txt?count=&size=&delay_ms=", "description": "a list of file URLs"},
        ],
        "headers": ["X-Response-Time (seconds)", "Server-Timing"],
    })
}
