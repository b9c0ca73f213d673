//! The spool against a real directory: order, group commit, rotation, restart, damaged tails.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::future::join_all;

use super::*;
use crate::sink::Message;

fn dir() -> PathBuf {
    std::env::temp_dir().join(format!("hookgate-spool-{}", uuid::Uuid::new_v4().simple()))
}

fn config(dir: &std::path::Path) -> SpoolConfig {
    SpoolConfig { dir: dir.to_owned(), max_bytes: 1 << 30, fsync: true, segment_bytes: 64 << 20 }
}

fn message(n: usize) -> Message {
    Message {
        routing_key: "src.push".into(),
        body: Bytes::from(format!("{{\"n\":{n}}}")),
        id: format!("id-{n}"),
        event_type: "push".into(),
        source: Arc::from("src"),
        provider: "github".into(),
        content_type: Some("application/json".into()),
        received_at: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        traceparent: None,
        quarantine: None,
    }
}

fn ids(batch: &[Spooled]) -> Vec<String> {
    batch.iter().map(|s| s.message.id.clone()).collect()
}

async fn append_all(spool: &Spool, range: std::ops::Range<usize>) {
    for n in range {
        spool.append(&message(n)).await.unwrap();
    }
}

/// Drains everything through `read_batch` + `ack`, returning ids in order.
fn drain_all(spool: &Spool) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        let batch = spool.read_batch(7).unwrap();
        let Some(end) = batch.last().map(|s| s.end) else { return seen };
        let bytes = batch.iter().map(|s| s.size).sum();
        spool.ack(end, batch.len() as u64, bytes).unwrap();
        seen.extend(ids(&batch));
    }
}

#[tokio::test]
async fn events_come_back_in_order_and_acked_segments_are_deleted() {
    let dir = dir();
    let mut small = config(&dir);
    small.segment_bytes = 200; // a few records per segment: rotation happens
    let (spool, _) = Spool::open(small).unwrap();
    append_all(&spool, 0..20).await;
    assert_eq!(spool.stats().events, 20);
    assert!(spool.stats().segments > 3, "{:?}", spool.stats());
    let expected: Vec<String> = (0..20).map(|n| format!("id-{n}")).collect();
    assert_eq!(drain_all(&spool), expected);
    assert_eq!(spool.stats().events, 0);
    assert_eq!(spool.stats().bytes, 0);
    let files = recover::segment_ids(&dir).unwrap();
    assert_eq!(files.len(), 1, "only the current segment remains: {files:?}");
}

#[tokio::test]
async fn concurrent_appends_share_syncs() {
    let dir = dir();
    let (spool, _) = Spool::open(config(&dir)).unwrap();
    let appends = (0..200).map(|n| {
        let spool = spool.clone();
        async move { spool.append(&message(n)).await }
    });
    let results = join_all(appends.map(tokio::spawn)).await;
    assert!(results.into_iter().all(|r| r.unwrap().is_ok()));
    let stats = spool.stats();
    assert_eq!(stats.events, 200);
    assert!(stats.batches < 200, "group commit: {} batches for 200 appends", stats.batches);
}

#[tokio::test]
async fn a_restart_keeps_undelivered_events_and_forgets_delivered_ones() {
    let dir = dir();
    {
        let (spool, _) = Spool::open(config(&dir)).unwrap();
        append_all(&spool, 0..5).await;
        let batch = spool.read_batch(2).unwrap();
        let bytes = batch.iter().map(|s| s.size).sum();
        spool.ack(batch[1].end, 2, bytes).unwrap();
    }
    let (spool, recovery) = Spool::open(config(&dir)).unwrap();
    assert_eq!(recovery.events, 3);
    assert!(recovery.cuts.is_empty());
    assert_eq!(ids(&spool.read_batch(10).unwrap()), ["id-2", "id-3", "id-4"]);
    // New events go after the old ones.
    append_all(&spool, 5..6).await;
    assert_eq!(ids(&spool.read_batch(10).unwrap()).last().map(String::as_str), Some("id-5"));
}

/// Writes `n` events, closes the spool, and returns the single segment's path.
async fn spool_with(dir: &std::path::Path, n: usize) -> PathBuf {
    let (spool, _) = Spool::open(config(dir)).unwrap();
    append_all(&spool, 0..n).await;
    drop(spool);
    let ids = recover::segment_ids(dir).unwrap();
    segment_path(dir, ids[0])
}

