//! `/openapi.json` (generated from the route table at start-up) and `/docs`,
//! a self-contained page that renders it.
//! Pages are served from the binary and load nothing from elsewhere.

use actix_web::http::header::ContentType;
use actix_web::{web, HttpResponse};

use crate::state::AppState;

const PAGE: &str = include_str!("docs.html");

pub async fn openapi(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().content_type(ContentType::json()).body(state.openapi.clone())
}

pub async fn page() -> HttpResponse {
    HttpResponse::Ok().content_type(ContentType::html()).body(PAGE)
}
