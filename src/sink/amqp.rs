//! RabbitMQ publisher: persistent, `mandatory` publishes with publisher confirms on a small pool
//! of channels (confirms pipeline across concurrent requests on each channel). A supervisor task
//! owns the connection and reconnects with exponential backoff and jitter; while it is down,
//! publishes fail fast so the client gets 503 and retries.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
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

    async fn publish_once(&self, message: Message) -> Result<(), PublishError> {
        let session = self.session().ok_or_else(|| PublishError::Unavailable("not connected".into()))?;
        let channel = session.channel().ok_or_else(|| PublishError::Unavailable("no open channel".into()))?;
        let config = &self.shared.config;
        let confirm = channel
            .basic_publish(
                config.exchange.as_str().into(),
                message.routing_key.as_str().into(),
                BasicPublishOptions { mandatory: true, immediate: false },
                &message.body,
                properties(&message),
            )
            .await
            .map_err(|e| PublishError::Unavailable(e.to_string()))?;
        let confirmation = tokio::time::timeout(config.confirm_timeout, confirm)
            .await
            .map_err(|_| PublishError::ConfirmTimeout)?
            .map_err(|e| PublishError::Unavailable(e.to_string()))?;
        match confirmation {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(_)) | Confirmation::Nack(Some(_)) => {
                Err(PublishError::Unroutable(message.routing_key))
            }
            Confirmation::Nack(None) => Err(PublishError::Nacked),
            Confirmation::NotRequested => Err(PublishError::Unavailable("channel is not in confirm mode".into())),
        }
    }
}

impl Publisher for AmqpPublisher {
    fn publish(&self, message: Message) -> BoxFuture<'_, Result<(), PublishError>> {
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
    let mut props = BasicProperties::default()
        .with_message_id(message.id.as_str().into())
        .with_type(message.event_type.as_str().into())
        .with_timestamp(received.as_secs())
        .with_delivery_mode(2)
        .with_app_id("hookgate".into())
        .with_headers(headers);
    if let Some(ct) = &message.content_type {
        props = props.with_content_type(ct.as_str().into());
    }
    props
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

async fn connect(config: &Broker) -> Result<Session, lapin::Error> {
    let connection = Connection::connect(config.url.expose(), ConnectionProperties::default()).await?;
    let setup = connection.create_channel().await?;
    setup
        .exchange_declare(
            config.exchange.as_str().into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions { durable: true, ..Default::default() },
            FieldTable::default(),
        )
        .await?;
    let _ = setup.close(200, "declared".into()).await;
    let mut channels = Vec::with_capacity(config.channels);
    for _ in 0..config.channels {
        let channel = connection.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        channels.push(channel);
    }
    Ok(Session { connection, channels, next: AtomicUsize::new(0) })
}
