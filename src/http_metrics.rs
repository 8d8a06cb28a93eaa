//! Counts HTTP requests by route (the route table's path pattern, never the
//! raw path: no user id in a label) and status. Counter handles are cached per
//! worker thread, so a request costs one map look-up and one atomic add. A
//! plain `Transform` rather than `middleware::from_fn`: no boxed future per
//! request.

use std::cell::RefCell;
use std::future::{ready, Ready};

use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::Error;
use ahash::AHashMap;
use futures_util::future::{FutureExt, Map};
use metrics::Counter;

use crate::metrics::HTTP_REQUESTS_TOTAL;

thread_local! {
    static COUNTERS: RefCell<AHashMap<String, AHashMap<u16, Counter>>> = RefCell::default();
}

/// `App::wrap(CountRequests)`.
pub struct CountRequests;

impl<S, B> Transform<S, ServiceRequest> for CountRequests
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Transform = Counted<S>;
    type InitError = ();
    type Future = Ready<Result<Counted<S>, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(Counted { service }))
    }
}

pub struct Counted<S> {
    service: S,
}

type Reply<B> = Result<ServiceResponse<B>, Error>;

impl<S, B> Service<ServiceRequest> for Counted<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Future = Map<S::Future, fn(Reply<B>) -> Reply<B>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        self.service.call(req).map(count::<B> as fn(Reply<B>) -> Reply<B>)
    }
}

fn count<B>(reply: Reply<B>) -> Reply<B> {
    let Ok(res) = &reply else {
        return reply;
    };
    let route = res.request().match_name().unwrap_or("unmatched");
    let status = res.status().as_u16();
    tracing::debug!(method = %res.request().method(), route, status, "request");
    COUNTERS.with(|c| {
        let mut c = c.borrow_mut();
        if let Some(counter) = c.get(route).and_then(|m| m.get(&status)) {
            counter.increment(1);
            return;
        }
        let counter =
            metrics::counter!(HTTP_REQUESTS_TOTAL, "route" => route.to_string(), "status" => status.to_string());
        counter.increment(1);
        c.entry(route.to_string()).or_default().insert(status, counter);
    });
    reply
}
