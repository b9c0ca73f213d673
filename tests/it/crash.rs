//! Crash recovery: a hookgate process killed with SIGKILL mid-load loses no acknowledged event.
//!
//! The real binary runs as a child process against RabbitMQ behind a fault-injecting proxy, with a
//! spool (`fsync: true`, small segments so they rotate and get deleted). Each round starts the
//! process on the same spool, drives a bounded load of signed GitHub deliveries with unique ids,
//! cuts and restores the broker link at chosen response counts (so some events are published
//! directly and some are spooled), and SIGKILLs the process at a chosen response count with
//! requests in flight. Every id answered 202 is recorded. After the rounds the process is started
//! once more, left to drain, and the test queue (bound with `#` before the gateway ever ran) must
//! hold every recorded id. Duplicates are allowed (delivery is at least once) and counted.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hookgate::telemetry::metrics::{BROKER_CONNECTED, DRAINED_TOTAL, REQUESTS_TOTAL, SPOOL_EVENTS, SPOOLED_TOTAL};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use lapin::message::Delivery;
use lapin::options::{
    BasicGetOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::support::proxy::Proxy;
use crate::support::{amqp_url, sign, unique};

/// The source's signing secret.
const SECRET: &str = "gh-secret";
/// Concurrent senders.
const WORKERS: usize = 8;
/// Requests per round at most (the kill comes well before).
const PER_ROUND: usize = 150;
/// Longest wait for a started process to answer `/healthz` and connect to the broker.
const START: Duration = Duration::from_secs(15);
/// Longest wait, after the last restart, for every acknowledged event to reach the queue.
const DRAIN: Duration = Duration::from_secs(60);
/// Longest wait for a single HTTP exchange (a request in flight at the kill fails at once).
const REQUEST: Duration = Duration::from_secs(20);
/// Interval between polls of `/healthz`, `/metrics` and the queue.
const POLL: Duration = Duration::from_millis(20);

/// One round: whether to wait for the spool to empty before the load, and when, in responses
/// received, the broker link is cut and restored and the process is killed.
struct Plan {
    settle: bool,
    cut_at: Option<usize>,
    restore_at: Option<usize>,
    kill_at: usize,
}

/// Published directly, then spooled while the link is cut, killed soon after it is restored;
/// restarted on that backlog and killed while the drainer forwards it and new events join it;
/// published directly, then killed with the link cut (the backlog is on disk only); restarted on
/// that backlog, a short outage, and killed while new events join the backlog.
const PLANS: [Plan; 4] = [
    Plan { settle: true, cut_at: Some(20), restore_at: Some(45), kill_at: 60 },
    Plan { settle: false, cut_at: None, restore_at: None, kill_at: 40 },
    Plan { settle: true, cut_at: Some(30), restore_at: None, kill_at: 60 },
    Plan { settle: false, cut_at: Some(10), restore_at: Some(25), kill_at: 75 },
];

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// A free loopback port: bound, read, released.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).expect("bind an ephemeral port");
    listener.local_addr().expect("ephemeral port").port()
}

/// One HTTP exchange; `Err` when the connection fails, breaks or takes longer than [`REQUEST`].
async fn exchange(
    client: &HttpClient,
    method: Method,
    url: &str,
    headers: &[(&str, String)],
    body: Bytes,
) -> Result<(StatusCode, Bytes), String> {
    let mut request = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let request = request.body(Full::new(body)).map_err(|e| e.to_string())?;
    let exchange = async {
        let response = client.request(request).await.map_err(|e| format!("{e:?}"))?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(|e| format!("{e:?}"))?.to_bytes();
        Ok((parts.status, body))
    };
    tokio::time::timeout(REQUEST, exchange).await.unwrap_or_else(|_| Err(format!("no answer within {REQUEST:?}")))
}

