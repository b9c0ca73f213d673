//! RabbitMQ publisher: persistent, `mandatory` publishes with publisher confirms on a small pool
//! of channels (confirms pipeline across concurrent requests on each channel). A supervisor task
//! owns the connection and reconnects with exponential backoff and jitter; while it is down,
//! publishes fail fast so the client gets 503 and retries.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind};
use rand::Rng;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{Message, PublishError, Publisher};
use crate::config::Broker;
use crate::telemetry::metrics;

/// First reconnect delay; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest reconnect delay.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Longest wait for a connection and its set-up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a live connection is checked when nothing reports a failure.
const HEALTH_CHECK: Duration = Duration::from_secs(1);

/// The publisher handle; cheap to share.
pub struct AmqpPublisher {
    shared: Arc<Shared>,
}

struct Shared {
    config: Broker,
    session: RwLock<Option<Arc<Session>>>,
    /// Wakes the supervisor when a publish saw the connection fail.
    broken: Notify,
}

/// One live connection with its confirm-mode channels.
struct Session {
    connection: Connection,
    channels: Vec<Channel>,
    next: AtomicUsize,
}

impl AmqpPublisher {
    /// Starts the supervisor; returns at once, connected or not (`/readyz` tells which).
    pub fn start(config: Broker) -> Arc<Self> {
        metrics::broker_connected(false);
        let shared = Arc::new(Shared { config, session: RwLock::new(None), broken: Notify::new() });
        tokio::spawn(supervise(Arc::downgrade(&shared)));
        Arc::new(Self { shared })
    }

    /// Waits until connected, up to `timeout`; for start-up logs and tests.
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.is_ready() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.is_ready()
    }

    fn session(&self) -> Option<Arc<Session>> {
        self.shared.session.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    async fn publish_once(&self, message: &Message) -> Result<(), PublishError> {
        let channel = self.channel()?;
        let confirm = self.send(&channel, message).await?;
        self.confirmed(confirm, &message.routing_key).await
    }

    fn channel(&self) -> Result<Channel, PublishError> {
        let session = self.session().ok_or_else(|| PublishError::Unavailable("not connected".into()))?;
        session.channel().cloned().ok_or_else(|| PublishError::Unavailable("no open channel".into()))
    }

    /// Sends a message; the returned future resolves with the broker's confirm.
    async fn send(&self, channel: &Channel, message: &Message) -> Result<lapin::PublisherConfirm, PublishError> {
        let config = &self.shared.config;
        let quarantine;
        let exchange = match &message.quarantine {
            Some(_) => {
                quarantine = quarantine_exchange(&config.exchange);
                &quarantine
            }
            None => &config.exchange,
        };
        channel
            .basic_publish(
                exchange.as_str().into(),
                ShortString::try_new(message.routing_key.as_str())
                    .map_err(|_| PublishError::Invalid("routing key longer than 255 bytes".into()))?,
                BasicPublishOptions { mandatory: true, immediate: false },
                &message.body,
                properties(message),
            )
            .await
            .map_err(|e| PublishError::Unavailable(e.to_string()))
    }

    async fn confirmed(&self, confirm: lapin::PublisherConfirm, routing_key: &str) -> Result<(), PublishError> {
        let confirmation = tokio::time::timeout(self.shared.config.confirm_timeout, confirm)
            .await
            .map_err(|_| PublishError::ConfirmTimeout)?
            .map_err(|e| PublishError::Unavailable(e.to_string()))?;
        match confirmation {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(_)) | Confirmation::Nack(Some(_)) => {
                Err(PublishError::Unroutable(routing_key.to_owned()))
            }
            Confirmation::Nack(None) => Err(PublishError::Nacked),
            Confirmation::NotRequested => Err(PublishError::Unavailable("channel is not in confirm mode".into())),
        }
    }
}

