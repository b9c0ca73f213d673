//! Handing events on. [`Publisher`] is a trait so layer tests can use a fake; the real one is
//! [`amqp::AmqpPublisher`] (RabbitMQ with publisher confirms).

pub mod amqp;
pub mod delivery;

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::future::BoxFuture;

/// An accepted event on its way to the broker.
#[derive(Debug, Clone)]
pub struct Message {
    /// Routing key, from the configured template.
    pub routing_key: String,
    /// The request body, byte for byte.
    pub body: Bytes,
    /// Event id (AMQP `message_id`, CloudEvents `id`).
    pub id: String,
    /// Event type as the provider names it.
    pub event_type: String,
    /// The source's name.
    pub source: Arc<str>,
    /// The provider's name.
    pub provider: String,
    /// The request's `Content-Type`.
    pub content_type: Option<String>,
    /// When hookgate received the request.
    pub received_at: SystemTime,
    /// W3C trace context of the request, if any.
    pub traceparent: Option<String>,
    /// Set for a schema-invalid event of a source with `on_invalid: quarantine`: it goes to the
    /// quarantine exchange with this reason.
    pub quarantine: Option<QuarantineReason>,
}

/// Why an event was quarantined instead of published.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QuarantineReason {
    /// Machine-readable reason, e.g. `schema_invalid`.
    pub reason: String,
    /// JSON pointer of the first violation.
    pub pointer: String,
}

/// Why an event was not taken durably.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// No connection, or it broke during the publish.
    #[error("broker unavailable: {0}")]
    Unavailable(String),
    /// The broker did not confirm within the deadline.
    #[error("broker did not confirm in time")]
    ConfirmTimeout,
    /// The broker refused the message (nack).
    #[error("broker nacked the message")]
    Nacked,
    /// The message cannot be expressed in AMQP (a routing key over 255 bytes).
    #[error("invalid message: {0}")]
    Invalid(String),
    /// Confirmed, but returned: no queue is bound for the routing key.
    #[error("no queue bound for routing key `{0}`")]
    Unroutable(String),
}

/// Something that takes events durably.
pub trait Publisher: Send + Sync + 'static {
    /// Resolves `Ok` only once the event is durable downstream. Borrows the message, so a caller
    /// can still spool it if the broker does not take it.
    fn publish<'a>(&'a self, message: &'a Message) -> BoxFuture<'a, Result<(), PublishError>>;
    /// Publishes `messages` so they arrive in this order; one result per message. The default
    /// publishes them one after the other.
    fn publish_batch<'a>(&'a self, messages: Vec<&'a Message>) -> BoxFuture<'a, Vec<Result<(), PublishError>>> {
        Box::pin(async move {
            let mut results = Vec::with_capacity(messages.len());
            for message in messages {
                results.push(self.publish(message).await);
            }
            results
        })
    }

    /// Whether the publisher can currently take events (for `/readyz`).
    fn is_ready(&self) -> bool;
}
