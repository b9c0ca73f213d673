//! `hookgate spool stats|tail [-f]|drain`: see what the spool holds and forward it by hand.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::config::Config;
use crate::sink::Publisher;
use crate::sink::amqp::AmqpPublisher;
use crate::spool::recover::read_from;
use crate::spool::{Position, Spool, drain};

/// `drain` gives up when the broker takes nothing for this long.
const STUCK: Duration = Duration::from_secs(30);
/// How often `tail -f` looks for new records.
const FOLLOW_EVERY: Duration = Duration::from_millis(500);

fn spool_dir(config: &Config) -> Result<&Path, String> {
    config.spool.as_ref().map(|s| s.dir.as_path()).ok_or_else(|| "the configuration has no spool section".into())
}

/// Prints counts: undelivered events, bytes, oldest, segment files.
pub fn stats(config: &Config) -> Result<(), String> {
    let dir = spool_dir(config)?;
    let (records, stopped) = read_from(dir, None).map_err(|e| format!("{}: {e}", dir.display()))?;
    let bytes: u64 = records.iter().map(|s| s.size).sum();
    let segments = crate::spool::recover::segment_ids(dir).map_err(|e| e.to_string())?.len();
    let oldest = records.first().map(|s| crate::sink::amqp::rfc3339(s.message.received_at));
    if let Some(why) = stopped {
        eprintln!("note: stopped at an {why} (a write in progress, or damage the gateway cuts out at start-up)");
    }
    println!("events: {}", records.len());
    println!("bytes: {bytes}");
    println!("segments: {segments}");
    println!("oldest: {}", oldest.as_deref().unwrap_or("-"));
    Ok(())
}

/// Prints one JSON line per undelivered event; with `follow`, keeps printing new ones.
pub async fn tail(config: &Config, follow: bool) -> Result<(), String> {
    let dir = spool_dir(config)?;
    let mut from: Option<Position> = None;
    loop {
        let (records, _) = read_from(dir, from).map_err(|e| format!("{}: {e}", dir.display()))?;
        for spooled in &records {
            println!("{}", line(&spooled.message));
            from = Some(spooled.end);
        }
        if !follow {
            return Ok(());
        }
        tokio::time::sleep(FOLLOW_EVERY).await;
    }
}

/// One event as a JSON line: id, source, type, received_at, body (text when UTF-8, else base64).
fn line(message: &crate::sink::Message) -> String {
    let body = match std::str::from_utf8(&message.body) {
        Ok(text) => serde_json::json!(text),
        Err(_) => serde_json::json!({ "base64": STANDARD.encode(&message.body) }),
    };
    let received_ms = message.received_at.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64;
    serde_json::json!({
        "id": message.id,
        "source": message.source.as_ref(),
        "type": message.event_type,
        "received_at": crate::sink::amqp::rfc3339(message.received_at),
        "received_at_ms": received_ms,
        "body": body,
    })
    .to_string()
}

/// Forwards everything in the spool to the configured broker, then exits. Needs the spool to
/// itself: stop the gateway first (a running gateway drains on its own).
pub async fn drain(config: &Config) -> Result<u64, String> {
    let spool_config = config.spool.clone().ok_or("the configuration has no spool section")?;
    let broker = config.broker.clone().ok_or("the configuration has no broker to drain to (set broker.url)")?;
    let (spool, _) = Spool::open(spool_config).map_err(|e| e.to_string())?;
    let publisher = AmqpPublisher::start(broker);
    if !publisher.wait_connected(Duration::from_secs(15)).await {
        return Err("cannot connect to the broker".into());
    }
    let publisher: Arc<dyn Publisher> = publisher;
    let mut total = 0;
    let mut stuck_since = tokio::time::Instant::now();
    while spool.stats().events > 0 {
        let forwarded = drain::drain_once(&spool, publisher.as_ref()).await.map_err(|e| e.to_string())?;
        if forwarded > 0 {
            stuck_since = tokio::time::Instant::now();
        } else if stuck_since.elapsed() > STUCK {
            return Err(format!(
                "the broker took nothing for {STUCK:?}; {total} event(s) forwarded, the rest stay spooled"
            ));
        } else {
            tokio::time::sleep(crate::spool::RETRY).await;
        }
        total += forwarded as u64;
    }
    Ok(total)
}
