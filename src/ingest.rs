//! The final handler: hands the verified event over and answers 202 only once it is durable —
//! confirmed by the broker or on disk in the spool. Any failure answers 503 so the provider
//! retries.

use std::sync::Arc;

use tokio::time::Instant;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::HeaderMap;
use http::header::CONTENT_TYPE;

use crate::error::{Rejection, accepted};
use crate::layers::handshake::reply_response;
use crate::layers::source::Inbound;
use crate::layers::verify::verified;
use crate::sink::delivery::{Delivered, Delivery, DeliveryError};
use crate::sink::{Message, PublishError, QuarantineReason};
use crate::telemetry::metrics;

/// AMQP routing keys are short strings.
const MAX_ROUTING_KEY: usize = 255;

/// What the handler needs.
#[derive(Clone)]
pub struct IngestState {
    /// Where events go.
    pub delivery: Delivery,
    /// Routing-key template.
    pub routing_key: Arc<str>,
}

/// The handler.
pub async fn ingest(State(state): State<IngestState>, request: Request) -> Response {
    let (inbound, event) = match verified(&request) {
        Ok(parts) => parts,
        Err(rejection) => return rejection.into_response(),
    };
    let source = &inbound.source;
    let message = Message {
        routing_key: routing_key(&state.routing_key, &source.name, &source.provider.name, event.event_type()),
        body: inbound.body.clone(),
        id: event.id().to_owned(),
        event_type: event.event_type().to_owned(),
        source: source.name.clone(),
        provider: source.provider.name.clone(),
        content_type: header_text(request.headers(), CONTENT_TYPE.as_str()),
        received_at: inbound.received_at,
        traceparent: header_text(request.headers(), "traceparent"),
        quarantine: request.extensions().get::<QuarantineReason>().cloned(),
    };
    if message.routing_key.len() > MAX_ROUTING_KEY {
        return Rejection::IdentityTooLong.into_response();
    }
    let status = if message.quarantine.is_some() { "quarantined" } else { "accepted" };
    let started = Instant::now();
    match state.delivery.deliver(message).await {
        Ok(delivered) => {
            if delivered == Delivered::Published {
                metrics::publish(started.elapsed());
            }
            acceptance(&request, inbound, status, event.id())
        }
        Err(DeliveryError::Broker(PublishError::Unroutable(key))) => {
            metrics::unroutable(&source.name);
            tracing::error!(source = %source.name, routing_key = %key, "Broker returned the event: no queue is bound for its routing key. Bind a queue; the provider will retry.");
            Rejection::Unroutable.into_response()
        }
        Err(DeliveryError::Broker(e)) => {
            tracing::warn!(source = %source.name, error = %e, "Event not taken by the broker; answered 503.");
            Rejection::BrokerUnavailable.into_response()
        }
        Err(DeliveryError::Spool(e)) => {
            tracing::error!(source = %source.name, error = %e, "Event not taken by the spool; answered 503.");
            Rejection::Unavailable.into_response()
        }
    }
}

/// The answer to an accepted (or duplicate) event: the provider's own when it expects one
/// (Adyen's `[accepted]`), else 202 with `{"status": status, "id": id}`.
pub fn acceptance(request: &Request, inbound: &Inbound, status: &'static str, id: &str) -> Response {
    match inbound.source.provider.accept() {
        Some(respond) => reply_response(respond.reply(&inbound.view(request, true), None), status),
        None => accepted(status, id),
    }
}

/// Fills `{source}`, `{provider}` and `{type}`.
pub fn routing_key(template: &str, source: &str, provider: &str, event_type: &str) -> String {
    template.replace("{source}", source).replace("{provider}", provider).replace("{type}", event_type)
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name)?.to_str().ok().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_key_fills_every_placeholder() {
        assert_eq!(routing_key("{source}.{provider}.{type}", "gh", "github", "push"), "gh.github.push");
    }
}
