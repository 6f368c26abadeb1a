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

/// A 400 with `fields` that say what was wrong.
fn bad_request(message: &str, fields: serde_json::Value) -> Response {
    let serde_json::Value::Object(fields) = fields else {
        unreachable!("a JSON object literal")
    };
    error_with(StatusCode::BAD_REQUEST, message, fields)
}

/// A 400 for a parameter outside its range, naming the range. `value` is a
/// number, or the digits sent when they do not fit one.
pub fn out_of_range(
    parameter: &str,
    value: impl Into<serde_json::Value> + std::fmt::Display,
    minimum: u64,
    maximum: u64,
) -> Response {
    bad_request(
        &format!("{parameter} must be from {minimum} to {maximum}, got {value}"),
        serde_json::json!({
            "parameter": parameter,
            "value": value.into(),
            "minimum": minimum,
            "maximum": maximum,
        }),
    )
}

/// A 400 for a numeric parameter whose value is not a whole number.
pub fn not_a_number(parameter: &str, unit: &str, value: &str) -> Response {
    bad_request(
        &format!("{parameter} must be a whole number of {unit}, got {value:?}"),
        serde_json::json!({"parameter": parameter, "value": value}),
    )
}

/// A 400 for a parameter whose value is none of those it takes.
pub fn not_one_of(parameter: &str, value: &str, allowed: &[&str]) -> Response {
    bad_request(
        &format!(
            "{parameter} must be one of {}, got {value:?}",
            allowed.join(", ")
        ),
        serde_json::json!({"parameter": parameter, "value": value, "allowed": allowed}),
    )
}

/// A 400 for a parameter the route does not take, naming those it does.
pub fn unknown_parameter(parameter: &str, path: &str, known: &[&str]) -> Response {
    bad_request(
        &format!(
            "unknown parameter {parameter:?}: {path} takes {}",
            known.join(", ")
        ),
        serde_json::json!({"parameter": parameter, "known": known}),
    )
}

/// A 400 for a parameter given more than once: which value was meant is unclear.
pub fn given_twice(parameter: &str) -> Response {
    bad_request(
        &format!("{parameter} is given more than once; give it once"),
        serde_json::json!({"parameter": parameter}),
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
