//! Reading request bodies with our own limits and JSON errors (actix's
//! extractors answer in plain text).

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest};
use futures_util::{FutureExt, StreamExt};

use crate::error::ApiError;

/// The body of a JSON request, at most `limit` bytes. A missing Content-Type
/// is read as JSON (as the reference service did); another type is 415.
pub async fn read_json(req: &HttpRequest, payload: web::Payload, limit: usize) -> Result<web::Bytes, ApiError> {
    if let Some(ct) = content_type(req).filter(|ct| ct != "application/json" && !ct.ends_with("+json")) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Type must be application/json, not {ct:?}"),
        ));
    }
    read(req, payload, limit).await
}

/// The request's media type, lowercase, without parameters.
pub fn content_type(req: &HttpRequest) -> Option<String> {
    let ct = req.headers().get(header::CONTENT_TYPE)?;
    Some(ct.to_str().unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase())
}

/// The body, at most `limit` bytes, whatever its type.
pub async fn read(req: &HttpRequest, mut payload: web::Payload, limit: usize) -> Result<web::Bytes, ApiError> {
    let too_large = || {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("request body is larger than {limit} bytes"))
            .with("limit_bytes", limit)
    };
    let declared = declared_length(req);
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(512).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request(format!("could not read the request body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Reads a body that will not be used, so that the connection can carry the
/// next request: actix-web closes a keep-alive connection whose request body
/// was left unread, and a refused client would pay a new connection for its
/// retry. Gives up (and lets the connection close) on a body over `limit`
/// bytes or one still arriving after a second.
pub async fn discard(req: &HttpRequest, mut payload: web::Payload, limit: usize) {
    if declared_length(req).is_none_or(|n| n > limit) {
        return;
    }
    let mut drain = std::pin::pin!(async {
        let mut read = 0;
        while let Some(Ok(chunk)) = payload.next().await {
            read += chunk.len();
            if read > limit {
                return;
            }
        }
    });
    // Most bodies arrived with their headers: no timer for those.
    if drain.as_mut().now_or_never().is_none() {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), drain).await;
    }
}

/// The body's length as its `Content-Length` header declares it.
fn declared_length(req: &HttpRequest) -> Option<usize> {
    req.headers().get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// Parses JSON, or says where it is malformed.
pub fn parse<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        let what = if bytes.iter().all(u8::is_ascii_whitespace) {
            "request body is empty; send a JSON event".to_string()
        } else {
            format!("malformed JSON: {e}")
        };
        ApiError::bad_request(what)
    })
}

/// `?wait=applied` or nothing.
pub fn wait_applied(req: &HttpRequest) -> Result<bool, ApiError> {
    match super::query_param(req, "wait").as_deref() {
        None => Ok(false),
        Some("applied") => Ok(true),
        Some(other) => {
            Err(ApiError::bad_request(format!("wait={other:?} is not supported; use wait=applied or leave it out")))
        }
    }
}