impl AmqpPublisher {
    /// Publishes `messages` in order on one channel, all sent before any confirm is awaited, so
    /// they reach the queue in this order at the cost of one round trip for the batch.
    async fn publish_in_order(&self, messages: Vec<&Message>) -> Vec<Result<(), PublishError>> {
        let channel = match self.channel() {
            Ok(c) => c,
            Err(e) => return messages.iter().map(|_| Err(PublishError::Unavailable(e.to_string()))).collect(),
        };
        let mut pending = Vec::with_capacity(messages.len());
        for message in &messages {
            pending.push(self.send(&channel, message).await);
        }
        // Every message is on the wire before the first confirm is awaited.
        let confirms = pending
            .into_iter()
            .zip(messages)
            .map(|(sent, message)| async move { self.confirmed(sent?, &message.routing_key).await });
        futures_util::future::join_all(confirms).await
    }
}

impl Publisher for AmqpPublisher {
    fn publish_batch<'a>(&'a self, messages: Vec<&'a Message>) -> BoxFuture<'a, Vec<Result<(), PublishError>>> {
        async move {
            let results = self.publish_in_order(messages).await;
            if results.iter().any(|r| matches!(r, Err(PublishError::Unavailable(_) | PublishError::ConfirmTimeout))) {
                self.shared.broken.notify_one();
            }
            results
        }
        .boxed()
    }

    fn publish<'a>(&'a self, message: &'a Message) -> BoxFuture<'a, Result<(), PublishError>> {
        async move {
            let result = self.publish_once(message).await;
            if matches!(result, Err(PublishError::Unavailable(_) | PublishError::ConfirmTimeout)) {
                self.shared.broken.notify_one();
            }
            result
        }
        .boxed()
    }

    fn is_ready(&self) -> bool {
        self.session().is_some_and(|s| s.is_alive())
    }
}

impl Session {
    /// Round-robin over channels that are still open.
    fn channel(&self) -> Option<&Channel> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..self.channels.len())
            .map(|i| &self.channels[(start + i) % self.channels.len()])
            .find(|c| c.status().connected())
    }

    fn is_alive(&self) -> bool {
        self.connection.status().connected() && self.channels.iter().all(|c| c.status().connected())
    }
}

/// AMQP properties and CloudEvents (binary mode) headers for `message`.
fn properties(message: &Message) -> BasicProperties {
    let received = message.received_at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let time = rfc3339(message.received_at);
    let mut headers = FieldTable::default();
    let mut put = |k: &str, v: &str| {
        headers.insert(ShortString::from(k), AMQPValue::LongString(LongString::from(v)));
    };
    put("cloudEvents:specversion", "1.0");
    put("cloudEvents:id", &message.id);
    put("cloudEvents:source", &format!("hookgate/{}", message.source));
    put("cloudEvents:type", &format!("{}.{}", message.provider, message.event_type));
    put("cloudEvents:time", &time);
    put("hookgate-source", &message.source);
    put("hookgate-provider", &message.provider);
    put("hookgate-received-at", &time);
    if let Some(tp) = &message.traceparent {
        put("traceparent", tp);
    }
    if let Some(reason) = &message.quarantine {
        put("hookgate-rejection", &serde_json::to_string(reason).unwrap_or_default());
    }
    let mut props = BasicProperties::default()
        .with_message_id(short(&message.id))
        .with_type(short(&message.event_type))
        .with_timestamp(received.as_secs())
        .with_delivery_mode(2)
        .with_app_id("hookgate".into())
        .with_headers(headers);
    if let Some(ct) = &message.content_type {
        // AMQP short strings hold 255 bytes; a longer Content-Type is left out rather than cut.
        if let Ok(ct) = ShortString::try_new(ct.as_str()) {
            props = props.with_content_type(ct);
        }
    }
    props
}

/// An AMQP short string; the verify layer keeps ids and types within 255 bytes, so the cut is
/// never reached for them (the full values are also in the `cloudEvents:*` headers).
fn short(text: &str) -> ShortString {
    let mut end = text.len().min(255);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    ShortString::try_new(&text[..end]).unwrap_or_default()
}

