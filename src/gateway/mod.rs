//! Enforcement at the gateway: nginx `auth_request`, Envoy `ext_authz`,
//! Traefik `ForwardAuth` and Caddy `forward_auth` ask `/v1/authz` before they
//! forward a request; the configured routes (`[[gateway.routes]]`) map its
//! original method and path to a feature, and the answer comes from memory
//! like a check's (`routes::authz`).

pub mod path;
pub mod section;

use actix_web::http::header::HeaderName;
use actix_web::HttpRequest;

pub use self::section::{GatewaySection, RouteDef, Verdict};

/// The validated `[gateway]` section.
#[derive(Debug, Clone)]
pub struct Gateway {
    /// The header the gateway sets with the authenticated user's id.
    pub user_header: HeaderName,
    pub unmatched: Verdict,
    pub missing_user: Verdict,
    routes: Vec<Route>,
}

#[derive(Debug, Clone)]
struct Route {
    /// Upper case; any method when absent.
    method: Option<String>,
    prefix: String,
    feature: Box<str>,
}

/// The request the gateway asks about.
#[derive(Debug, PartialEq, Eq)]
pub struct Original {
    pub method: String,
    /// Normalized (`path::normalize`).
    pub path: String,
}

/// Where `/v1/authz` is served; Envoy appends the original path to it.
pub const PREFIX: &str = "/v1/authz";

impl Gateway {
    /// Checks the section against the configuration's features; an error
    /// names its key (`gateway.routes[0].feature`).
    pub fn new(section: GatewaySection, features: &[Box<str>]) -> Result<Gateway, (String, String)> {
        let user_header = HeaderName::try_from(section.user_header.as_str()).map_err(|_| {
            ("gateway.user_header".to_string(), format!("{:?} is not an HTTP header name", section.user_header))
        })?;
        let mut routes = Vec::with_capacity(section.routes.len());
        for (i, r) in section.routes.into_iter().enumerate() {
            let key = |field: &str| format!("gateway.routes[{i}].{field}");
            if r.path.is_empty() {
                return Err((key("path"), "empty: a path prefix like \"/api/messages\"".into()));
            }
            if path::normalize(&r.path).ok().as_deref() != Some(r.path.as_str()) || r.path.contains(['%', '?', '#']) {
                return Err((
                    key("path"),
                    format!(
                        "{:?} is not a plain path prefix: it starts with /, without query, escapes, repeated slashes or . segments",
                        r.path
                    ),
                ));
            }
            if !features.iter().any(|f| **f == *r.feature) {
                let known: Vec<&str> = features.iter().map(|f| &**f).collect();
                return Err((
                    key("feature"),
                    format!("unknown feature {:?} (features: {})", r.feature, known.join(", ")),
                ));
            }
            let method = match r.method {
                Some(m) if !is_token(&m) => {
                    return Err((key("method"), format!("{m:?} is not an HTTP method; leave it out for any method")))
                }
                m => m.map(|m| m.to_ascii_uppercase()),
            };
            routes.push(Route { method, prefix: r.path, feature: r.feature.into() });
        }
        Ok(Gateway { user_header, unmatched: section.unmatched, missing_user: section.missing_user, routes })
    }

    /// The feature the first matching route governs (`None`: no route
    /// matches). Methods match whatever their case.
    pub fn feature(&self, original: &Original) -> Option<&str> {
        let routes = self.routes.iter().filter(|r| original.path.starts_with(&r.prefix));
        let mut routes = routes.filter(|r| r.method.as_ref().is_none_or(|m| m.eq_ignore_ascii_case(&original.method)));
        routes.next().map(|r| &*r.feature)
    }

    /// How many routes are configured.
    pub fn routes(&self) -> usize {
        self.routes.len()
    }
}

/// The original request, from the first of: `X-Original-Method` +
/// `X-Original-URI` (nginx), `X-Forwarded-Method` + `X-Forwarded-Uri`
/// (Traefik, Caddy), the request's own method and its path after
/// [`PREFIX`] (Envoy). Or what is wrong with the headers.
pub fn original(req: &HttpRequest) -> Result<Original, String> {
    let header = |name: &str| -> Result<Option<&str>, String> {
        match req.headers().get(name) {
            None => Ok(None),
            Some(v) => v.to_str().map(Some).map_err(|_| format!("header {name} is not visible ASCII")),
        }
    };
    let pairs = [("X-Original-Method", "X-Original-URI"), ("X-Forwarded-Method", "X-Forwarded-Uri")];
    for (method_name, uri_name) in pairs {
        if let Some(uri) = header(uri_name)? {
            let method = header(method_name)?
                .ok_or_else(|| format!("header {uri_name} is set without {method_name}: set both"))?;
            return from_parts(method, uri);
        }
    }
    let own = req.uri().path().strip_prefix(PREFIX).unwrap_or("");
    from_parts(req.method().as_str(), if own.is_empty() { "/" } else { own })
}

