//! Every metric hookgate exports: names, descriptions, buckets, and the functions that record
//! them. Labels come from a small fixed set (source names from the config, outcome codes);
//! never an event id or a raw path.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Requests by source and outcome (`accepted`, `duplicate`, or a rejection code).
pub const REQUESTS_TOTAL: &str = "hookgate_requests_total";
/// Time from request to response, by source.
pub const REQUEST_DURATION: &str = "hookgate_request_duration_seconds";
/// Time from publish to broker confirm.
pub const PUBLISH_DURATION: &str = "hookgate_publish_duration_seconds";
/// Duplicates answered without publishing, by source.
pub const DUPLICATES_TOTAL: &str = "hookgate_duplicates_total";
/// 1 when a broker connection is up.
pub const BROKER_CONNECTED: &str = "hookgate_broker_connected";
/// Messages the broker returned as unroutable, by source.
pub const UNROUTABLE_TOTAL: &str = "hookgate_unroutable_total";
/// Events in the spool not yet delivered to the broker.
pub const SPOOL_EVENTS: &str = "hookgate_spool_events";
/// Bytes of those events on disk.
pub const SPOOL_BYTES: &str = "hookgate_spool_bytes";
/// Age of the oldest undelivered spooled event.
pub const SPOOL_OLDEST_AGE: &str = "hookgate_spool_oldest_age_seconds";
/// Events written to the spool.
pub const SPOOLED_TOTAL: &str = "hookgate_spooled_events_total";
/// Spooled events delivered to the broker.
pub const DRAINED_TOTAL: &str = "hookgate_spool_drained_events_total";
/// Bytes of damaged spool tails cut off at start-up.
pub const SPOOL_CUT_BYTES: &str = "hookgate_spool_cut_bytes_total";
/// Spooled events the broker kept refusing, set aside in `dead/`.
pub const SPOOL_DEAD_LETTERS: &str = "hookgate_spool_dead_letters_total";
/// Handshakes answered, by source and handshake name.
pub const HANDSHAKES_TOTAL: &str = "hookgate_handshakes_total";

/// Latency buckets in seconds: sub-millisecond verification up to slow broker confirms.
const BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Installs the Prometheus recorder once per process and returns its handle.
pub fn install() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
                .expect("bucket list is non-empty")
                .build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder is installed, e.g. by an embedding test harness;
            // the handle then renders what this recorder saw, which is nothing, not a crash.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            handle
        })
        .clone()
}

fn describe() {
    describe_counter!(REQUESTS_TOTAL, "Webhook requests by source and outcome.");
    describe_histogram!(REQUEST_DURATION, metrics::Unit::Seconds, "Time to answer a webhook request.");
    describe_histogram!(PUBLISH_DURATION, metrics::Unit::Seconds, "Time from publish to broker confirm.");
    describe_counter!(DUPLICATES_TOTAL, "Duplicate events answered without publishing.");
    describe_gauge!(BROKER_CONNECTED, "1 when connected to the broker.");
    describe_counter!(UNROUTABLE_TOTAL, "Events the broker returned as unroutable.");
    describe_counter!(HANDSHAKES_TOTAL, "Provider handshakes answered.");
    describe_gauge!(SPOOL_EVENTS, "Events in the spool not yet delivered to the broker.");
    describe_gauge!(SPOOL_BYTES, metrics::Unit::Bytes, "Bytes of undelivered spooled events.");
    describe_gauge!(SPOOL_OLDEST_AGE, metrics::Unit::Seconds, "Age of the oldest undelivered spooled event.");
    describe_counter!(SPOOLED_TOTAL, "Events written to the spool.");
    describe_counter!(DRAINED_TOTAL, "Spooled events delivered to the broker.");
    describe_counter!(SPOOL_CUT_BYTES, "Bytes of damaged spool tails cut off at start-up.");
    describe_counter!(SPOOL_DEAD_LETTERS, "Spooled events the broker kept refusing, set aside in dead/.");
}

/// Counts a finished request.
pub fn request(source: &str, outcome: &'static str, elapsed: Duration) {
    counter!(REQUESTS_TOTAL, "source" => source.to_owned(), "outcome" => outcome).increment(1);
    histogram!(REQUEST_DURATION, "source" => source.to_owned()).record(elapsed.as_secs_f64());
}

/// Records a publish round-trip.
pub fn publish(elapsed: Duration) {
    histogram!(PUBLISH_DURATION).record(elapsed.as_secs_f64());
}

/// Counts a duplicate.
pub fn duplicate(source: &str) {
    counter!(DUPLICATES_TOTAL, "source" => source.to_owned()).increment(1);
}

/// Counts an unroutable return.
pub fn unroutable(source: &str) {
    counter!(UNROUTABLE_TOTAL, "source" => source.to_owned()).increment(1);
}

/// Counts a handshake.
pub fn handshake(source: &str, name: &str) {
    counter!(HANDSHAKES_TOTAL, "source" => source.to_owned(), "handshake" => name.to_owned()).increment(1);
}

/// Sets the broker gauge.
pub fn broker_connected(up: bool) {
    gauge!(BROKER_CONNECTED).set(if up { 1.0 } else { 0.0 });
}

/// Sets the spool gauges.
pub fn spool(events: u64, bytes: u64) {
    gauge!(SPOOL_EVENTS).set(events as f64);
    gauge!(SPOOL_BYTES).set(bytes as f64);
}

/// Sets the age of the oldest spooled event.
pub fn spool_oldest_age(age: Duration) {
    gauge!(SPOOL_OLDEST_AGE).set(age.as_secs_f64());
}

/// Counts events written to the spool.
pub fn spooled(events: u64) {
    counter!(SPOOLED_TOTAL).increment(events);
}

/// Counts spooled events delivered.
pub fn drained(events: u64) {
    counter!(DRAINED_TOTAL).increment(events);
}

/// Counts bytes cut off damaged spool tails.
pub fn spool_cut(bytes: u64) {
    counter!(SPOOL_CUT_BYTES).increment(bytes);
}

/// Counts a dead-lettered spool record.
pub fn spool_dead_letter() {
    counter!(SPOOL_DEAD_LETTERS).increment(1);
}