/// RFC 3339 UTC time with millisecond precision.
pub fn rfc3339(t: SystemTime) -> String {
    let t = time::OffsetDateTime::from(t);
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    t.format(&format).unwrap_or_default()
}

/// Owns the connection: connect, declare, serve until broken, back off, repeat. Ends when the
/// publisher is dropped.
async fn supervise(shared: std::sync::Weak<Shared>) {
    let mut backoff = MIN_BACKOFF;
    loop {
        let Some(strong) = shared.upgrade() else {
            return;
        };
        let attempt = match tokio::time::timeout(CONNECT_TIMEOUT, connect(&strong.config)).await {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(_) => Err(format!("no answer within {CONNECT_TIMEOUT:?}")),
        };
        match attempt {
            Ok(session) => {
                backoff = MIN_BACKOFF;
                let session = Arc::new(session);
                *strong.session.write().unwrap_or_else(|e| e.into_inner()) = Some(session.clone());
                metrics::broker_connected(true);
                tracing::info!(exchange = %strong.config.exchange, "Connected to broker.");
                while session.is_alive() {
                    tokio::select! {
                        () = strong.broken.notified() => {}
                        () = tokio::time::sleep(HEALTH_CHECK) => {}
                    }
                    if Arc::strong_count(&strong) == 1 {
                        return; // the publisher is gone
                    }
                }
                *strong.session.write().unwrap_or_else(|e| e.into_inner()) = None;
                metrics::broker_connected(false);
                tracing::warn!("Lost the broker connection; reconnecting.");
                let _ = session.connection.close(0, "reconnecting".into()).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "Cannot connect to broker.");
            }
        }
        drop(strong);
        tokio::time::sleep(jitter(backoff)).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Between half and the full delay, so replicas do not reconnect in lockstep.
fn jitter(d: Duration) -> Duration {
    d.mul_f64(rand::rng().random_range(0.5..=1.0))
}

/// The exchange for events no binding routes: the main exchange's alternate exchange.
pub fn unroutable_exchange(exchange: &str) -> String {
    format!("{exchange}.unroutable")
}

/// The exchange for quarantined (schema-invalid) events.
pub fn quarantine_exchange(exchange: &str) -> String {
    format!("{exchange}.quarantine")
}

/// Declares the main topic exchange with `{exchange}.unroutable` as its alternate exchange, so an
/// event no queue is bound for is kept (in the durable `{exchange}.unroutable` queue) instead of
/// being returned or dropped; and `{exchange}.quarantine` with its durable queue.
pub async fn declare_topology(channel: &Channel, exchange: &str) -> Result<(), lapin::Error> {
    let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
    let queue = QueueDeclareOptions { durable: true, ..Default::default() };
    let unroutable = unroutable_exchange(exchange);
    let quarantine = quarantine_exchange(exchange);
    for (name, kind) in [(&unroutable, ExchangeKind::Fanout), (&quarantine, ExchangeKind::Topic)] {
        channel.exchange_declare(name.as_str().into(), kind, durable, FieldTable::default()).await?;
        channel.queue_declare(name.as_str().into(), queue, FieldTable::default()).await?;
        channel
            .queue_bind(
                name.as_str().into(),
                name.as_str().into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    let mut arguments = FieldTable::default();
    arguments.insert("alternate-exchange".into(), AMQPValue::LongString(LongString::from(unroutable.as_str())));
    channel.exchange_declare(exchange.into(), ExchangeKind::Topic, durable, arguments).await
}

async fn connect(config: &Broker) -> Result<Session, lapin::Error> {
    let connection = Connection::connect(config.url.expose(), ConnectionProperties::default()).await?;
    let setup = connection.create_channel().await?;
    declare_topology(&setup, &config.exchange).await?;
    let _ = setup.close(200, "declared".into()).await;
    let mut channels = Vec::with_capacity(config.channels);
    for _ in 0..config.channels {
        let channel = connection.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        channels.push(channel);
    }
    Ok(Session { connection, channels, next: AtomicUsize::new(0) })
}
