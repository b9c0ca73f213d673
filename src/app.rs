//! The application: shared state and the whole middleware stack, assembled in one place.

use std::sync::Arc;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::Request;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::IntoResponse;
use axum::routing::{get, post_service};
use http::StatusCode;
use http::header::{AUTHORIZATION, HeaderName};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnFailure, TraceLayer};
use tracing::Level;

use crate::config::Limits;
use crate::dedup::DedupStore;
use crate::error::Rejection;
use crate::ingest::{IngestState, ingest};
use crate::layers::{dedup, handshake, observe, rate_limit, schema, source, verify};
use crate::sink::Publisher;
use crate::source::Sources;

/// Everything requests share.
#[derive(Clone)]
pub struct AppState {
    /// The configured endpoints.
    pub sources: Sources,
    /// Seen ids.
    pub dedup: Arc<dyn DedupStore>,
    /// Where accepted events go.
    pub publisher: Arc<dyn Publisher>,
    /// Routing-key template.
    pub routing_key: Arc<str>,
    /// Request bounds.
    pub limits: Limits,
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Signature headers are secrets-adjacent: never log them.
fn sensitive_headers() -> Vec<HeaderName> {
    [
        "x-hub-signature-256",
        "x-hub-signature",
        "stripe-signature",
        "x-slack-signature",
        "webhook-signature",
        "cookie",
    ]
    .into_iter()
    .map(HeaderName::from_static)
    .chain([AUTHORIZATION])
    .collect()
}

/// The public router: `POST /hooks/{source}` and `GET /healthz`.
pub fn app(state: AppState) -> Router {
    // Per webhook, in order: count the outcome; resolve the source and buffer the body within its
    // limit; rate-limit before spending CPU on HMACs; verify before anything writes state (so
    // unauthenticated traffic never touches the dedup store); answer handshakes (verified, never
    // published); deduplicate; validate the schema; publish.
    let webhook = ServiceBuilder::new()
        .layer(from_fn_with_state(state.sources.clone(), observe::observe))
        // Inside `observe` so timeouts are counted; covers body read and broker confirm.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            state.limits.request_timeout,
        ))
        .layer(from_fn_with_state(
            state.sources.clone(),
            source::resolve_source,
        ))
        .layer(from_fn(rate_limit::rate_limit))
        .layer(from_fn(verify::verify))
        .layer(from_fn(handshake::handshake))
        .layer(from_fn_with_state(state.dedup.clone(), dedup::dedup))
        .layer(from_fn(schema::validate_schema))
        .service(axum::routing::post(ingest).with_state(IngestState {
            publisher: state.publisher.clone(),
            routing_key: state.routing_key.clone(),
        }));

    Router::new()
        .route(
            "/hooks/{source}",
            post_service(webhook)
                .fallback(|| async { Rejection::MethodNotAllowed.into_response() }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                axum::Json(serde_json::json!({"error": "not_found"})),
            )
        })
        .layer(
            // Outermost first. The request id is set before the span is made so the span has it.
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(make_span)
                        .on_failure(DefaultOnFailure::new().level(Level::WARN)),
                )
                .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                .layer(SetSensitiveRequestHeadersLayer::from_shared(
                    sensitive_headers().into(),
                ))
                // A panic answers 500 instead of dropping the connection.
                .layer(CatchPanicLayer::new())
                // Beyond `concurrency` requests in flight, shed at once with 503 rather than queue.
                .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
                    Rejection::Overloaded
                }))
                .load_shed()
                .concurrency_limit(state.limits.concurrency),
        )
}

/// One span per request; `source` and `event_id` are recorded by the layers that learn them.
fn make_span(request: &Request) -> tracing::Span {
    let request_id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %request_id,
        source = tracing::field::Empty,
        event_id = tracing::field::Empty,
    )
}