/// The sum of a metric's samples whose line contains `filter` (`""`: all); 0 when absent.
fn metric(text: &str, name: &str, filter: &str) -> f64 {
    text.lines()
        .filter(|line| {
            line.strip_prefix(name).is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
                && line.contains(filter)
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The test's world: temp dir, config, proxy, and the number of processes started.
struct Harness {
    dir: PathBuf,
    config: PathBuf,
    spool: PathBuf,
    exchange: String,
    proxy: Proxy,
    starts: usize,
}

/// A running hookgate process.
struct Process {
    child: Child,
    base: String,
    admin: String,
    log: PathBuf,
    client: HttpClient,
}

impl Harness {
    async fn new() -> Self {
        let dir = std::env::temp_dir().join(unique("hookgate-crash"));
        std::fs::create_dir_all(&dir).unwrap();
        let proxy = Proxy::start("127.0.0.1:5672".parse().unwrap()).await;
        Self {
            config: dir.join("hookgate.yaml"),
            spool: dir.join("spool"),
            exchange: unique("hookgate-crash"),
            dir,
            proxy,
            starts: 0,
        }
    }

    /// Restores the broker link, writes a config with fresh ports, starts the binary and waits
    /// until it answers `/healthz` and is connected to the broker.
    async fn start(&mut self) -> Process {
        self.proxy.restore();
        let (listen, admin) = (free_port(), free_port());
        let root = env!("CARGO_MANIFEST_DIR");
        let yaml = format!(
            "listen: '127.0.0.1:{listen}'\n\
             admin_listen: '127.0.0.1:{admin}'\n\
             providers_dir: '{root}/providers'\n\
             schemas_dir: '{root}/schemas'\n\
             state_dir: '{dir}/state'\n\
             broker:\n  url: '{url}'\n  exchange: {exchange}\n  confirm_timeout: 1s\n\
             spool:\n  dir: '{spool}'\n  fsync: true\n  segment_size: 16KiB\n\
             sources:\n  - {{ name: gh, provider: github, secrets: [{SECRET}] }}\n",
            dir = self.dir.display(),
            url = self.proxy.amqp_url(),
            exchange = self.exchange,
            spool = self.spool.display(),
        );
        std::fs::write(&self.config, yaml).unwrap();
        let log = self.dir.join(format!("hookgate-{}.log", self.starts));
        self.starts += 1;
        let out = std::fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_hookgate"))
            .arg("serve")
            .arg("--config")
            .arg(&self.config)
            .env("RUST_LOG", "info,lapin=error")
            .env_remove("HOOKGATE_LOG_FORMAT")
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .kill_on_drop(true)
            .spawn()
            .expect("start the hookgate binary");
        let mut process = Process {
            child,
            base: format!("http://127.0.0.1:{listen}"),
            admin: format!("http://127.0.0.1:{admin}"),
            log,
            client: Client::builder(TokioExecutor::new()).build_http(),
        };
        process.wait_started().await;
        process
    }
}

impl Process {
    /// Polls `/healthz` until 200, then `/metrics` until the broker gauge is 1.
    async fn wait_started(&mut self) {
        let deadline = Instant::now() + START;
        let healthz = format!("{}/healthz", self.admin);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("hookgate exited during start-up ({status}); log:\n{}", self.log_text());
            }
            if let Ok((StatusCode::OK, _)) = self.get(&healthz).await {
                break;
            }
            assert!(Instant::now() < deadline, "/healthz not 200 within {START:?}; log:\n{}", self.log_text());
            tokio::time::sleep(POLL).await;
        }
        let connected = self.wait_metric(START, |text| metric(text, BROKER_CONNECTED, "") == 1.0).await;
        assert!(connected, "not connected to the broker within {START:?}; log:\n{}", self.log_text());
    }

    /// Polls `/metrics` until `done` holds or `timeout` passes; says whether it held.
    async fn wait_metric(&self, timeout: Duration, done: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(text) = self.metrics().await
                && done(&text)
            {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn get(&self, url: &str) -> Result<(StatusCode, Bytes), String> {
        exchange(&self.client, Method::GET, url, &[], Bytes::new()).await
    }

    /// The Prometheus text, if the admin listener answers.
    async fn metrics(&self) -> Option<String> {
        match self.get(&format!("{}/metrics", self.admin)).await {
            Ok((StatusCode::OK, body)) => Some(String::from_utf8_lossy(&body).into_owned()),
            _ => None,
        }
    }

    /// SIGKILL; asserts the process was still running and died of that signal.
    async fn kill(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("hookgate exited before the SIGKILL ({status}); log:\n{}", self.log_text());
        }
        self.child.start_kill().expect("send SIGKILL");
        let status = self.child.wait().await.expect("wait for the killed process");
        assert_eq!(status.signal(), Some(9), "hookgate did not die of SIGKILL: {status}");
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_else(|e| format!("({}: {e})", self.log.display()))
    }
}

/// What one request came to.
struct Outcome {
    id: String,
    result: Result<(StatusCode, Bytes), String>,
}

/// What a round saw.
#[derive(Default)]
struct Round {
    sent: usize,
    /// Ids answered 202.
    acknowledged: Vec<String>,
    /// 202s whose body was not `{"status":"accepted","id":<the id>}`.
    odd_acceptances: Vec<String>,
    /// Other statuses, counted.
    other: BTreeMap<u16, usize>,
    /// Transport errors while the process was up (should be none).
    errors_before_kill: Vec<String>,
    /// Requests in flight at (or sent after) the kill.
    errors_at_kill: usize,
    /// Undelivered events in the spool when the round's process started.
    backlog_at_start: u64,
    /// From `/metrics` just before the kill: requests answered 202 and events spooled by this
    /// process, spooled events it forwarded, and undelivered events in the spool.
    accepted: u64,
    spooled: u64,
    drained: u64,
    backlog_at_kill: u64,
}

impl Round {
    /// Events this process published directly (accepted but not spooled) up to the kill.
    fn direct(&self) -> u64 {
        self.accepted.saturating_sub(self.spooled)
    }
}

/// Sends signed deliveries with ids `{tag}-r{round}-{n}` until `PER_ROUND` are taken or `stop` is set.
async fn worker(
    client: HttpClient,
    url: String,
    tag: String,
    round: usize,
    next: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    outcomes: mpsc::UnboundedSender<Outcome>,
) {
    while !stop.load(Ordering::SeqCst) {
        let n = next.fetch_add(1, Ordering::SeqCst);
        if n >= PER_ROUND {
            break;
        }
        let id = format!("{tag}-r{round}-{n:03}");
        let body = serde_json::json!({ "zen": "Crash early, lose nothing.", "id": id, "pad": "x".repeat(256) });
        let body = Bytes::from(serde_json::to_vec(&body).unwrap());
        let headers = sign::github(SECRET, &id, "ping", &body);
        let result = exchange(&client, Method::POST, &url, &headers, body).await;
        if outcomes.send(Outcome { id, result }).is_err() {
            break;
        }
    }
}

/// Runs one round's load against `process`, cutting, restoring and killing as `plan` says.
async fn run_round(harness: &Harness, process: &mut Process, tag: &str, round: usize, plan: &Plan) -> Round {
    let mut report = Round::default();
    if let Some(text) = process.metrics().await {
        report.backlog_at_start = metric(&text, SPOOL_EVENTS, "") as u64;
    }
    if plan.settle {
        let empty = process.wait_metric(START, |text| metric(text, SPOOL_EVENTS, "") == 0.0).await;
        assert!(empty, "round {round}: the spool did not empty within {START:?}; log:\n{}", process.log_text());
    }
    let next = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, mut rx) = mpsc::unbounded_channel();
    // A fresh client: its pooled connections die with the process.
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let url = format!("{}/hooks/gh", process.base);
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            tokio::spawn(worker(
                client.clone(),
                url.clone(),
                tag.to_owned(),
                round,
                next.clone(),
                stop.clone(),
                tx.clone(),
            ))
        })
        .collect();
    drop(tx);
    let (mut responses, mut cut, mut restored, mut killed) = (0, false, false, false);
    while let Some(Outcome { id, result }) = rx.recv().await {
        report.sent += 1;
        match result {
            Ok((status, body)) => {
                responses += 1;
                if status == StatusCode::ACCEPTED {
                    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                    if json != serde_json::json!({ "status": "accepted", "id": id }) {
                        report.odd_acceptances.push(format!("{id}: {}", String::from_utf8_lossy(&body)));
                    }
                    report.acknowledged.push(id);
                } else {
                    *report.other.entry(status.as_u16()).or_default() += 1;
                }
            }
            Err(_) if killed => report.errors_at_kill += 1,
            Err(e) => report.errors_before_kill.push(format!("{id}: {e}")),
        }
        if killed {
            continue;
        }
        if !cut
            && let Some(at) = plan.cut_at
            && responses >= at
        {
            harness.proxy.cut();
            cut = true;
        }
        if cut
            && !restored
            && let Some(at) = plan.restore_at
            && responses >= at
        {
            harness.proxy.restore();
            restored = true;
        }
        if responses >= plan.kill_at {
            stop.store(true, Ordering::SeqCst);
            let taken = next.load(Ordering::SeqCst);
            assert!(
                taken < PER_ROUND,
                "round {round}: all {PER_ROUND} requests were sent before the kill at {} responses",
                plan.kill_at
            );
            if let Some(text) = process.metrics().await {
                report.accepted = metric(&text, REQUESTS_TOTAL, "outcome=\"accepted\"") as u64;
                report.spooled = metric(&text, SPOOLED_TOTAL, "") as u64;
                report.drained = metric(&text, DRAINED_TOTAL, "") as u64;
                report.backlog_at_kill = metric(&text, SPOOL_EVENTS, "") as u64;
            }
            process.kill().await;
            killed = true;
        }
    }
    for worker in workers {
        worker.await.unwrap();
    }
    assert!(
        killed,
        "round {round}: the load ended after {responses} responses, before the kill at {}; errors: {:?}",
        plan.kill_at, report.errors_before_kill
    );
    report
}

