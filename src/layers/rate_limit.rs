//! Per-source rate limit (governor token bucket): over the limit answers 429 with `Retry-After`
//! at once, rather than queueing, so a flood never holds connections open.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};

use super::source::Inbound;
use crate::error::Rejection;

/// The middleware function.
pub async fn rate_limit(request: Request, next: Next) -> Response {
    let limiter = request
        .extensions()
        .get::<Inbound>()
        .and_then(|i| i.source.limiter.as_ref());
    if let Some(limiter) = limiter
        && let Err(not_until) = limiter.check()
    {
        let retry_after = not_until.wait_time_from(DefaultClock::default().now());
        return Rejection::RateLimited { retry_after }.into_response();
    }
    next.run(request).await
}
