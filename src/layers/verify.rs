//! Verifies the provider's signature over the raw bytes, then — and only then — parses the body
//! and extracts the event id and type. The resulting [`VerifiedEvent`] can only be built here,
//! so every layer below knows it handles an authenticated request.

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::source::Inbound;
use crate::error::Rejection;
use crate::fetch::Fetcher;

/// Longest event id or type accepted, in bytes.
pub const MAX_IDENTITY: usize = 200;

/// An authenticated event. Its fields are private so that only this module can build one.
#[derive(Debug, Clone)]
pub struct VerifiedEvent {
    id: String,
    event_type: String,
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
}

/// The buffered request and its verified event, as every layer below `verify` sees them. An
/// error means the stack was assembled without the source or verify layer above: a bug.
pub fn verified(request: &Request) -> Result<(&Inbound, &VerifiedEvent), Rejection> {
    match (request.extensions().get::<Inbound>(), request.extensions().get::<VerifiedEvent>()) {
        (Some(inbound), Some(event)) => Ok((inbound, event)),
        _ => {
            tracing::error!("a layer below `verify` ran without the source and verify layers above it");
            Err(Rejection::Internal)
        }
    }
}

/// The middleware function; `fetcher` downloads keys a provider names per request (AWS SNS).
pub async fn verify(State(fetcher): State<Arc<Fetcher>>, mut request: Request, next: Next) -> Response {
    let Some(inbound) = request.extensions().get::<Inbound>().cloned() else {
        tracing::error!("verify layer ran without the source layer above it");
        return Rejection::Internal.into_response();
    };
    let source = &inbound.source;
    let provider = &source.provider;
    // The raw bytes are verified before the body is parsed, unless the provider signs fields
    // inside the body (Mailgun, Adyen, SNS).
    let unparsed = inbound.view(&request, provider.needs_json_to_verify());
    let mut keys = source.keys();
    if let Some((scheme, url, ttl)) = provider.key_to_fetch(&unparsed, &keys) {
        match fetcher.certificate(&url, ttl).await {
            Ok(key) => keys = Arc::new(keys.with_fetched(scheme, key)),
            Err(e) => {
                tracing::warn!(source = %source.name, url = %url, error = %e, "Cannot download the signing key; answered 503.");
                return Rejection::KeyUnavailable.into_response();
            }
        }
    }
    if let Err(e) = provider.verify(&unparsed, &keys, source.verify_context(), SystemTime::now()) {
        tracing::info!(source = %source.name, reason = %e, "Rejected an unverified request.");
        return Rejection::from(e).into_response();
    }
    // Parsed (once, and kept for the layers below) only if the identity or `require` reads it.
    let view = inbound.view(&request, source.identity_reads_json());
    if !source.allows(&view) {
        tracing::warn!(source = %source.name, "Verified request without the source's required values; refused.");
        return Rejection::NotAllowed.into_response();
    }
    let event = VerifiedEvent { id: provider.event_id(&view), event_type: provider.event_type(&view) };
    // Ids and types travel as AMQP short strings (and in routing keys): at most 255 bytes.
    if event.id.len() > MAX_IDENTITY || event.event_type.len() > MAX_IDENTITY {
        tracing::info!(source = %source.name, "Event id or type longer than {MAX_IDENTITY} bytes; rejected.");
        return Rejection::IdentityTooLong.into_response();
    }
    tracing::Span::current().record("event_id", event.id.as_str());
    request.extensions_mut().insert(event);
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::middleware::from_fn_with_state;
    use tower::{Layer, ServiceExt};

    use super::*;
    use crate::layers::test_support::{counting_echo, github, github_request, json};

    #[tokio::test]
    async fn a_verified_request_carries_its_event_downstream() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let service = from_fn_with_state(crate::fetch::Fetcher::new(), verify).layer(counting_echo(calls.clone()));
        let request = github_request(&github(), "s3cret", "d-1", "push", br#"{"ref":"x"}"#);
        assert_eq!(service.oneshot(request).await.unwrap().status(), 200);
        let calls = calls.lock().unwrap();
        let event = calls[0].extensions().get::<VerifiedEvent>().expect("VerifiedEvent inserted");
        assert_eq!((event.id(), event.event_type()), ("d-1", "push"));
    }

    #[tokio::test]
    async fn a_forged_request_is_rejected_before_the_inner_service() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let service = from_fn_with_state(crate::fetch::Fetcher::new(), verify).layer(counting_echo(calls.clone()));
        let request = github_request(&github(), "wrong", "d-1", "push", b"{}");
        let response = service.oneshot(request).await.unwrap();
        assert_eq!(response.status(), 401);
        assert_eq!(json(response).await, serde_json::json!({"error": "signature_invalid"}));
        assert!(calls.lock().unwrap().is_empty());
    }
}
