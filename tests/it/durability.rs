//! Durability: spool-only mode, broker outages through a fault-injecting proxy, quarantine.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use lapin::{Connection, ConnectionProperties};
use tokio::sync::Mutex;

use crate::contract::amqp_header;
use crate::support::amqp::TestQueue;
use crate::support::http::post;
use crate::support::proxy::Proxy;
use crate::support::{Gateway, Options, amqp_url, sign, unique};

const GH: &str = "  - { name: gh, provider: github, secrets: [gh-secret] }\n";

fn temp(prefix: &str) -> PathBuf {
    std::env::temp_dir().join(unique(prefix))
}

/// Sends a signed GitHub event with id `id`; returns whether it got 202.
async fn send(gw: &Gateway, id: &str) -> bool {
    let body = format!("{{\"id\":\"{id}\"}}");
    let reply = post(&gw.hook("gh"), &sign::github("gh-secret", id, "push", body.as_bytes()), body).await;
    match reply.status.as_u16() {
        202 => true,
        503 => false,
        other => panic!("unexpected {other}: {:?}", reply.body),
    }
}

/// Reads `queue` until every id in `expected` was seen; returns how often each id arrived.
async fn collect(queue: &mut TestQueue, expected: &HashSet<String>) -> HashMap<String, usize> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    while !expected.iter().all(|id| seen.contains_key(id)) {
        let message = queue.next().await;
        let id = amqp_header(&message, "cloudEvents:id").expect("id header");
        *seen.entry(id).or_default() += 1;
    }
    seen
}