/// What the test queue held at the end.
#[derive(Default)]
struct Received {
    /// Id → copies.
    copies: HashMap<String, usize>,
    /// Messages whose body is not the one sent for their id, or that have no id.
    corrupt: Vec<String>,
}

impl Received {
    fn record(&mut self, delivery: &Delivery) {
        let Some(id) = delivery.properties.message_id().as_ref().map(|id| id.to_string()) else {
            self.corrupt.push(format!("no message_id: {:?}", String::from_utf8_lossy(&delivery.data)));
            return;
        };
        let body: serde_json::Value = serde_json::from_slice(&delivery.data).unwrap_or_default();
        if body["id"] != id.as_str() {
            self.corrupt.push(format!("{id}: body {:?}", String::from_utf8_lossy(&delivery.data)));
        }
        *self.copies.entry(id).or_default() += 1;
    }

    /// Takes what the queue holds now; returns whether anything was there.
    async fn sweep(&mut self, channel: &Channel, queue: &str) -> bool {
        let mut any = false;
        while let Some(message) =
            channel.basic_get(queue.into(), BasicGetOptions { no_ack: true }).await.expect("basic.get")
        {
            self.record(&message.delivery);
            any = true;
        }
        any
    }
}

/// Declares the gateway's topology and a queue bound with `#`, directly on RabbitMQ.
async fn capture(exchange: &str) -> (Connection, Channel, String) {
    let connection = Connection::connect(&amqp_url(), ConnectionProperties::default()).await.expect("RabbitMQ");
    let channel = connection.create_channel().await.unwrap();
    hookgate::sink::amqp::declare_topology(&channel, exchange).await.expect("declare the topology");
    let queue = format!("{exchange}.capture");
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions { exclusive: true, ..Default::default() },
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .queue_bind(
            queue.as_str().into(),
            exchange.into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    (connection, channel, queue)
}

/// Ready messages in a queue (0 if it cannot be inspected).
async fn ready(channel: &Channel, queue: &str) -> u32 {
    channel
        .queue_declare(queue.into(), QueueDeclareOptions { passive: true, ..Default::default() }, FieldTable::default())
        .await
        .map(|q| q.message_count())
        .unwrap_or(0)
}

/// Ids still undelivered in the spool directory (read only).
fn spooled_ids(dir: &Path) -> HashSet<String> {
    match hookgate::spool::recover::read_from(dir, None) {
        Ok((records, _)) => records.into_iter().map(|s| s.message.id).collect(),
        Err(e) => {
            eprintln!("crash: cannot read the spool {}: {e}", dir.display());
            HashSet::new()
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_events_survive_sigkill_and_restart() {
    let mut harness = Harness::new().await;
    let (connection, channel, queue) = capture(&harness.exchange).await;
    let tag = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();

    let mut rounds = Vec::new();
    for (round, plan) in PLANS.iter().enumerate() {
        let mut process = harness.start().await;
        let report = run_round(&harness, &mut process, &tag, round, plan).await;
        eprintln!(
            "crash: round {round}: spool backlog at start {}; sent {}, 202 {}, other statuses {:?}, failed at the kill {}, \
             failed before it {}; up to the kill this process accepted {} ({} published directly, {} spooled), \
             forwarded {} from the spool, left a backlog of {}",
            report.backlog_at_start,
            report.sent,
            report.acknowledged.len(),
            report.other,
            report.errors_at_kill,
            report.errors_before_kill.len(),
            report.accepted,
            report.direct(),
            report.spooled,
            report.drained,
            report.backlog_at_kill,
        );
        rounds.push(report);
    }

    // Restart on the same spool with the link restored; wait for every acknowledged id.
    let mut process = harness.start().await;
    let acknowledged: HashSet<String> = rounds.iter().flat_map(|r| r.acknowledged.iter().cloned()).collect();
    let mut received = Received::default();
    let deadline = Instant::now() + DRAIN;
    loop {
        if received.sweep(&channel, &queue).await {
            continue;
        }
        if acknowledged.iter().all(|id| received.copies.contains_key(id)) || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    // Let the spool empty (so late re-deliveries are counted too), stop the process, take the rest.
    let drained = process.wait_metric(Duration::from_secs(15), |text| metric(text, SPOOL_EVENTS, "") == 0.0).await;
    process.kill().await;
    received.sweep(&channel, &queue).await;
    let left_in_spool = spooled_ids(&harness.spool);
    let unroutable = ready(&channel, &hookgate::sink::amqp::unroutable_exchange(&harness.exchange)).await;

    let sent: usize = rounds.iter().map(|r| r.sent).sum();
    let acks: usize = rounds.iter().map(|r| r.acknowledged.len()).sum();
    let duplicates: usize = received.copies.values().filter(|n| **n > 1).count();
    let extra_copies: usize = received.copies.values().map(|n| n - 1).sum();
    let mut missing: Vec<&String> = acknowledged.iter().filter(|id| !received.copies.contains_key(*id)).collect();
    missing.sort();
    let unacknowledged = received.copies.keys().filter(|id| !acknowledged.contains(*id)).count();
    let sent_ids: HashSet<String> = (0..PLANS.len())
        .flat_map(|round| (0..PER_ROUND).map(move |n| (round, n)))
        .map(|(round, n)| format!("{tag}-r{round}-{n:03}"))
        .collect();
    let unknown: Vec<&String> = received.copies.keys().filter(|id| !sent_ids.contains(*id)).collect();
    eprintln!(
        "crash: rounds {}, requests sent {sent}, 202s {acks}, delivered distinct {}, duplicates {duplicates} \
         ({extra_copies} extra copies), missing {}, delivered without a 202 {unacknowledged}; \
         spool empty at the end: {drained}, left in spool {}, in {}.unroutable {unroutable}",
        rounds.len(),
        received.copies.len(),
        missing.len(),
        left_in_spool.len(),
        harness.exchange,
    );
    if !missing.is_empty() {
        let in_spool: Vec<&&String> = missing.iter().filter(|id| left_in_spool.contains(id.as_str())).collect();
        eprintln!(
            "crash: MISSING {missing:?}; of which still in the spool: {in_spool:?}; evidence kept in {}",
            harness.dir.display()
        );
    }

    // Clean up before asserting, except the evidence of a loss.
    for name in [
        queue.clone(),
        hookgate::sink::amqp::unroutable_exchange(&harness.exchange),
        hookgate::sink::amqp::quarantine_exchange(&harness.exchange),
    ] {
        let _ = channel.queue_delete(name.as_str().into(), QueueDeleteOptions::default()).await;
        let _ = channel.exchange_delete(name.as_str().into(), ExchangeDeleteOptions::default()).await;
    }
    let _ = channel.exchange_delete(harness.exchange.as_str().into(), ExchangeDeleteOptions::default()).await;
    let _ = connection.close(200, "done".into()).await;
    if missing.is_empty() {
        let _ = std::fs::remove_dir_all(&harness.dir);
    }

    for (round, report) in rounds.iter().enumerate() {
        assert!(
            report.errors_before_kill.is_empty(),
            "round {round}: requests failed while hookgate was up: {:?}",
            report.errors_before_kill
        );
        assert!(
            report.odd_acceptances.is_empty(),
            "round {round}: unexpected 202 bodies: {:?}",
            report.odd_acceptances
        );
    }
    assert!(rounds.iter().any(|r| r.errors_at_kill > 0), "no request was in flight at any of the kills");
    assert!(rounds.iter().any(|r| r.direct() > 0), "no event was published directly, so that path was not exercised");
    assert!(
        rounds.iter().any(|r| r.backlog_at_kill > 0),
        "no round was killed with events waiting in the spool, so the spool's recovery was not exercised"
    );
    assert!(received.corrupt.is_empty(), "messages not as sent: {:?}", received.corrupt);
    assert!(unknown.is_empty(), "messages with ids never sent: {unknown:?}");
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged events never reached the queue: {missing:?} (logs and spool in {})",
        missing.len(),
        acknowledged.len(),
        harness.dir.display()
    );
}
