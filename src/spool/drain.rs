//! The drainer: forwards spooled events to the broker in the order they arrived, a batch at a
//! time with pipelined publisher confirms, and advances the spool's head over the confirmed
//! prefix. Whatever is not confirmed stays in the spool and is retried.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{RETRY, Spool};
use crate::sink::{PublishError, Publisher};
use crate::telemetry::metrics;

/// Times the broker may refuse the first spooled record before it is dead-lettered.
const MAX_REFUSALS: u32 = 5;
/// Records forwarded per batch; their confirms are awaited together.
const BATCH: usize = 256;
/// How often an idle drainer looks again (the broker may have come back).
const IDLE: Duration = Duration::from_millis(200);

/// Drains until `stop` turns true.
pub async fn run(spool: Arc<Spool>, publisher: Arc<dyn Publisher>, mut stop: watch::Receiver<bool>) {
    loop {
        if *stop.borrow() {
            return;
        }
        let forwarded = match drain_once(&spool, publisher.as_ref()).await {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "Spool drain failed; retrying.");
                0
            }
        };
        if forwarded == 0 {
            let wait = if spool.stats().events > 0 { RETRY } else { IDLE };
            tokio::select! {
                _ = stop.changed() => {}
                () = spool.appended() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// Forwards one batch if the broker is ready; returns how many were confirmed.
pub async fn drain_once(spool: &Spool, publisher: &dyn Publisher) -> Result<usize, super::SpoolError> {
    if spool.stats().events == 0 {
        metrics::spool_oldest_age(Duration::ZERO);
        return Ok(0);
    }
    if !publisher.is_ready() {
        return Ok(0);
    }
    let batch = spool.read_batch(BATCH)?;
    if let Some(first) = batch.first() {
        metrics::spool_oldest_age(super::record::age(&first.message));
    }
    let results = publisher.publish_batch(batch.iter().map(|s| &s.message).collect()).await;
    let confirmed = results.iter().take_while(|r| r.is_ok()).count();
    if let Some(Err(e)) = results.get(confirmed) {
        tracing::warn!(error = %e, confirmed, "Broker refused part of a spool batch; it stays spooled.");
        // A record the broker refuses for what it is, not for being away, would block every
        // record behind it: after a few tries it is set aside (dead-lettered) and reported.
        let permanent = matches!(e, PublishError::Nacked | PublishError::Unroutable(_) | PublishError::Invalid(_));
        if confirmed == 0 && permanent && spool.refused(batch[0].end) >= MAX_REFUSALS {
            spool.dead_letter(&batch[0])?;
            return Ok(1);
        }
    }
    if confirmed > 0 {
        let bytes: u64 = batch[..confirmed].iter().map(|s| s.size).sum();
        spool.ack(batch[confirmed - 1].end, confirmed as u64, bytes)?;
        metrics::drained(confirmed as u64);
    }
    Ok(confirmed)
}
