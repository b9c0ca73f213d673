//! The application: shared state and the whole middleware stack, assembled in one place.

use std::sync::Arc;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::Request;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::get;
use http::StatusCode;
use http::header::{AUTHORIZATION, HeaderName};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnFailure, TraceLayer};
use tracing::Level;

use crate::config::{Config, Limits};
use crate::dedup::{DedupStore, MemoryStore};
use crate::error::Rejection;
use crate::fetch::Fetcher;
use crate::ingest::{IngestState, ingest};
use crate::layers::{dedup, handshake, observe, rate_limit, schema, source, verify};
use crate::sink::delivery::Delivery;
use crate::source::Sources;

/// Everything requests share.
#[derive(Clone)]
pub struct AppState {
    /// The configured endpoints.
    pub sources: Sources,
    /// Seen ids.
    pub dedup: Arc<dyn DedupStore>,
    /// Where accepted events go.
    pub delivery: Delivery,
    /// Routing-key template.
    pub routing_key: Arc<str>,
    /// Request bounds.
    pub limits: Limits,
    /// Outbound HTTPS for keys and subscription confirmations.
    pub fetcher: Arc<Fetcher>,
}

impl AppState {
    /// The state for `config`, delivering through `delivery`; starts the dedup store's purge task,
    /// so call it inside a Tokio runtime.
    pub fn new(config: &Config, delivery: Delivery) -> Self {
        Self {
            sources: config.sources.clone(),
            dedup: MemoryStore::start(config.dedup_ttl),
            delivery,
            routing_key: Arc::from(config.routing_key.as_str()),
            limits: config.limits,
            fetcher: Fetcher::new(),
        }
    }
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Signature headers are secrets-adjacent: never log them.
fn sensitive_headers() -> Vec<HeaderName> {
    ["x-hub-signature-256", "x-hub-signature", "stripe-signature", "x-slack-signature", "webhook-signature", "cookie"]
        .into_iter()
        .map(HeaderName::from_static)
        .chain([AUTHORIZATION])
        .collect()
}

/// The public router: `POST /hooks/{source}` and `GET /healthz`.
pub fn app(state: AppState) -> Router {
    // Per webhook, in order: count the outcome; resolve the source and buffer the body within its
    // limit; rate-limit before spending CPU on HMACs; answer unsigned handshakes and refuse other
    // non-POSTs; verify before anything writes state (so unauthenticated traffic never touches the
    // dedup store); answer signed handshakes (never published); deduplicate; validate the schema;
    // publish.
    let webhook = ServiceBuilder::new()
        .layer(from_fn_with_state(state.sources.clone(), observe::observe))
        // Inside `observe` so timeouts are counted; covers body read and broker confirm.
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, state.limits.request_timeout))
        .layer(from_fn_with_state(state.sources.clone(), source::resolve_source))
        .layer(from_fn(rate_limit::rate_limit))
        .layer(from_fn(handshake::before_verify))
        .layer(from_fn_with_state(state.fetcher.clone(), verify::verify))
        .layer(from_fn_with_state(state.fetcher.clone(), handshake::after_verify))
        .layer(from_fn_with_state(state.dedup.clone(), dedup::dedup))
        .layer(from_fn(schema::validate_schema))
        .service(
            axum::routing::post(ingest)
                .with_state(IngestState { delivery: state.delivery.clone(), routing_key: state.routing_key.clone() }),
        );

    Router::new()
        .route_service(
            "/hooks/{source}",
            // Every method: unsigned handshakes use GET and HEAD; `before_verify` answers 405 to the rest.
            webhook,
        )
        .route("/healthz", get(|| async { "ok" }))
        .fallback(|| async { (StatusCode::NOT_FOUND, axum::Json(serde_json::json!({"error": "not_found"}))) })
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
                .layer(SetSensitiveRequestHeadersLayer::from_shared(sensitive_headers().into()))
                // A panic answers 500 instead of dropping the connection.
                .layer(CatchPanicLayer::new())
                // Beyond `concurrency` requests in flight, shed at once with 503 rather than queue.
                .layer(HandleErrorLayer::new(|_: tower::BoxError| async { Rejection::Overloaded }))
                .load_shed()
                .concurrency_limit(state.limits.concurrency),
        )
}

