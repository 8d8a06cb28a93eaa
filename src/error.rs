//! Every HTTP error is JSON: `{"error": "<what is wrong and what to do>", ...}`.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde_json::{json, Value};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: Value,
    /// Seconds, for `Retry-After` on 429/503.
    pub retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, body: json!({ "error": message.into() }), retry_after: None }
    }

    /// Adds a field next to `error`.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.body[key] = value.into();
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// Redis could not take a write: the client should retry.
    pub fn redis_unavailable(detail: impl std::fmt::Display) -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the event log (Redis) is unavailable, nothing was accepted; retry shortly ({detail})"),
        );
        e.retry_after = Some(1);
        e
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.body)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut r = HttpResponse::build(self.status);
        if let Some(s) = self.retry_after {
            r.insert_header((header::RETRY_AFTER, s.to_string()));
        }
        r.json(&self.body)
    }
}

impl From<restrictd_actors::domain::ValidationError> for ApiError {
    fn from(e: restrictd_actors::domain::ValidationError) -> Self {
        use restrictd_actors::domain::Rejection;
        let status = match e.kind {
            Rejection::Malformed => StatusCode::BAD_REQUEST,
            Rejection::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
        };
        ApiError::new(status, e.message).with("reason", e.reason)
    }
}
