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
    let limiter = request.extensions().get::<Inbound>().and_then(|i| i.source.limiter.as_ref());
    if let Some(limiter) = limiter
        && let Err(not_until) = limiter.check()
    {
        let retry_after = not_until.wait_time_from(DefaultClock::default().now());
        return Rejection::RateLimited { retry_after }.into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::middleware::from_fn;
    use tower::{Layer, ServiceExt};

    use super::*;
    use crate::config::file::RateLimitConfig;
    use crate::layers::test_support::{counting_echo, github_request, source};

    #[tokio::test]
    async fn over_the_burst_answers_429_without_calling_inner() {
        let mut s = source("gh", "github", &["s3cret"]);
        s.limiter = Some(crate::source::limiter(RateLimitConfig { per_second: 1, burst: 2 }).unwrap());
        let s = Arc::new(s);
        let calls = Arc::new(Mutex::new(Vec::new()));
        let service = from_fn(rate_limit).layer(counting_echo(calls.clone()));
        for _ in 0..2 {
            let response = service.clone().oneshot(github_request(&s, "s3cret", "1", "push", b"{}")).await.unwrap();
            assert_eq!(response.status(), 200);
        }
        let response = service.clone().oneshot(github_request(&s, "s3cret", "1", "push", b"{}")).await.unwrap();
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()["retry-after"], "1");
        assert_eq!(calls.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn sources_without_a_limit_are_not_limited() {
        let s = Arc::new(source("gh", "github", &["s3cret"]));
        let calls = Arc::new(Mutex::new(Vec::new()));
        let service = from_fn(rate_limit).layer(counting_echo(calls.clone()));
        for _ in 0..50 {
            let response = service.clone().oneshot(github_request(&s, "s3cret", "1", "push", b"{}")).await.unwrap();
            assert_eq!(response.status(), 200);
        }
    }
}
