//! Verifies the provider's signature over the raw bytes, then — and only then — parses the body
//! and extracts the event id and type. The resulting [`VerifiedEvent`] can only be built here,
//! so every layer below knows it handles an authenticated request.

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::source::Inbound;
use crate::error::Rejection;
use crate::providers::field::RequestView;

/// An authenticated event. Its fields are private so that only this module can build one.
#[derive(Debug, Clone)]
pub struct VerifiedEvent {
    id: String,
    event_type: String,
    json: Option<Arc<Value>>,
}

impl VerifiedEvent {
    /// The event id (provider-defined, or a digest of the body).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The event type (provider-defined, or `unknown`).
    pub fn event_type(&self) -> &str {
        &self.event_type
    }

    /// The body parsed as JSON, when it is JSON; parsed once, here.
    pub fn json(&self) -> Option<&Value> {
        self.json.as_deref()
    }
}

/// The buffered request and its verified event, as every layer below `verify` sees them. An
/// error means the stack was assembled without the source or verify layer above: a bug.
pub fn verified(request: &Request) -> Result<(&Inbound, &VerifiedEvent), Rejection> {
    match (
        request.extensions().get::<Inbound>(),
        request.extensions().get::<VerifiedEvent>(),
    ) {
        (Some(inbound), Some(event)) => Ok((inbound, event)),
        _ => {
            tracing::error!(
                "a layer below `verify` ran without the source and verify layers above it"
            );
            Err(Rejection::Internal)
        }
    }
}

/// The middleware function.
pub async fn verify(mut request: Request, next: Next) -> Response {
    let Some(inbound) = request.extensions().get::<Inbound>().cloned() else {
        tracing::error!("verify layer ran without the source layer above it");
        return Rejection::Internal.into_response();
    };
    let source = &inbound.source;
    let provider = &source.provider;
    let headers = request.headers();
    let unparsed = RequestView {
        headers,
        body: &inbound.body,
        json: None,
    };
    if let Err(e) = provider.verify(&unparsed, &source.keys, source.tolerance, SystemTime::now()) {
        tracing::info!(source = %source.name, reason = %e, "Rejected an unverified request.");
        return Rejection::from(e).into_response();
    }
    let json = parse_json(&inbound.body).map(Arc::new);
    let view = RequestView {
        json: json.as_deref(),
        ..unparsed
    };
    let event = VerifiedEvent {
        id: provider.event_id(&view),
        event_type: provider.event_type(&view),
        json,
    };
    tracing::Span::current().record("event_id", event.id.as_str());
    request.extensions_mut().insert(event);
    next.run(request).await
}

/// Parses bodies that look like JSON; form bodies and the like stay unparsed.
fn parse_json(body: &[u8]) -> Option<Value> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace())?;
    if matches!(first, b'{' | b'[') {
        serde_json::from_slice(body).ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::middleware::from_fn;
    use tower::{Layer, ServiceExt};

    use super::*;
    use crate::layers::test_support::{counting_echo, github, github_request, json};

    #[tokio::test]
    async fn a_verified_request_carries_its_event_downstream() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let service = from_fn(verify).layer(counting_echo(calls.clone()));
        let request = github_request(&github(), "s3cret", "d-1", "push", br#"{"ref":"x"}"#);
        assert_eq!(service.oneshot(request).await.unwrap().status(), 200);
        let calls = calls.lock().unwrap();
        let event = calls[0]
            .extensions()
            .get::<VerifiedEvent>()
            .expect("VerifiedEvent inserted");
        assert_eq!((event.id(), event.event_type()), ("d-1", "push"));
        assert_eq!(event.json(), Some(&serde_json::json!({"ref": "x"})));
    }

    #[tokio::test]
    async fn a_forged_request_is_rejected_before_the_inner_service() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let service = from_fn(verify).layer(counting_echo(calls.clone()));
        let request = github_request(&github(), "wrong", "d-1", "push", b"{}");
        let response = service.oneshot(request).await.unwrap();
        assert_eq!(response.status(), 401);
        assert_eq!(
            json(response).await,
            serde_json::json!({"error": "signature_invalid"})
        );
        assert!(calls.lock().unwrap().is_empty());
    }

    #[test]
    fn only_json_looking_bodies_are_parsed() {
        assert_eq!(parse_json(b" {\"a\":1}"), Some(serde_json::json!({"a": 1})));
        assert_eq!(parse_json(b"payload=%7B%7D"), None);
        assert_eq!(parse_json(b"{broken"), None);
        assert_eq!(parse_json(b""), None);
    }
}
