//! `hookgate quarantine replay`: after a schema fix, re-validates quarantined events and
//! re-publishes those that now pass to the main exchange — filtered by source, type and age,
//! rate-limited, with a dry run. Events that still fail, or that the filter leaves out, stay
//! in the quarantine queue.

use std::time::{Duration, SystemTime};

use lapin::message::BasicGetMessage;
use lapin::options::{BasicAckOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Confirmation, Connection, ConnectionProperties};

use crate::config::Config;
use crate::providers::spec::TimestampUnit;
use crate::providers::timestamp;
use crate::sink::amqp::quarantine_exchange;

/// Which quarantined events to replay, and how.
pub struct ReplayOptions {
    /// Source name (required).
    pub source: String,
    /// Only this event type.
    pub event_type: Option<String>,
    /// Only events received at or after this time.
    pub since: Option<SystemTime>,
    /// At most this many re-publishes per second.
    pub rate: Option<f64>,
    /// Count only; publish and remove nothing.
    pub dry_run: bool,
}

/// What a replay did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Re-published to the main exchange (or, in a dry run, would be).
    pub replayed: u64,
    /// Still schema-invalid: left in quarantine.
    pub still_invalid: u64,
    /// Not selected by the filter: left in quarantine.
    pub skipped: u64,
}

/// Runs a replay against the configured broker.
pub async fn replay(config: &Config, options: &ReplayOptions) -> Result<ReplayReport, String> {
    let broker = config.broker.as_ref().ok_or("the configuration has no broker")?;
    let source = config.sources.get(&options.source).ok_or_else(|| format!("no source `{}`", options.source))?;
    let connection = Connection::connect(broker.url.expose(), ConnectionProperties::default())
        .await
        .map_err(|e| format!("cannot connect to the broker: {e}"))?;
    let channel = connection.create_channel().await.map_err(|e| e.to_string())?;
    channel.confirm_select(ConfirmSelectOptions::default()).await.map_err(|e| e.to_string())?;
    let queue = quarantine_exchange(&broker.exchange);
    let pause = options.rate.filter(|r| *r > 0.0).map(|r| Duration::from_secs_f64(1.0 / r));
    let mut report = ReplayReport::default();
    // Held unacknowledged until the end, so a basic.get never returns the same message twice.
    let mut kept = Vec::new();
    while let Some(message) =
        channel.basic_get(queue.as_str().into(), BasicGetOptions { no_ack: false }).await.map_err(|e| e.to_string())?
    {
        let headers = message.delivery.properties.headers().clone().unwrap_or_default();
        let event_type = message.delivery.properties.kind().as_ref().map(|k| k.to_string()).unwrap_or_default();
        if !selected(&headers, &event_type, options) {
            report.skipped += 1;
            kept.push(message);
            continue;
        }
        let valid = match source.schemas.for_type(&event_type) {
            None => true,
            Some(validator) => serde_json::from_slice::<serde_json::Value>(&message.delivery.data)
                .is_ok_and(|json| validator.is_valid(&json)),
        };
        if !valid {
            report.still_invalid += 1;
            kept.push(message);
            continue;
        }
        report.replayed += 1;
        if options.dry_run {
            kept.push(message);
            continue;
        }
        republish(&channel, &broker.exchange, &message).await?;
        message.delivery.ack(BasicAckOptions::default()).await.map_err(|e| e.to_string())?;
        if let Some(pause) = pause {
            tokio::time::sleep(pause).await;
        }
    }
    for message in kept {
        message
            .delivery
            .nack(BasicNackOptions { requeue: true, ..Default::default() })
            .await
            .map_err(|e| e.to_string())?;
    }
    let _ = connection.close(200, "replayed".into()).await;
    Ok(report)
}

fn selected(headers: &FieldTable, event_type: &str, options: &ReplayOptions) -> bool {
    let header = |name: &str| match headers.inner().get(&ShortString::from(name)) {
        Some(AMQPValue::LongString(s)) => Some(s.to_string()),
        _ => None,
    };
    let received = header("hookgate-received-at").and_then(|t| timestamp::parse(&t, TimestampUnit::Rfc3339));
    header("hookgate-source").as_deref() == Some(options.source.as_str())
        && options.event_type.as_deref().is_none_or(|t| t == event_type)
        && options.since.is_none_or(|since| received.is_some_and(|r| r >= since))
}

/// Publishes to the main exchange with the original properties, less the rejection header.
async fn republish(channel: &lapin::Channel, exchange: &str, message: &BasicGetMessage) -> Result<(), String> {
    let delivery = &message.delivery;
    let mut headers = delivery.properties.headers().clone().unwrap_or_default();
    let mut cleaned = FieldTable::default();
    for (k, v) in headers.inner() {
        if k.as_str() != "hookgate-rejection" {
            cleaned.insert(k.clone(), v.clone());
        }
    }
    headers = cleaned;
    let properties: BasicProperties = delivery.properties.clone().with_headers(headers);
    let confirm = channel
        .basic_publish(
            exchange.into(),
            delivery.routing_key.clone(),
            BasicPublishOptions { mandatory: true, immediate: false },
            &delivery.data,
            properties,
        )
        .await
        .map_err(|e| e.to_string())?
        .await
        .map_err(|e| e.to_string())?;
    match confirm {
        Confirmation::Ack(None) => Ok(()),
        other => Err(format!("the broker did not take a replayed event: {other:?}")),
    }
}