#[tokio::test]
async fn a_torn_tail_is_cut_off_kept_aside_and_reported() {
    let dir = dir();
    let segment = spool_with(&dir, 3).await;
    let full = std::fs::metadata(&segment).unwrap().len();
    // A crash in the middle of writing the third record.
    let file = std::fs::OpenOptions::new().write(true).open(&segment).unwrap();
    file.set_len(full - 5).unwrap();
    let (spool, recovery) = Spool::open(config(&dir)).unwrap();
    assert_eq!(recovery.events, 2);
    assert_eq!(recovery.cuts.len(), 1);
    let cut = &recovery.cuts[0];
    assert_eq!(cut.reason, "truncated record");
    assert_eq!(std::fs::read(&cut.kept_as).unwrap().len() as u64, cut.bytes);
    assert_eq!(ids(&spool.read_batch(10).unwrap()), ["id-0", "id-1"]);
    // Appends continue cleanly after the cut.
    append_all(&spool, 3..4).await;
    assert_eq!(ids(&spool.read_batch(10).unwrap()), ["id-0", "id-1", "id-3"]);
}

#[tokio::test]
async fn a_flipped_byte_cuts_out_only_the_damaged_record() {
    let dir = dir();
    let segment = spool_with(&dir, 3).await;
    let mut data = std::fs::read(&segment).unwrap();
    let record_len = data.len() / 3;
    data[record_len + record::HEADER + 3] ^= 0x01; // inside the second record's payload
    std::fs::write(&segment, &data).unwrap();
    let (spool, recovery) = Spool::open(config(&dir)).unwrap();
    // The good record after the damage is kept; the damaged one is set aside and reported.
    assert_eq!(recovery.events, 2);
    let cut = &recovery.cuts[0];
    assert_eq!(cut.reason, "checksum mismatch");
    assert_eq!(cut.offset as usize, record_len);
    assert_eq!(cut.bytes as usize, record_len);
    assert_eq!(std::fs::read(&cut.kept_as).unwrap(), data[record_len..2 * record_len]);
    assert_eq!(ids(&spool.read_batch(10).unwrap()), ["id-0", "id-2"]);
}

#[tokio::test]
async fn damage_behind_the_head_does_not_touch_undelivered_events() {
    let dir = dir();
    {
        let (spool, _) = Spool::open(config(&dir)).unwrap();
        append_all(&spool, 0..4).await;
        let batch = spool.read_batch(1).unwrap();
        spool.ack(batch[0].end, 1, batch[0].size).unwrap();
    }
    let segment = segment_path(&dir, recover::segment_ids(&dir).unwrap()[0]);
    let mut data = std::fs::read(&segment).unwrap();
    data[record::HEADER + 2] ^= 0x01; // inside the delivered first record
    std::fs::write(&segment, &data).unwrap();
    let (spool, recovery) = Spool::open(config(&dir)).unwrap();
    assert!(recovery.cuts.is_empty());
    assert_eq!(ids(&spool.read_batch(10).unwrap()), ["id-1", "id-2", "id-3"]);
}

#[tokio::test]
async fn a_head_pointing_at_a_vanished_segment_starts_over_cleanly() {
    let dir = dir();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("head"), "3 500\n").unwrap();
    let (spool, recovery) = Spool::open(config(&dir)).unwrap();
    assert_eq!(recovery.head.offset, 0);
    append_all(&spool, 0..2).await;
    assert_eq!(ids(&spool.read_batch(10).unwrap()), ["id-0", "id-1"]);
}

#[tokio::test]
async fn a_full_spool_refuses_and_one_process_owns_a_directory() {
    let dir = dir();
    let mut tiny = config(&dir);
    tiny.max_bytes = 150;
    let (spool, _) = Spool::open(tiny.clone()).unwrap();
    spool.append(&message(0)).await.unwrap();
    assert!(matches!(spool.append(&message(1)).await, Err(SpoolError::Full)));
    assert!(matches!(Spool::open(tiny), Err(SpoolError::Locked(_))));
}

#[tokio::test]
async fn a_record_the_broker_keeps_refusing_is_dead_lettered_and_the_rest_flow() {
    use crate::layers::test_support::FakePublisher;
    use crate::sink::PublishError;
    let dir = dir();
    let (spool, _) = Spool::open(config(&dir)).unwrap();
    append_all(&spool, 0..2).await;
    let publisher = FakePublisher::default();
    *publisher.failure.lock().unwrap() = Some(|| PublishError::Nacked);
    for _ in 1..5 {
        assert_eq!(drain::drain_once(&spool, &publisher).await.unwrap(), 0);
    }
    assert_eq!(drain::drain_once(&spool, &publisher).await.unwrap(), 1, "dead-lettered on the fifth refusal");
    let dead: Vec<_> = std::fs::read_dir(dir.join("dead")).unwrap().collect();
    assert_eq!(dead.len(), 1);
    *publisher.failure.lock().unwrap() = None;
    assert_eq!(drain::drain_once(&spool, &publisher).await.unwrap(), 1);
    assert_eq!(publisher.sent.lock().unwrap()[0].id, "id-1");
    assert_eq!(spool.stats().events, 0);
}
