//! Resolves `/hooks/{source}` to its configured [`Source`] and buffers the body once into
//! `Bytes`, within the source's size limit: `Content-Length` is checked first, then the read is
//! bounded, so an oversized body is never held in memory.

use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::error::Rejection;
use crate::providers::request::{RequestView, parse_json};
use crate::source::{Source, Sources};

/// The buffered request, for every layer below.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// The source the request was sent to.
    pub source: Arc<Source>,
    /// The raw body, exactly as received.
    pub body: Bytes,
    /// When the request arrived.
    pub received_at: SystemTime,
    /// The body parsed as JSON, on first use, once.
    json: Arc<OnceLock<Option<serde_json::Value>>>,
}

impl Inbound {
    /// Wraps a buffered body.
    pub fn new(source: Arc<Source>, body: Bytes, received_at: SystemTime) -> Self {
        Self { source, body, received_at, json: Arc::default() }
    }

    /// The body as JSON, parsed on first call; `None` for bodies that are not JSON (forms).
    /// Layers call it only once the request is verified, unless the provider signs fields
    /// inside the body or matches unsigned handshakes on it.
    pub fn json(&self) -> Option<&serde_json::Value> {
        self.json.get_or_init(|| parse_json(&self.body)).as_ref()
    }

    /// A view of the request for provider rules.
    pub fn view<'a>(&'a self, request: &'a Request, with_json: bool) -> RequestView<'a> {
        RequestView {
            method: request.method(),
            headers: request.headers(),
            query: request.uri().query(),
            public_url: self.source.public_url.as_deref(),
            body: &self.body,
            json: if with_json { self.json() } else { None },
        }
    }
}

/// The middleware function.
pub async fn resolve_source(State(sources): State<Sources>, request: Request, next: Next) -> Response {
    let name = request.uri().path().rsplit('/').next().unwrap_or_default();
    let Some(source) = sources.get(name).cloned() else {
        return Rejection::UnknownSource.into_response();
    };
    tracing::Span::current().record("source", &*source.name);
    let (mut parts, body) = request.into_parts();
    if declared_length(&parts.headers).is_some_and(|len| len > source.max_body as u64) {
        return Rejection::PayloadTooLarge.into_response();
    }
    let body = match Limited::new(body, source.max_body).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => return Rejection::PayloadTooLarge.into_response(),
        Err(e) => {
            tracing::debug!(error = %e, "Could not read the request body.");
            return Rejection::BodyUnreadable.into_response();
        }
    };
    parts.extensions.insert(Inbound::new(source, body, SystemTime::now()));
    next.run(Request::from_parts(parts, Body::empty())).await
}

fn declared_length(headers: &http::HeaderMap) -> Option<u64> {
    headers.get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::middleware::from_fn_with_state;
    use tower::{Layer, ServiceExt};

    use super::*;
    use crate::layers::test_support::{counting_echo, json, source};

    fn sources() -> Sources {
        let mut small = source("small", "github", &["s"]);
        small.max_body = 8;
        Sources::new(vec![small])
    }

    async fn run(request: Request) -> (Response, Vec<Request>) {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let service = from_fn_with_state(sources(), resolve_source).layer(counting_echo(calls.clone()));
        let response = service.oneshot(request).await.unwrap();
        let calls = std::mem::take(&mut *calls.lock().unwrap());
        (response, calls)
    }

    fn post(path: &str, body: Body) -> Request {
        Request::builder().method("POST").uri(path).body(body).unwrap()
    }

    #[tokio::test]
    async fn buffers_the_body_within_the_limit() {
        let (response, calls) = run(post("/hooks/small", Body::from("12345678"))).await;
        assert_eq!(response.status(), 200);
        let inbound = calls[0].extensions().get::<Inbound>().unwrap();
        assert_eq!(&inbound.body[..], b"12345678");
        assert_eq!(&*inbound.source.name, "small");
    }

    #[tokio::test]
    async fn oversized_bodies_are_refused_declared_or_streamed() {
        let (response, calls) = run(post("/hooks/small", Body::from("123456789"))).await;
        assert_eq!(response.status(), 413);
        assert_eq!(json(response).await, serde_json::json!({"error": "payload_too_large"}));
        assert!(calls.is_empty());
        // No Content-Length: the bounded read catches it.
        let chunks = futures_util::stream::iter(["12345", "6789"].map(|c| Ok::<_, std::io::Error>(Bytes::from(c))));
        let (response, _) = run(post("/hooks/small", Body::from_stream(chunks))).await;
        assert_eq!(response.status(), 413);
    }

    #[test]
    fn only_json_looking_bodies_are_parsed() {
        assert_eq!(parse_json(b" {\"a\":1}"), Some(serde_json::json!({"a": 1})));
        assert_eq!(parse_json(b"payload=%7B%7D"), None);
        assert_eq!(parse_json(b"{broken"), None);
        assert_eq!(parse_json(b""), None);
    }

    #[tokio::test]
    async fn unknown_sources_are_404() {
        let (response, calls) = run(post("/hooks/nope", Body::empty())).await;
        assert_eq!(response.status(), 404);
        assert_eq!(json(response).await, serde_json::json!({"error": "unknown_source"}));
        assert!(calls.is_empty());
    }
}
