//! Counts every webhook request by source and outcome, and times it. Outermost on the route, so
//! it sees rejections from every layer below, timeouts included.

use tokio::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::StatusCode;

use crate::error::Outcome;
use crate::source::Sources;
use crate::telemetry::metrics;

/// Label used for requests to a source that does not exist (keeps label cardinality bounded).
const UNKNOWN_SOURCE: &str = "unknown";

/// The middleware function.
pub async fn observe(State(sources): State<Sources>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let source = source_label(&sources, request.uri().path());
    let response = next.run(request).await;
    let outcome = response.extensions().get::<Outcome>().map_or_else(|| fallback_outcome(response.status()), |o| o.0);
    metrics::request(&source, outcome, started.elapsed());
    response
}

fn source_label(sources: &Sources, path: &str) -> String {
    let name = path.rsplit('/').next().unwrap_or_default();
    if sources.get(name).is_some() { name.to_owned() } else { UNKNOWN_SOURCE.to_owned() }
}

/// Outcomes of responses made outside hookgate's own code (tower-http timeout, panics).
fn fallback_outcome(status: StatusCode) -> &'static str {
    match status {
        StatusCode::REQUEST_TIMEOUT => "timeout",
        s if s.is_server_error() => "internal",
        s if s.is_success() => "ok",
        _ => "other",
    }
}