fn from_parts(method: &str, uri: &str) -> Result<Original, String> {
    if !is_token(method) {
        return Err(format!("{:?} is not an HTTP method", method.chars().take(40).collect::<String>()));
    }
    // An absolute URI (a proxy's request line): its path.
    let uri = match uri.split_once("://") {
        Some((_, rest)) if !uri.starts_with('/') => rest.find('/').map_or("/", |i| &rest[i..]),
        _ => uri,
    };
    Ok(Original { method: method.to_string(), path: path::normalize(uri)? })
}

/// An HTTP token (RFC 9110), as methods are.
fn is_token(s: &str) -> bool {
    !s.is_empty() && s.len() <= 32 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gateway(routes: &[(Option<&str>, &str, &str)]) -> Result<Gateway, (String, String)> {
        let routes = routes
            .iter()
            .map(|(m, p, f)| RouteDef { method: m.map(str::to_string), path: p.to_string(), feature: f.to_string() })
            .collect();
        Gateway::new(
            GatewaySection { routes, ..GatewaySection::default() },
            &["can_message".into(), "can_purchase".into()],
        )
    }

    fn at(method: &str, path: &str) -> Original {
        Original { method: method.into(), path: path.into() }
    }

    #[test]
    fn the_first_matching_route_wins_and_methods_match_in_any_case() {
        let g = gateway(&[
            (Some("post"), "/api/messages", "can_message"),
            (None, "/api/checkout", "can_purchase"),
            (None, "/api", "can_message"),
        ])
        .unwrap();
        assert_eq!(g.feature(&at("POST", "/api/messages/7")), Some("can_message"));
        assert_eq!(g.feature(&at("post", "/api/messages")), Some("can_message"));
        assert_eq!(g.feature(&at("GET", "/api/checkout/cart")), Some("can_purchase"));
        assert_eq!(g.feature(&at("BREW", "/api/messages")), Some("can_message"), "on to the route of any method");
        assert_eq!(g.feature(&at("GET", "/health")), None);
    }

    #[test]
    fn routes_are_refused_with_their_key() {
        let key = |r: Result<Gateway, (String, String)>| r.unwrap_err().0;
        assert_eq!(key(gateway(&[(None, "/a", "can_message"), (None, "/b", "can_fly")])), "gateway.routes[1].feature");
        assert_eq!(key(gateway(&[(None, "", "can_message")])), "gateway.routes[0].path");
        assert_eq!(key(gateway(&[(None, "/a/../b", "can_message")])), "gateway.routes[0].path");
        assert_eq!(key(gateway(&[(None, "/a%20b", "can_message")])), "gateway.routes[0].path");
        assert_eq!(key(gateway(&[(Some("GET POST"), "/a", "can_message")])), "gateway.routes[0].method");
    }

    #[test]
    fn the_original_request_comes_from_the_gateway_s_headers() {
        let req = actix_web::test::TestRequest::get()
            .uri("/v1/authz")
            .insert_header(("X-Forwarded-Method", "POST"))
            .insert_header(("X-Forwarded-Uri", "/api/messages?x=1"))
            .to_http_request();
        assert_eq!(original(&req).unwrap(), at("POST", "/api/messages"));
        let nginx = actix_web::test::TestRequest::get()
            .uri("/v1/authz")
            .insert_header(("X-Original-URI", "http://shop.example/api/%6Dessages"))
            .to_http_request();
        assert!(original(&nginx).unwrap_err().contains("X-Original-Method"));
        let envoy = actix_web::test::TestRequest::delete().uri("/v1/authz/api/messages/3?y").to_http_request();
        assert_eq!(original(&envoy).unwrap(), at("DELETE", "/api/messages/3"));
        let bare = actix_web::test::TestRequest::get().uri("/v1/authz").to_http_request();
        assert_eq!(original(&bare).unwrap(), at("GET", "/"));
    }
}
