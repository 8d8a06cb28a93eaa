//! Who may call an endpoint, enforced where the route is registered, from
//! its row's `access`: a handler never checks a token itself. An admin
//! handler learns who acts through the `Operator` extractor, which only a
//! route registered as admin provides.

use std::future::{ready, Ready};
use std::rc::Rc;

use actix_web::body::BoxBody;
use actix_web::dev::{Payload, ServiceRequest};
use actix_web::middleware::{from_fn, Next};
use actix_web::{FromRequest, HttpMessage as _, HttpRequest, Route};

use super::api::Access;
use crate::auth::Auth;
use crate::error::ApiError;

/// Who acts on an admin route: `admin:<token name>`.
#[derive(Debug, Clone)]
pub struct Operator(pub String);

impl FromRequest for Operator {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(req.extensions().get::<Operator>().cloned().ok_or_else(|| {
            ApiError::new(
                actix_web::http::StatusCode::INTERNAL_SERVER_ERROR,
                "an admin handler on a route not registered as admin (its row's access)",
            )
        }))
    }
}

/// `route` guarded by `access` under `auth`. A route that is open under this
/// configuration is left as it is: nothing runs before its handler.
pub fn guard(route: Route, access: Access, auth: &Auth) -> Route {
    let open = match access {
        Access::Open => true,
        Access::Read => !auth.require_for_reads,
        Access::Ingest => auth.ingest_token.is_none() && auth.producers.is_empty(),
        Access::Admin => false,
    };
    if open {
        return route;
    }
    let auth = Rc::new(auth.clone());
    route.wrap(from_fn(move |req: ServiceRequest, next: Next<BoxBody>| {
        let auth = Rc::clone(&auth);
        async move {
            if let Err(e) = admit(&req, access, &auth) {
                return Ok(req.error_response(e).map_into_boxed_body());
            }
            next.call(req).await
        }
    }))
}

/// The access check itself; what it learns is kept for the handler.
fn admit(req: &ServiceRequest, access: Access, auth: &Auth) -> Result<(), ApiError> {
    match access {
        Access::Open => Ok(()),
        Access::Read => auth.read(req.request()),
        Access::Ingest => {
            // The producer found for the token is the write's turn in the queue.
            let producer = auth.producer(req.request());
            auth.ingest(req.request(), producer)?;
            req.extensions_mut().insert(producer);
            Ok(())
        }
        Access::Admin => {
            let by = auth.admin(req.request())?;
            req.extensions_mut().insert(Operator(by));
            Ok(())
        }
    }
}
