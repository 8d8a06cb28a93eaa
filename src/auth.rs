//! Bearer tokens. Admin endpoints need an admin token (401 without one, 403
//! with a wrong one); checks and ingestion are open unless
//! `auth.require_for_reads` / `auth.ingest_token` close them. Tokens are
//! compared in constant time and never logged: only a token's *name* (the key
//! in `auth.admin_tokens`) is recorded as "who".

use actix_web::http::{header, StatusCode};
use actix_web::HttpRequest;

use crate::admission::queue::Producer;
use crate::error::ApiError;

#[derive(Clone, Default)]
pub struct Auth {
    /// (name, token) pairs.
    pub admin: Vec<(String, String)>,
    pub require_for_reads: bool,
    /// Accepted for reads when they require a token (admin tokens are too).
    pub read_token: Option<String>,
    /// When set, ingestion requires it (or an admin token).
    pub ingest_token: Option<String>,
    /// Named ingest tokens, (producer, token): with any, ingestion requires
    /// one of them (or `ingest_token`, or an admin token), and each
    /// producer's writes take turns with the others'.
    pub producers: Vec<(String, String)>,
}

/// Names and whether each token is set; never a token.
impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("admin", &self.admin.iter().map(|(name, _)| name).collect::<Vec<_>>())
            .field("require_for_reads", &self.require_for_reads)
            .field("read_token", &self.read_token.is_some())
            .field("ingest_token", &self.ingest_token.is_some())
            .field("producers", &self.producers.iter().map(|(name, _)| name).collect::<Vec<_>>())
            .finish()
    }
}

/// Equal, in time independent of where the bytes differ.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u8 | u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

fn bearer(req: &HttpRequest) -> Result<&str, ApiError> {
    let value = req.headers().get(header::AUTHORIZATION).ok_or_else(|| {
        ApiError::new(StatusCode::UNAUTHORIZED, "this endpoint needs `Authorization: Bearer <token>`")
    })?;
    value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "the Authorization header must be `Bearer <token>`"))
}

fn forbidden() -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "the token is not valid for this endpoint")
}

impl Auth {
    /// Who acts with this admin token, `admin:<token name>` (the one form
    /// recorded everywhere), or 401/403.
    pub fn admin(&self, req: &HttpRequest) -> Result<String, ApiError> {
        let token = bearer(req)?;
        // Compare with every token, so timing does not tell which one matched.
        let mut found = None;
        for (name, t) in &self.admin {
            if ct_eq(token.as_bytes(), t.as_bytes()) {
                found = Some(name.as_str());
            }
        }
        if self.admin.is_empty() {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "the admin API is disabled: configure auth.admin_tokens (e.g. RESTRICTD_AUTH__ADMIN_TOKENS__OPS=<token>)",
            ));
        }
        found.map(|name| format!("admin:{name}")).ok_or_else(forbidden)
    }

    fn admin_or(&self, req: &HttpRequest, other: Option<&str>) -> Result<(), ApiError> {
        let token = bearer(req)?;
        let other_ok = other.is_some_and(|o| ct_eq(token.as_bytes(), o.as_bytes()));
        let admin_ok = self.admin.iter().fold(false, |ok, (_, t)| ok | ct_eq(token.as_bytes(), t.as_bytes()));
        if other_ok || admin_ok {
            Ok(())
        } else {
            Err(forbidden())
        }
    }

    /// Checks and reads: open unless `require_for_reads`.
    pub fn read(&self, req: &HttpRequest) -> Result<(), ApiError> {
        if !self.require_for_reads {
            return Ok(());
        }
        self.admin_or(req, self.read_token.as_deref())
    }

    /// Ingestion by `producer` (from [`Auth::producer`]): open unless an
    /// ingest token is set (`ingest_token` or a producer's).
    pub fn ingest(&self, req: &HttpRequest, producer: Producer) -> Result<(), ApiError> {
        if self.ingest_token.is_none() && self.producers.is_empty() || producer.is_named() {
            return Ok(());
        }
        self.admin_or(req, self.ingest_token.as_deref())
    }

    /// Which named ingest token the request carries (compared with every
    /// one, in constant time), if any.
    fn producer_index(&self, req: &HttpRequest) -> Option<usize> {
        if self.producers.is_empty() {
            return None;
        }
        let token = bearer(req).ok()?;
        let mut found = None;
        for (i, (_, t)) in self.producers.iter().enumerate() {
            if ct_eq(token.as_bytes(), t.as_bytes()) {
                found = Some(i);
            }
        }
        found
    }

    /// Who sent a write, for its turn in the write queue: the producer of its
    /// named ingest token, or else its connection (the peer's address and port).
    pub fn producer(&self, req: &HttpRequest) -> Producer {
        if let Some(i) = self.producer_index(req) {
            return Producer::named(i);
        }
        Producer::connection(req.peer_addr())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_equality_is_equality() {
        assert!(ct_eq(b"secret", b"secret"));
        assert!(!ct_eq(b"secret", b"secreT"));
        assert!(!ct_eq(b"secret", b"secret2"));
        assert!(!ct_eq(b"", b"x"));
        assert!(ct_eq(b"", b""));
    }
}