#[tokio::test]
async fn without_a_broker_events_are_spooled_and_spool_drain_delivers_them() {
    let dir = temp("hookgate-spool");
    let gw = Gateway::start_opts(GH, Options { broker: None, spool: Some(dir.clone()), ..Options::default() }).await;
    let ids: Vec<String> = (0..20).map(|n| format!("spooled-{n}")).collect();
    for id in &ids {
        assert!(send(&gw, id).await, "{id} refused without a broker");
    }
    assert_eq!(gw.spool().expect("spool").stats().events, 20);
    // Ready without a broker: the spool takes events.
    let ready = crate::support::http::send(http::Method::GET, &format!("{}/readyz", gw.admin_base), &[], "").await;
    assert_eq!(ready.status, 200);
    let metrics = crate::support::http::send(http::Method::GET, &format!("{}/metrics", gw.admin_base), &[], "").await;
    assert!(String::from_utf8_lossy(&metrics.body).contains("hookgate_spool_events"));
    gw.shutdown().await;

    // The operator later drains to a real broker: `hookgate spool drain`.
    let exchange = unique("hookgate-drain");
    let connection = Connection::connect(&amqp_url(), ConnectionProperties::default()).await.unwrap();
    let channel = connection.create_channel().await.unwrap();
    hookgate::sink::amqp::declare_topology(&channel, &exchange).await.unwrap();
    let mut queue = TestQueue::bind(&exchange, "#").await;
    let config = dir.with_extension("yaml");
    std::fs::write(
        &config,
        format!(
            "providers_dir: {root}/providers\nschemas_dir: {root}/schemas\nbroker: {{ url: '{url}', exchange: {exchange} }}\nspool: {{ dir: '{spool}' }}\nsources: []\n",
            root = env!("CARGO_MANIFEST_DIR"),
            url = amqp_url(),
            spool = dir.display()
        ),
    )
    .unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(["spool", "drain", "--config"])
        .arg(&config)
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "forwarded 20 event(s)");
    // In arrival order, each once.
    for id in &ids {
        let message = queue.next().await;
        assert_eq!(amqp_header(&message, "cloudEvents:id").as_deref(), Some(id.as_str()));
        assert_eq!(message.data, format!("{{\"id\":\"{id}\"}}").as_bytes());
    }
    let stats = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(["spool", "stats", "--config"])
        .arg(&config)
        .output()
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&stats.stdout).starts_with("events: 0\n"));
    queue.cleanup().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn every_acknowledged_event_survives_broker_cuts_and_stalls() {
    let proxy = Proxy::start("127.0.0.1:5672".parse().unwrap()).await;
    let dir = temp("hookgate-outage");
    let options = Options {
        broker: Some(proxy.amqp_url()),
        spool: Some(dir.clone()),
        confirm_timeout: "1s".into(),
        ..Options::default()
    };
    let gw = Arc::new(Gateway::start_opts(GH, options).await);
    let mut queue = TestQueue::bind(&gw.exchange, "#").await;

    // A bounded load: 8 workers, 400 requests. Faults are driven by how many answers came back.
    const TOTAL: usize = 400;
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let answered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let accepted = Arc::new(Mutex::new(HashSet::new()));
    let proxy = Arc::new(proxy);
    let workers = (0..8).map(|_| {
        let (gw, next, answered, accepted, proxy) =
            (gw.clone(), next.clone(), answered.clone(), accepted.clone(), proxy.clone());
        tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if n >= TOTAL {
                    return;
                }
                let id = format!("outage-{n}");
                if send(&gw, &id).await {
                    accepted.lock().await.insert(id);
                }
                match answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 {
                    60 => proxy.cut(),
                    140 => proxy.restore(),
                    220 => proxy.stall(),
                    300 => proxy.restore(),
                    _ => {}
                }
            }
        })
    });
    for worker in join_all(workers).await {
        worker.unwrap();
    }
    let accepted = accepted.lock().await.clone();
    let seen = tokio::time::timeout(Duration::from_secs(60), collect(&mut queue, &accepted))
        .await
        .expect("every acknowledged event delivered within 60 s");
    let missing = accepted.iter().filter(|id| !seen.contains_key(*id)).count();
    let duplicates: usize = seen.values().filter(|n| **n > 1).map(|n| n - 1).sum();
    eprintln!(
        "broker outage test: sent {TOTAL}, 202 {}, delivered {}, duplicates {duplicates}, missing {missing}",
        accepted.len(),
        seen.len()
    );
    assert_eq!(missing, 0);
    assert!(gw.spool().expect("spool").stats().batches > 0, "the outage sent events to the spool");
    assert!(accepted.len() > TOTAL / 2, "most requests are accepted through the outage: {}", accepted.len());
    queue.cleanup().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn schema_invalid_events_are_quarantined_and_replayed_after_a_schema_fix() {
    let strict = "  - { name: gh, provider: github, secrets: [gh-secret], on_invalid: quarantine, schemas: { push: github/push.json } }\n";
    let gw = Gateway::start(strict).await;
    let mut queue = TestQueue::bind(&gw.exchange, "#").await;
    let mut quarantine = TestQueue::existing(&gw.exchange, &format!("{}.quarantine", gw.exchange)).await;
    let body = br#"{"ref":"refs/heads/main"}"#;
    let reply = post(&gw.hook("gh"), &sign::github("gh-secret", "q-1", "push", body), &body[..]).await;
    assert_eq!(reply.json(), serde_json::json!({"status": "quarantined", "id": "q-1"}));
    let held = quarantine.next_unacked().await;
    assert_eq!(amqp_header(&held, "cloudEvents:id").as_deref(), Some("q-1"));
    let rejection: serde_json::Value =
        serde_json::from_str(&amqp_header(&held, "hookgate-rejection").expect("rejection header")).unwrap();
    assert_eq!(rejection, serde_json::json!({"reason": "schema_invalid", "pointer": ""}));
    // Put it back, as nobody consumed it; then replay with a fixed (looser) schema.
    held.nack(lapin::options::BasicNackOptions { requeue: true, ..Default::default() }).await.unwrap();
    drop(quarantine);

    let yaml = format!(
        "providers_dir: providers\nschemas_dir: schemas\nbroker: {{ url: '{}', exchange: {} }}\nsources:\n  - {{ name: gh, provider: github, secrets: [gh-secret], schemas: {{ push: github/envelope.json }} }}\n",
        amqp_url(),
        gw.exchange
    );
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let fixed =
        hookgate::config::load_str(&yaml, &root.join("replay.yaml"), &hookgate::config::interpolate::ProcessEnv)
            .unwrap();
    let mut options = hookgate::cli::quarantine::ReplayOptions {
        source: "gh".into(),
        event_type: Some("push".into()),
        since: None,
        rate: Some(100.0),
        dry_run: true,
    };
    let dry = hookgate::cli::quarantine::replay(&fixed, &options).await.unwrap();
    assert_eq!((dry.replayed, dry.still_invalid, dry.skipped), (1, 0, 0));
    options.dry_run = false;
    let done = hookgate::cli::quarantine::replay(&fixed, &options).await.unwrap();
    assert_eq!(done.replayed, 1);
    let replayed = queue.next().await;
    assert_eq!(amqp_header(&replayed, "cloudEvents:id").as_deref(), Some("q-1"));
    assert_eq!(amqp_header(&replayed, "hookgate-rejection"), None);
    assert_eq!(replayed.data, body);
    let again = hookgate::cli::quarantine::replay(&fixed, &options).await.unwrap();
    assert_eq!(again, hookgate::cli::quarantine::ReplayReport::default(), "the quarantine is now empty");
    queue.cleanup().await;
}
