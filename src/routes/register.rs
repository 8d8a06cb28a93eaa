//! Registers the route table (`api.rs`) with actix-web: a resource per path,
//! a route per method, a 405 naming the methods a path takes.

use actix_web::body::BoxBody;
use actix_web::dev::ServiceRequest;
use actix_web::guard::{Guard, GuardContext};
use actix_web::http::Method;
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, HttpRequest};
use restrictd_domain::Model;

use super::access::guard;
use super::api::{endpoints, Access, Endpoint};
use super::{body, check};
use crate::auth::Auth;
use crate::error::ApiError;

/// Registers every endpoint; several methods on one path share a resource.
pub fn configure(cfg: &mut web::ServiceConfig, model: &Model, auth: &Auth) {
    register(cfg, endpoints(model), auth);
}

/// Registers what client services ask in their own request path (the rows
/// marked `checks`: the checks, a user's features, health and readiness):
/// the checks listener (`http.checks_addr`) serves these alone.
pub fn configure_checks(cfg: &mut web::ServiceConfig, model: &Model, auth: &Auth) {
    register(cfg, endpoints(model).into_iter().filter(|e| e.checks).collect(), auth);
}

fn register(cfg: &mut web::ServiceConfig, list: Vec<Endpoint>, auth: &Auth) {
    let mut paths: Vec<&str> = Vec::new();
    for e in &list {
        if !paths.contains(&e.path.as_str()) {
            paths.push(&e.path);
        }
    }
    for path in paths {
        // Named by its pattern: the `route` label of the request metrics.
        let allow: Vec<String> =
            list.iter().filter(|e| e.path == path).map(|e| e.method.to_ascii_uppercase()).collect();
        let allow = allow.join(", ");
        let not_allowed = move |req| super::method_not_allowed(req, allow.clone());
        let mut resource = web::resource(path).name(path).default_service(web::to(not_allowed.clone()));
        for e in list.iter().filter(|e| e.path == path) {
            resource = resource.route(route(e, auth));
        }
        cfg.service(resource);
        // Every path under it, to the same handlers (a gateway's original path).
        let tail = format!("{path}/{{tail:.*}}");
        let mut resource = web::resource(tail.as_str()).name(&tail).default_service(web::to(not_allowed));
        for e in list.iter().filter(|e| e.path == path && e.tail) {
            resource = resource.route(route(e, auth));
        }
        if list.iter().any(|e| e.path == path && e.tail) {
            cfg.service(resource);
        }
    }
    // The features a published rule set added: matched after the file's own.
    let published = web::resource("/can{feature}").name("/can{feature}").default_service(web::to(super::not_found));
    let check = web::route().guard(MethodIs(Method::GET)).to(check::check_published);
    cfg.service(published.route(guard(check, Access::Read, auth)));
}

/// Matches one HTTP method. actix-web's own method guard also records every
/// method it saw in the request's extensions (for an `Allow` header this
/// service does not send): three allocations per request, on checks too.
struct MethodIs(Method);

impl Guard for MethodIs {
    fn check(&self, ctx: &GuardContext<'_>) -> bool {
        ctx.head().method == self.0
    }
}

/// Every query parameter of a state-changing request is one its row
/// declares, and those with a fixed set of values hold one of them.
fn query_is_valid(req: &HttpRequest, allowed: &[&str]) -> Result<(), ApiError> {
    // Most writes carry no query: nothing to parse or allocate.
    if req.query_string().is_empty() {
        return Ok(());
    }
    super::only_params(req, allowed)?;
    let names: Vec<_> = form_urlencoded::parse(req.query_string().as_bytes()).map(|(name, _)| name).collect();
    if let Some(twice) = names.iter().enumerate().find_map(|(i, n)| names[..i].contains(n).then_some(n)) {
        return Err(ApiError::bad_request(format!("query parameter {twice:?} is given more than once")));
    }
    body::wait_applied(req)?;
    match super::query_param(req, "lift_removed").as_deref() {
        None | Some("true" | "false") => Ok(()),
        Some(other) => Err(ApiError::bad_request(format!("lift_removed must be true or false, not {other:?}"))),
    }
}

fn method(name: &str) -> Method {
    match name {
        "get" => Method::GET,
        "post" => Method::POST,
        "put" => Method::PUT,
        "delete" => Method::DELETE,
        other => unreachable!("method {other} in the route table"),
    }
}

/// The row's route: its method, its handler, and in front of the handler
/// (outermost first) its access and, for a request that changes state, its
/// query parameters: refused whole (4xx, nothing done) when one is unknown
/// or unreadable.
fn route(e: &Endpoint, auth: &Auth) -> actix_web::Route {
    let r = match e.method {
        "any" => (e.serve)(web::route()),
        m => (e.serve)(web::route().guard(MethodIs(method(m)))),
    };
    // A route of any method answers for another request (a gateway's): its
    // query is not its own to judge.
    let r = if e.method == "get" || e.method == "any" {
        r
    } else {
        let allowed: std::rc::Rc<[&'static str]> = e.query.iter().map(|q| q.0).collect();
        r.wrap(from_fn(move |req: ServiceRequest, next: Next<BoxBody>| {
            let allowed = std::rc::Rc::clone(&allowed);
            async move {
                if let Err(e) = query_is_valid(req.request(), &allowed) {
                    return Ok(req.error_response(e).map_into_boxed_body());
                }
                next.call(req).await
            }
        }))
    };
    guard(r, e.access, auth)
}
