//! Counts HTTP requests by route (the route table's path pattern, never the
//! raw path: no user id in a label) and status. Counter handles are cached per
//! worker thread, so a request costs one map look-up and one atomic add.

use std::cell::RefCell;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use ahash::AHashMap;
use metrics::Counter;

use crate::metrics::HTTP_REQUESTS_TOTAL;

thread_local! {
    static COUNTERS: RefCell<AHashMap<String, AHashMap<u16, Counter>>> = RefCell::default();
}

pub async fn count(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let res = next.call(req).await?;
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
    Ok(res)
}
