//! Registers the route table (`api.rs`) with actix-web: a resource per path,
//! a route per method, a 405 naming the methods a path takes.

use actix_web::guard::{Guard, GuardContext};
use actix_web::http::Method;
use actix_web::web;
use restrictd_actors::domain::Model;

use super::api::{endpoints, Endpoint, Handler};
use super::{check, docs, events, feed, health, history, overrides, rules, rulesets, stats, tripwire, users};

/// Registers every endpoint; several methods on one path share a resource.
pub fn configure(cfg: &mut web::ServiceConfig, model: &Model) {
    let list = endpoints(model);
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
        let mut resource = web::resource(path).name(path).default_service(web::to(not_allowed));
        for e in list.iter().filter(|e| e.path == path) {
            resource = resource.route(route(e));
        }
        cfg.service(resource);
    }
    // The features a published rule set added: matched after the file's own.
    let published = web::resource("/can{feature}").name("/can{feature}").default_service(web::to(super::not_found));
    cfg.service(published.route(web::route().guard(MethodIs(Method::GET)).to(check::check_published)));
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

fn route(e: &Endpoint) -> actix_web::Route {
    let method = match e.method {
        "get" => Method::GET,
        "post" => Method::POST,
        "put" => Method::PUT,
        "delete" => Method::DELETE,
        other => unreachable!("method {other} in the route table"),
    };
    let r = web::route().guard(MethodIs(method));
    match e.handler {
        Handler::PostEvent => r.to(events::post_event),
        Handler::PostEvents => r.to(events::post_events),
        Handler::Check(i) => r.to(move |req, st| check::check(req, st, i)),
        Handler::UserFeatures => r.to(check::user_features),
        Handler::User => r.to(users::get_user),
        Handler::Rules => r.to(rules::get_rules),
        Handler::Health => r.to(health::health),
        Handler::Ready => r.to(health::ready),
        Handler::Metrics => r.to(health::metrics),
        Handler::OpenApi => r.to(docs::openapi),
        Handler::Docs => r.to(docs::page),
        Handler::PutOverride => r.to(overrides::put_override),
        Handler::DeleteOverride => r.to(overrides::delete_override),
        Handler::History => r.to(history::get_history),
        Handler::TripwireControl => r.to(tripwire::control),
        Handler::Suppressed => r.to(tripwire::suppressed),
        Handler::Feed => r.to(feed::feed),
        Handler::Stats => r.to(stats::get_stats),
        Handler::EventStats => r.to(stats::get_event_stats),
        Handler::ResetStats => r.to(stats::reset_stats),
        Handler::Dashboard => r.to(docs::dashboard),
        Handler::PutRules => r.to(rulesets::put_rules),
        Handler::Rollback => r.to(rulesets::rollback),
        Handler::Versions => r.to(rulesets::versions),
        Handler::Version => r.to(rulesets::version),
        Handler::Simulate => r.to(rulesets::simulate),
    }
}
