//! Handing events on. [`Publisher`] is a trait so layer tests can use a fake; the real one is
//! [`amqp::AmqpPublisher`] (RabbitMQ with publisher confirms).

pub mod amqp;

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
    /// Confirmed, but returned: no queue is bound for the routing key.
    #[error("no queue bound for routing key `{0}`")]
    Unroutable(String),
}

/// Something that takes events durably.
pub trait Publisher: Send + Sync + 'static {
    /// Resolves `Ok` only once the event is durable downstream.
    fn publish(&self, message: Message) -> BoxFuture<'_, Result<(), PublishError>>;
    /// Whether the publisher can currently take events (for `/readyz`).
    fn is_ready(&self) -> bool;
}