/// One span per request; `source` and `event_id` are recorded by the layers that learn them.
fn make_span(request: &Request) -> tracing::Span {
    let request_id = request.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or_default();
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %request_id,
        source = tracing::field::Empty,
        event_id = tracing::field::Empty,
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::body::Body;
    use http::Request;
    use tower::ServiceExt;

    use super::*;
    use crate::layers::test_support::{FakePublisher, json, source};
    use crate::sink::PublishError;

    fn state(publisher: Arc<FakePublisher>) -> AppState {
        AppState {
            sources: Sources::new(vec![source("gh", "github", &["s3cret"])]),
            dedup: MemoryStore::start(Duration::from_secs(60)),
            delivery: Delivery { publisher: Some(publisher), spool: None },
            routing_key: Arc::from("{provider}.{source}.{type}"),
            limits: Limits {
                max_body: 1 << 20,
                request_timeout: Duration::from_secs(5),
                header_read_timeout: Duration::from_secs(5),
                concurrency: 8,
            },
            fetcher: Fetcher::new(),
        }
    }

    fn signed(id: &str) -> Request<Body> {
        use hmac::{Hmac, Mac};
        let body = br#"{"zen":"x"}"#;
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"s3cret").unwrap();
        mac.update(body);
        Request::post("/hooks/gh")
            .header("X-Hub-Signature-256", format!("sha256={}", hex::encode(mac.finalize().into_bytes())))
            .header("X-GitHub-Delivery", id)
            .header("X-GitHub-Event", "ping")
            .header("Content-Type", "application/json")
            .header("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
            .body(Body::from(&body[..]))
            .unwrap()
    }

    #[tokio::test]
    async fn an_accepted_event_reaches_the_publisher_as_sent() {
        let publisher = Arc::new(FakePublisher::default());
        let response = app(state(publisher.clone())).oneshot(signed("d-1")).await.unwrap();
        assert_eq!(response.status(), 202);
        assert!(response.headers().contains_key("x-request-id"));
        assert_eq!(json(response).await, serde_json::json!({"status": "accepted", "id": "d-1"}));
        let sent = publisher.sent.lock().unwrap();
        let message = &sent[0];
        assert_eq!(&message.body[..], br#"{"zen":"x"}"#);
        assert_eq!(message.routing_key, "github.gh.ping");
        assert_eq!(message.content_type.as_deref(), Some("application/json"));
        assert_eq!(message.traceparent.as_deref(), Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"));
    }

    #[tokio::test]
    async fn publisher_failures_answer_503_and_the_retry_is_not_a_duplicate() {
        let publisher = Arc::new(FakePublisher::default());
        let app = app(state(publisher.clone()));
        *publisher.failure.lock().unwrap() = Some(|| PublishError::Unavailable("down".into()));
        let response = app.clone().oneshot(signed("d-1")).await.unwrap();
        assert_eq!(response.status(), 503);
        assert_eq!(json(response).await, serde_json::json!({"error": "broker_unavailable"}));
        *publisher.failure.lock().unwrap() = Some(|| PublishError::Unroutable("k".into()));
        let response = app.clone().oneshot(signed("d-1")).await.unwrap();
        assert_eq!(json(response).await, serde_json::json!({"error": "unroutable"}));
        *publisher.failure.lock().unwrap() = None;
        let response = app.oneshot(signed("d-1")).await.unwrap();
        assert_eq!(json(response).await, serde_json::json!({"status": "accepted", "id": "d-1"}));
    }

    #[tokio::test]
    async fn unknown_paths_are_404_json() {
        let publisher = Arc::new(FakePublisher::default());
        let response = app(state(publisher)).oneshot(Request::get("/nope").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(response.status(), 404);
        assert_eq!(json(response).await, serde_json::json!({"error": "not_found"}));
    }

    #[tokio::test]
    async fn outcomes_are_counted_per_source() {
        let handle = crate::telemetry::metrics::install();
        let publisher = Arc::new(FakePublisher::default());
        let app = app(state(publisher));
        app.clone().oneshot(signed("metrics-1")).await.unwrap();
        let mut forged = signed("metrics-2");
        forged.headers_mut().insert("X-Hub-Signature-256", "sha256=00".parse().unwrap());
        app.oneshot(forged).await.unwrap();
        let text = handle.render();
        assert!(text.contains(r#"hookgate_requests_total{source="gh",outcome="accepted"}"#), "{text}");
        assert!(text.contains(r#"hookgate_requests_total{source="gh",outcome="signature_invalid"}"#), "{text}");
        assert!(text.contains("hookgate_request_duration_seconds_bucket"), "{text}");
    }
}
