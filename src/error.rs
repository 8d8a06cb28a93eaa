//! Every HTTP error is JSON: `{"error": "<what is wrong and what to do>", ...}`.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use actix_web::{HttpResponse, ResponseError};
use serde_json::{json, Value};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    body: Body,
    /// Seconds, for `Retry-After` on 429/503.
    pub retry_after: Option<u32>,
}

/// The JSON body: built for the error, or rendered once for an error sent at
/// a high rate (admission's refusals under overload), which then costs no
/// formatting, no map and no serialisation per request.
#[derive(Debug)]
enum Body {
    Value(Value),
    Rendered(Bytes),
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, body: Body::Value(json!({ "error": message.into() })), retry_after: None }
    }

    /// An error with its body rendered beforehand (see [`render`]).
    pub fn rendered(status: StatusCode, body: Bytes) -> Self {
        ApiError { status, body: Body::Rendered(body), retry_after: None }
    }

    /// Adds a field next to `error`.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        if let Body::Rendered(bytes) = &self.body {
            self.body = Body::Value(serde_json::from_slice(bytes).unwrap_or_else(|_| json!({})));
        }
        if let Body::Value(body) = &mut self.body {
            body[key] = value.into();
        }
        self
    }

    /// The JSON body as it is sent.
    #[cfg(test)]
    pub fn body(&self) -> Value {
        match &self.body {
            Body::Value(v) => v.clone(),
            Body::Rendered(bytes) => serde_json::from_slice(bytes).unwrap_or(Value::Null),
        }
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

impl ApiError {
    /// Redis could not answer a read: nothing changed; the client may retry.
    pub fn redis_unreadable(detail: impl std::fmt::Display) -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("Redis is unavailable, so this could not be read; retry shortly ({detail})"),
        );
        e.retry_after = Some(1);
        e
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.body {
            Body::Value(v) => write!(f, "{} {v}", self.status),
            Body::Rendered(bytes) => write!(f, "{} {}", self.status, String::from_utf8_lossy(bytes)),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut r = HttpResponse::build(self.status);
        if let Some(s) = self.retry_after {
            r.insert_header((header::RETRY_AFTER, HeaderValue::from(s)));
        }
        match &self.body {
            Body::Value(v) => r.json(v),
            Body::Rendered(bytes) => {
                r.insert_header((header::CONTENT_TYPE, HeaderValue::from_static("application/json")));
                r.body(bytes.clone())
            }
        }
    }
}

/// `{"error": message}`, rendered once for [`ApiError::rendered`].
pub fn render(message: &str) -> Bytes {
    Bytes::from(json!({ "error": message }).to_string())
}

impl From<restrictd_domain::ValidationError> for ApiError {
    fn from(e: restrictd_domain::ValidationError) -> Self {
        use restrictd_domain::Rejection;
        let status = match e.kind {
            Rejection::Malformed => StatusCode::BAD_REQUEST,
            Rejection::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
        };
        ApiError::new(status, e.message).with("reason", e.reason)
    }
}

#[cfg(test)]
mod tests {
    use actix_web::body::MessageBody;

    use super::*;

    fn sent(e: &ApiError) -> (StatusCode, Option<String>, Option<String>, Value) {
        let r = e.error_response();
        let header = |name| r.headers().get(name).map(|v: &HeaderValue| v.to_str().unwrap().to_string());
        let (retry, content_type) = (header(header::RETRY_AFTER), header(header::CONTENT_TYPE));
        let bytes = r.into_body().try_into_bytes().ok().unwrap();
        (e.status, retry, content_type, serde_json::from_slice(&bytes).unwrap())
    }

    #[test]
    fn a_rendered_error_is_sent_as_the_same_error_built_per_request() {
        let message = "too many writes in flight (limit 128); retry shortly";
        let mut built = ApiError::new(StatusCode::TOO_MANY_REQUESTS, message);
        let mut rendered = ApiError::rendered(StatusCode::TOO_MANY_REQUESTS, render(message));
        built.retry_after = Some(1);
        rendered.retry_after = Some(1);
        assert_eq!(sent(&rendered), sent(&built));
        assert_eq!(sent(&rendered).3, json!({ "error": message }));
        assert_eq!(rendered.body(), built.body());
        let reason = |e: ApiError| e.with("reason", "x").body();
        assert_eq!(reason(rendered), reason(built), "a field added to a rendered error");
    }
}
