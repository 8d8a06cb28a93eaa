//! The operator's console: `/`, `/users/{id}`, `/rules/{name}` and
//! `/rules/versions/{n}` are one page (`console/page.html`) whose scripts
//! (`/console/*.js`) fetch the API and draw it. Served from the binary; the
//! Content-Security-Policy lets the pages run only these scripts and reach
//! only this origin, and the scripts put what they fetch in as text.

use actix_web::http::header;
use actix_web::{web, HttpResponse};

use crate::error::ApiError;

const PAGE: &str = include_str!("console/page.html");
const STYLE: &str = include_str!("console/console.css");
const SCRIPTS: &[(&str, &str)] = &[
    ("core.js", include_str!("console/core.js")),
    ("chart.js", include_str!("console/chart.js")),
    ("overview.js", include_str!("console/overview.js")),
    ("user.js", include_str!("console/user.js")),
    ("rule.js", include_str!("console/rule.js")),
    ("version.js", include_str!("console/version.js")),
];

/// No inline or remote script, style or frame; requests to this origin only.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

fn guarded(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body)
}

/// The overview (the scripts route by the path).
pub async fn page() -> HttpResponse {
    guarded("text/html; charset=utf-8", PAGE)
}

/// `/users/{user_id}`: the page, for a user id the API would take (else 400).
pub async fn user_page(path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    super::user_id(&path)?;
    Ok(page().await)
}

/// `/rules/{name}`: the page, for a name a rule may have (else 400).
pub async fn rule_page(path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    if !restrictd_domain::rules::is_rule_name(&path) {
        return Err(ApiError::bad_request(format!(
            "{:?} is not a rule's name (letters, digits, _ . -)",
            path.as_str()
        )));
    }
    Ok(page().await)
}

/// `/rules/versions/{version}`: the page, for a version number (else 400).
/// A number past any version gets the page too, which says it was not
/// published (as `GET /v1/rules/versions/{n}` answers 404).
pub async fn version_page(path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    match super::whole_number(&path) {
        Some(n) if n >= 1 => Ok(page().await),
        _ => Err(ApiError::bad_request(format!("{:?} is not a version number", path.as_str()))),
    }
}

pub async fn style() -> HttpResponse {
    guarded("text/css; charset=utf-8", STYLE)
}

/// `/console/{file}`: one of the console's scripts.
pub async fn script(file: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let (_, body) = SCRIPTS
        .iter()
        .find(|(name, _)| *name == file.as_str())
        .ok_or_else(|| ApiError::not_found(format!("no console script {:?}", file.as_str())))?;
    Ok(guarded("text/javascript; charset=utf-8", body))
}
