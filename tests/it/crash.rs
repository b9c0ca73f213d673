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
//!
//! Graceful stop: the same set-up, a bounded load, the broker link stalled after a number of
//! answers, then a few probe requests sent with `Expect: 100-continue` (the gateway answers
//! `100 Continue` when its handler starts reading the body, so the test knows they are in flight;
//! their publishes come after the stall, so their confirms cannot come), then SIGTERM. The process
//! must stop accepting, finish the requests in flight (their events go to the spool when the
//! confirm times out), exit 0 within the drain bounds, and leave every acknowledged event either
//! in the queue or in the spool; a restart with the link restored must deliver them all.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hookgate::telemetry::metrics::{
    BROKER_CONNECTED, DRAINED_TOTAL, REQUESTS_TOTAL, SPOOL_CUT_BYTES, SPOOL_DEAD_LETTERS, SPOOL_EVENTS, SPOOLED_TOTAL,
};
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
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
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

/// Requests in the SIGTERM test at most (the signal comes well before).
const TERM_LOAD: usize = 120;
/// Answers after which the SIGTERM test stalls the broker link and sends SIGTERM.
const TERM_AT: usize = 40;
/// Requests the SIGTERM test has in the gateway's handler, publishing into the stalled link, at the signal.
const PROBES: usize = 4;
/// Longest wait for a graceful exit: the HTTP drain (30 s) and the drainer (10 s) bounds, plus margin.
const EXIT: Duration = Duration::from_secs(45);
/// Longest wait, after the restart in the SIGTERM test, for every acknowledged event to arrive.
const TERM_DRAIN: Duration = Duration::from_secs(20);

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// A free loopback port: bound, read, released.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).expect("bind an ephemeral port");
    listener.local_addr().expect("ephemeral port").port()
}

/// One HTTP request to `url` (not sent yet).
fn request(method: Method, url: &str, headers: &[(&str, String)], body: Bytes) -> Result<Request<Full<Bytes>>, String> {
    let mut request = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    request.body(Full::new(body)).map_err(|e| e.to_string())
}

/// One HTTP exchange; `Err` when the connection fails, breaks or takes longer than [`REQUEST`].
async fn exchange(
    client: &HttpClient,
    method: Method,
    url: &str,
    headers: &[(&str, String)],
    body: Bytes,
) -> Result<(StatusCode, Bytes), String> {
    let request = request(method, url, headers, body)?;
    let exchange = async {
        let response = client.request(request).await.map_err(|e| format!("{e:?}"))?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(|e| format!("{e:?}"))?.to_bytes();
        Ok((parts.status, body))
    };
    tokio::time::timeout(REQUEST, exchange).await.unwrap_or_else(|_| Err(format!("no answer within {REQUEST:?}")))
}

/// A signed delivery whose GitHub delivery id (and body `id`) is `id`: headers and body.
fn delivery(id: &str) -> (Vec<(&'static str, String)>, Bytes) {
    let body = serde_json::json!({ "zen": "Crash early, lose nothing.", "id": id, "pad": "x".repeat(256) });
    let body = Bytes::from(serde_json::to_vec(&body).unwrap());
    (sign::github(SECRET, id, "ping", &body), body)
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
    /// The public listener's address.
    listen: SocketAddr,
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
            listen: SocketAddr::from(([127, 0, 0, 1], listen)),
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
        self.metrics_until(timeout, done).await.is_some()
    }

    /// Polls `/metrics` until `done` holds or `timeout` passes; returns the text for which it held.
    async fn metrics_until(&self, timeout: Duration, done: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(text) = self.metrics().await
                && done(&text)
            {
                return Some(text);
            }
            if Instant::now() >= deadline {
                return None;
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

    /// Delivery figures from `/metrics` (all zero if the admin listener does not answer).
    async fn snapshot(&self) -> Snapshot {
        self.metrics().await.map(|text| Snapshot::parse(&text)).unwrap_or_default()
    }

    /// Panics, with the log, if the process has already exited.
    fn assert_running(&mut self, before: &str) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("hookgate exited before the {before} ({status}); log:\n{}", self.log_text());
        }
    }

    /// SIGKILL; asserts the process was still running and died of that signal.
    async fn kill(&mut self) {
        self.assert_running("SIGKILL");
        self.child.start_kill().expect("send SIGKILL");
        let status = self.child.wait().await.expect("wait for the killed process");
        assert_eq!(status.signal(), Some(9), "hookgate did not die of SIGKILL: {status}");
    }

    /// Sends SIGTERM (with `kill(1)`: no signal crate is a dependency); asserts the process was
    /// still running. Returns the instant the signal had been sent.
    async fn terminate(&mut self) -> Instant {
        self.assert_running("SIGTERM");
        let pid = self.child.id().expect("a running child has a pid").to_string();
        let kill = Command::new("kill").args(["-TERM", &pid]).status().await.expect("run kill(1)");
        assert!(kill.success(), "kill -TERM {pid} failed: {kill}");
        Instant::now()
    }

    /// Waits for the process to exit; panics, with the log, if it is still running after `timeout`.
    async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(status) => status.expect("wait for hookgate"),
            Err(_) => panic!("hookgate still running {timeout:?} after SIGTERM; log:\n{}", self.log_text()),
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_else(|e| format!("({}: {e})", self.log.display()))
    }
}

/// What a process's `/metrics` said at one moment.
#[derive(Default, Clone, Copy)]
struct Snapshot {
    /// Requests answered 202.
    accepted: u64,
    /// Events it wrote to the spool.
    spooled: u64,
    /// Spooled events it forwarded.
    drained: u64,
    /// Undelivered events in the spool.
    backlog: u64,
    /// Bytes of damaged spool tails cut off when it opened the spool.
    cut_bytes: u64,
    /// Spooled events set aside because the broker kept refusing them.
    dead_letters: u64,
}

impl Snapshot {
    fn parse(text: &str) -> Self {
        Snapshot {
            accepted: metric(text, REQUESTS_TOTAL, "outcome=\"accepted\"") as u64,
            spooled: metric(text, SPOOLED_TOTAL, "") as u64,
            drained: metric(text, DRAINED_TOTAL, "") as u64,
            backlog: metric(text, SPOOL_EVENTS, "") as u64,
            cut_bytes: metric(text, SPOOL_CUT_BYTES, "") as u64,
            dead_letters: metric(text, SPOOL_DEAD_LETTERS, "") as u64,
        }
    }

    /// Events published directly (accepted but not spooled).
    fn direct(&self) -> u64 {
        self.accepted.saturating_sub(self.spooled)
    }
}

/// What one request came to, and when its answer (or failure) came.
struct Outcome {
    id: String,
    result: Result<(StatusCode, Bytes), String>,
    at: Instant,
}

/// The answers to a load, split at an event (a kill, a SIGTERM).
#[derive(Default)]
struct Tally {
    sent: usize,
    /// Ids answered 202.
    acknowledged: Vec<String>,
    /// 202s whose body was not `{"status":"accepted","id":<the id>}`.
    odd_acceptances: Vec<String>,
    /// Other statuses, counted.
    other: BTreeMap<u16, usize>,
    /// Transport errors before the event (should be none).
    errors_before: Vec<String>,
    /// Requests that failed after the event (in flight at it or sent after it).
    errors_after: usize,
}

impl Tally {
    /// Records `outcome`; `after`: it came after the event. Returns whether it was an HTTP answer.
    fn record(&mut self, outcome: Outcome, after: bool) -> bool {
        let Outcome { id, result, .. } = outcome;
        self.sent += 1;
        match result {
            Ok((status, body)) => {
                if status == StatusCode::ACCEPTED {
                    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                    if json != serde_json::json!({ "status": "accepted", "id": id }) {
                        self.odd_acceptances.push(format!("{id}: {}", String::from_utf8_lossy(&body)));
                    }
                    self.acknowledged.push(id);
                } else {
                    *self.other.entry(status.as_u16()).or_default() += 1;
                }
                true
            }
            Err(_) if after => {
                self.errors_after += 1;
                false
            }
            Err(e) => {
                self.errors_before.push(format!("{id}: {e}"));
                false
            }
        }
    }
}

/// What a round saw.
#[derive(Default)]
struct Round {
    tally: Tally,
    /// Undelivered events in the spool when the round's process started.
    backlog_at_start: u64,
    /// From `/metrics` just before the kill.
    at_kill: Snapshot,
}

/// A bounded concurrent load: [`WORKERS`] senders share the ids `{prefix}-000` to `{prefix}-{limit - 1}`.
struct Load {
    next: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    outcomes: mpsc::UnboundedReceiver<Outcome>,
    workers: Vec<JoinHandle<()>>,
}

impl Load {
    /// Starts the workers against `{base}/hooks/gh`, with a fresh client (its pooled connections
    /// die with the process).
    fn start(base: &str, prefix: &str, limit: usize) -> Self {
        let next = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, outcomes) = mpsc::unbounded_channel();
        let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
        let url = format!("{base}/hooks/gh");
        let workers = (0..WORKERS)
            .map(|_| {
                tokio::spawn(worker(
                    client.clone(),
                    url.clone(),
                    prefix.to_owned(),
                    limit,
                    next.clone(),
                    stop.clone(),
                    tx.clone(),
                ))
            })
            .collect();
        Self { next, stop, outcomes, workers }
    }

    /// The next outcome; `None` once every worker has finished.
    async fn next(&mut self) -> Option<Outcome> {
        self.outcomes.recv().await
    }

    /// Tells the workers to start no new request; returns how many ids were taken so far.
    fn stop(&self) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        self.next.load(Ordering::SeqCst)
    }

    async fn join(self) {
        for worker in self.workers {
            worker.await.unwrap();
        }
    }
}

/// Sends signed deliveries with ids `{prefix}-{n}` until `limit` are taken or `stop` is set.
async fn worker(
    client: HttpClient,
    url: String,
    prefix: String,
    limit: usize,
    next: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    outcomes: mpsc::UnboundedSender<Outcome>,
) {
    while !stop.load(Ordering::SeqCst) {
        let n = next.fetch_add(1, Ordering::SeqCst);
        if n >= limit {
            break;
        }
        let id = format!("{prefix}-{n:03}");
        let (headers, body) = delivery(&id);
        let result = exchange(&client, Method::POST, &url, &headers, body).await;
        if outcomes.send(Outcome { id, result, at: Instant::now() }).is_err() {
            break;
        }
    }
}

/// Runs one round's load against `process`, cutting, restoring and killing as `plan` says.
async fn run_round(harness: &Harness, process: &mut Process, tag: &str, round: usize, plan: &Plan) -> Round {
    let mut report = Round { backlog_at_start: process.snapshot().await.backlog, ..Round::default() };
    if plan.settle {
        let empty = process.wait_metric(START, |text| metric(text, SPOOL_EVENTS, "") == 0.0).await;
        assert!(empty, "round {round}: the spool did not empty within {START:?}; log:\n{}", process.log_text());
    }
    let mut load = Load::start(&process.base, &format!("{tag}-r{round}"), PER_ROUND);
    let (mut responses, mut cut, mut restored, mut killed) = (0, false, false, false);
    while let Some(outcome) = load.next().await {
        if report.tally.record(outcome, killed) {
            responses += 1;
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
            let taken = load.stop();
            assert!(
                taken < PER_ROUND,
                "round {round}: all {PER_ROUND} requests were sent before the kill at {} responses",
                plan.kill_at
            );
            report.at_kill = process.snapshot().await;
            process.kill().await;
            killed = true;
        }
    }
    load.join().await;
    assert!(
        killed,
        "round {round}: the load ended after {responses} responses, before the kill at {}; errors: {:?}",
        plan.kill_at, report.tally.errors_before
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

    /// Sweeps until every id in `expected` has arrived or `timeout` passes.
    async fn sweep_until(&mut self, channel: &Channel, queue: &str, expected: &HashSet<String>, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.sweep(channel, queue).await {
                continue;
            }
            if expected.iter().all(|id| self.copies.contains_key(id)) || Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Ids that arrived more than once, and the copies beyond the first.
    fn duplicates(&self) -> (usize, usize) {
        (self.copies.values().filter(|n| **n > 1).count(), self.copies.values().map(|n| n - 1).sum())
    }

    /// Ids of `expected` that never arrived, sorted.
    fn missing<'a>(&self, expected: &'a HashSet<String>) -> Vec<&'a String> {
        let mut missing: Vec<&String> = expected.iter().filter(|id| !self.copies.contains_key(*id)).collect();
        missing.sort();
        missing
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

/// Deletes the test's queues and exchanges and closes the connection; removes the temp dir
/// (logs, spool) unless it is to be `kept` as evidence.
async fn clean_up(harness: &Harness, connection: &Connection, channel: &Channel, queue: &str, kept: bool) {
    for name in [
        queue.to_owned(),
        hookgate::sink::amqp::unroutable_exchange(&harness.exchange),
        hookgate::sink::amqp::quarantine_exchange(&harness.exchange),
    ] {
        let _ = channel.queue_delete(name.as_str().into(), QueueDeleteOptions::default()).await;
        let _ = channel.exchange_delete(name.as_str().into(), ExchangeDeleteOptions::default()).await;
    }
    let _ = channel.exchange_delete(harness.exchange.as_str().into(), ExchangeDeleteOptions::default()).await;
    let _ = connection.close(200, "done".into()).await;
    if !kept {
        let _ = std::fs::remove_dir_all(&harness.dir);
    }
}

/// Ready messages in a queue (0 if it cannot be inspected).
async fn ready(channel: &Channel, queue: &str) -> u32 {
    channel
        .queue_declare(queue.into(), QueueDeclareOptions { passive: true, ..Default::default() }, FieldTable::default())
        .await
        .map(|q| q.message_count())
        .unwrap_or(0)
}

/// Ids still undelivered in the spool directory (read only), one entry per record, and where
/// reading stopped at an unreadable record, if it did.
fn read_spool(dir: &Path) -> std::io::Result<(Vec<String>, Option<String>)> {
    let (records, damage) = hookgate::spool::recover::read_from(dir, None)?;
    Ok((records.into_iter().map(|record| record.message.id).collect(), damage))
}

/// As [`read_spool`], as a set; empty (with a note) if the spool cannot be read.
fn spooled_ids(dir: &Path) -> HashSet<String> {
    match read_spool(dir) {
        Ok((ids, damage)) => {
            if let Some(damage) = damage {
                eprintln!("crash: reading the spool {} stopped at an {damage}", dir.display());
            }
            ids.into_iter().collect()
        }
        Err(e) => {
            eprintln!("crash: cannot read the spool {}: {e}", dir.display());
            HashSet::new()
        }
    }
}

/// Polls `addr` until a connection is refused; returns when that was seen, `None` after `timeout`.
async fn refused(addr: SocketAddr, timeout: Duration) -> Option<Instant> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Err(e) = tokio::net::TcpStream::connect(addr).await
            && e.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return Some(Instant::now());
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// A webhook sent by hand over HTTP/1.1 with `Expect: 100-continue`: the gateway answers
/// `100 Continue` only when its handler starts reading the body, so once [`Probe::open`] returns
/// the request is in flight inside the gateway (which a pooled client cannot tell).
struct Probe {
    id: String,
    stream: TcpStream,
    body: Bytes,
}

impl Probe {
    /// Connects, sends the head and waits for `100 Continue`.
    async fn open(addr: SocketAddr, id: String) -> Result<Self, String> {
        let (headers, body) = delivery(&id);
        let open = async {
            let mut stream = TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
            let mut head = format!(
                "POST /hooks/gh HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\
                 Connection: close\r\n",
                body.len()
            );
            for (name, value) in &headers {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
            head.push_str("\r\n");
            stream.write_all(head.as_bytes()).await.map_err(|e| format!("send the head: {e}"))?;
            // Byte by byte, so nothing after the interim response is consumed.
            let mut interim = Vec::new();
            while !interim.ends_with(b"\r\n\r\n") {
                let byte = stream.read_u8().await.map_err(|e| format!("read the interim response: {e}"))?;
                interim.push(byte);
            }
            if !interim.starts_with(b"HTTP/1.1 100 ") {
                return Err(format!("expected 100 Continue, got {:?}", String::from_utf8_lossy(&interim)));
            }
            Ok(stream)
        };
        let stream = tokio::time::timeout(REQUEST, open)
            .await
            .unwrap_or_else(|_| Err(format!("no 100 Continue within {REQUEST:?}")))?;
        Ok(Self { id, stream, body })
    }

    /// Sends the body.
    async fn send_body(&mut self) -> Result<(), String> {
        self.stream.write_all(&self.body).await.map_err(|e| format!("send the body: {e}"))
    }

    /// Reads the final answer (the connection closes after it).
    async fn answer(mut self) -> Outcome {
        let read = async {
            let mut raw = Vec::new();
            self.stream.read_to_end(&mut raw).await.map_err(|e| format!("read the answer: {e}"))?;
            let end = raw
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .ok_or_else(|| format!("incomplete answer: {:?}", String::from_utf8_lossy(&raw)))?;
            let head = String::from_utf8_lossy(&raw[..end]);
            let status = head
                .split(' ')
                .nth(1)
                .and_then(|code| StatusCode::from_bytes(code.as_bytes()).ok())
                .ok_or_else(|| format!("no status in {head:?}"))?;
            Ok((status, Bytes::copy_from_slice(&raw[end + 4..])))
        };
        let result =
            tokio::time::timeout(REQUEST, read).await.unwrap_or_else(|_| Err(format!("no answer within {REQUEST:?}")));
        Outcome { id: self.id, result, at: Instant::now() }
    }
}

/// A short random tag so ids are unique across runs.
fn tag() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_events_survive_sigkill_and_restart() {
    let mut harness = Harness::new().await;
    let (connection, channel, queue) = capture(&harness.exchange).await;
    let tag = tag();

    let mut rounds = Vec::new();
    for (round, plan) in PLANS.iter().enumerate() {
        let mut process = harness.start().await;
        let report = run_round(&harness, &mut process, &tag, round, plan).await;
        eprintln!(
            "crash: round {round}: spool backlog at start {}; sent {}, 202 {}, other statuses {:?}, failed at the kill {}, \
             failed before it {}; up to the kill this process accepted {} ({} published directly, {} spooled), \
             forwarded {} from the spool, left a backlog of {}",
            report.backlog_at_start,
            report.tally.sent,
            report.tally.acknowledged.len(),
            report.tally.other,
            report.tally.errors_after,
            report.tally.errors_before.len(),
            report.at_kill.accepted,
            report.at_kill.direct(),
            report.at_kill.spooled,
            report.at_kill.drained,
            report.at_kill.backlog,
        );
        rounds.push(report);
    }

    // Restart on the same spool with the link restored; wait for every acknowledged id.
    let mut process = harness.start().await;
    let acknowledged: HashSet<String> = rounds.iter().flat_map(|r| r.tally.acknowledged.iter().cloned()).collect();
    let mut received = Received::default();
    received.sweep_until(&channel, &queue, &acknowledged, DRAIN).await;
    // Let the spool empty (so late re-deliveries are counted too), stop the process, take the rest.
    let drained = process.wait_metric(Duration::from_secs(15), |text| metric(text, SPOOL_EVENTS, "") == 0.0).await;
    process.kill().await;
    received.sweep(&channel, &queue).await;
    let left_in_spool = spooled_ids(&harness.spool);
    let unroutable = ready(&channel, &hookgate::sink::amqp::unroutable_exchange(&harness.exchange)).await;

    let sent: usize = rounds.iter().map(|r| r.tally.sent).sum();
    let acks: usize = rounds.iter().map(|r| r.tally.acknowledged.len()).sum();
    let (duplicates, extra_copies) = received.duplicates();
    let missing = received.missing(&acknowledged);
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
    clean_up(&harness, &connection, &channel, &queue, !missing.is_empty()).await;

    for (round, report) in rounds.iter().enumerate() {
        assert!(
            report.tally.errors_before.is_empty(),
            "round {round}: requests failed while hookgate was up: {:?}",
            report.tally.errors_before
        );
        assert!(
            report.tally.odd_acceptances.is_empty(),
            "round {round}: unexpected 202 bodies: {:?}",
            report.tally.odd_acceptances
        );
    }
    assert!(rounds.iter().any(|r| r.tally.errors_after > 0), "no request was in flight at any of the kills");
    assert!(
        rounds.iter().any(|r| r.at_kill.direct() > 0),
        "no event was published directly, so that path was not exercised"
    );
    assert!(
        rounds.iter().any(|r| r.at_kill.backlog > 0),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_finishes_in_flight_requests_and_keeps_the_unconfirmed_in_the_spool() {
    let mut harness = Harness::new().await;
    let (connection, channel, queue) = capture(&harness.exchange).await;
    let prefix = format!("{}-term", tag());
    let probe_ids: Vec<String> = (0..PROBES).map(|n| format!("{prefix}-p{n}")).collect();

    // Load; after TERM_AT answers stall the link, start no more load requests, get the probes
    // into the handler (their publishes come after the stall: no confirm can come), SIGTERM, and
    // watch the public port for refusals.
    let mut process = harness.start().await;
    let mut load = Load::start(&process.base, &prefix, TERM_LOAD);
    let mut tally = Tally::default();
    let (mut responses, mut before_stall, mut signalled) = (0, Snapshot::default(), None::<Instant>);
    let (mut refusal, mut probes) = (None, Vec::new());
    // Load requests answered 202 after the signal (in flight at it, their confirm already on its way or stalled).
    let mut load_finished_after = 0;
    while let Some(outcome) = load.next().await {
        let after = signalled.is_some_and(|at| outcome.at > at);
        if after && matches!(outcome.result, Ok((StatusCode::ACCEPTED, _))) {
            load_finished_after += 1;
        }
        if tally.record(outcome, after) {
            responses += 1;
        }
        if signalled.is_none() && responses >= TERM_AT {
            before_stall = process.snapshot().await;
            harness.proxy.stall();
            let taken = load.stop();
            assert!(taken < TERM_LOAD, "all {TERM_LOAD} requests were sent before the SIGTERM at {TERM_AT} answers");
            let mut opened = Vec::new();
            for id in &probe_ids {
                let probe = Probe::open(process.listen, id.clone()).await;
                opened.push(probe.unwrap_or_else(|e| panic!("probe {id}: {e}; log:\n{}", process.log_text())));
            }
            for probe in &mut opened {
                probe.send_body().await.unwrap_or_else(|e| panic!("probe {}: {e}", probe.id));
            }
            signalled = Some(process.terminate().await);
            refusal = Some(tokio::spawn(refused(process.listen, EXIT)));
            probes = opened.into_iter().map(|probe| tokio::spawn(probe.answer())).collect();
        }
    }
    load.join().await;
    let signalled = signalled.unwrap_or_else(|| {
        panic!(
            "the load ended after {responses} answers, before the SIGTERM at {TERM_AT}; errors: {:?}",
            tally.errors_before
        )
    });
    let (mut probe_problems, mut last_probe_answer) = (Vec::new(), signalled);
    for probe in probes {
        let outcome = probe.await.unwrap();
        match &outcome.result {
            Ok((StatusCode::ACCEPTED, _)) => last_probe_answer = last_probe_answer.max(outcome.at),
            Ok((status, body)) => {
                probe_problems.push(format!("{}: {status} {}", outcome.id, String::from_utf8_lossy(body)))
            }
            Err(e) => probe_problems.push(format!("{}: {e}", outcome.id)),
        }
        tally.record(outcome, true);
    }
    let status = process.wait_exit(EXIT).await;
    let stopped_in = signalled.elapsed();
    let refused_at = refusal.expect("spawned with the signal").await.unwrap();
    // A request after the exit must not get as far as a connection.
    let late = Client::builder(TokioExecutor::new())
        .build_http::<Full<Bytes>>()
        .request({
            let (headers, body) = delivery(&format!("{prefix}-late"));
            request(Method::POST, &format!("{}/hooks/gh", process.base), &headers, body).unwrap()
        })
        .await;
    let late = match late {
        Ok(response) => Err(format!("answered {}", response.status())),
        Err(e) if e.is_connect() => Ok(()),
        Err(e) => Err(format!("failed, but not to connect: {e:?}")),
    };

    // With the link still stalled: what reached the queue, what the spool keeps.
    let mut received = Received::default();
    received.sweep(&channel, &queue).await;
    let in_queue: HashSet<String> = received.copies.keys().cloned().collect();
    let (spool_records, spool_damage) = read_spool(&harness.spool).expect("read the spool after the exit");
    let in_spool: HashSet<String> = spool_records.iter().cloned().collect();
    let acknowledged: HashSet<String> = tally.acknowledged.iter().cloned().collect();
    let mut unaccounted: Vec<&String> =
        acknowledged.iter().filter(|id| !in_queue.contains(*id) && !in_spool.contains(*id)).collect();
    unaccounted.sort();
    let only_in_spool = acknowledged.iter().filter(|id| in_spool.contains(*id) && !in_queue.contains(*id)).count();
    let in_both = acknowledged.iter().filter(|id| in_spool.contains(*id) && in_queue.contains(*id)).count();
    let probes_not_spooled: Vec<&String> = probe_ids.iter().filter(|id| !in_spool.contains(*id)).collect();
    let probes_in_queue: Vec<&String> = probe_ids.iter().filter(|id| in_queue.contains(*id)).collect();

    // Restart with the link restored: everything acknowledged must arrive.
    let mut process = harness.start().await;
    received.sweep_until(&channel, &queue, &acknowledged, TERM_DRAIN).await;
    // The drainer counts a batch after it has moved the spool's head (and the gauge) past it: wait
    // for both, then compare what was forwarded with what the spool held.
    let forwarded = process
        .metrics_until(START, |text| {
            let now = Snapshot::parse(text);
            now.backlog == 0 && now.drained >= spool_records.len() as u64
        })
        .await;
    let emptied = forwarded.is_some();
    let restarted = match &forwarded {
        Some(text) => Snapshot::parse(text),
        None => process.snapshot().await,
    };
    process.terminate().await;
    let restart_status = process.wait_exit(EXIT).await;
    received.sweep(&channel, &queue).await;
    let (duplicates, extra_copies) = received.duplicates();
    let missing = received.missing(&acknowledged);
    let sent_ids: HashSet<String> =
        (0..TERM_LOAD).map(|n| format!("{prefix}-{n:03}")).chain(probe_ids.iter().cloned()).collect();
    let unknown: Vec<&String> = received.copies.keys().filter(|id| !sent_ids.contains(*id)).collect();

    eprintln!(
        "crash: SIGTERM: sent {} ({PROBES} probes), 202 {} (probes {}, load requests answered after the \
         signal {load_finished_after}), other statuses {:?}, failed after the signal {}, failed before it {}; \
         before the stall this process accepted {} ({} published directly, {} spooled); ended ({status}) \
         {stopped_in:?} after the signal, new connections refused {:?} after it, last probe answered {:?} after \
         it; at the exit {} acknowledged in the queue, {} only in the spool ({} in both), spool records {} \
         (stopped at damage: {:?}), unaccounted {}",
        tally.sent,
        tally.acknowledged.len(),
        PROBES - probe_problems.len(),
        tally.other,
        tally.errors_after,
        tally.errors_before.len(),
        before_stall.accepted,
        before_stall.direct(),
        before_stall.spooled,
        refused_at.map(|at| at - signalled),
        last_probe_answer - signalled,
        in_queue.intersection(&acknowledged).count(),
        only_in_spool,
        in_both,
        spool_records.len(),
        spool_damage,
        unaccounted.len(),
    );
    eprintln!(
        "crash: SIGTERM restart: forwarded {} from the spool, cut {} bytes, dead-lettered {}, spool emptied and \
         forwarded: {emptied}, ended ({restart_status}); delivered distinct {}, duplicates {duplicates} \
         ({extra_copies} extra copies), missing {}",
        restarted.drained,
        restarted.cut_bytes,
        restarted.dead_letters,
        received.copies.len(),
        missing.len(),
    );
    let lost = !unaccounted.is_empty() || !missing.is_empty();
    if lost {
        eprintln!(
            "crash: SIGTERM: UNACCOUNTED at the exit {unaccounted:?}; MISSING after the restart {missing:?}; evidence \
             kept in {}",
            harness.dir.display()
        );
    }
    clean_up(&harness, &connection, &channel, &queue, lost).await;

    assert!(tally.errors_before.is_empty(), "requests failed before the SIGTERM: {:?}", tally.errors_before);
    assert!(tally.odd_acceptances.is_empty(), "unexpected 202 bodies: {:?}", tally.odd_acceptances);
    assert!(tally.other.keys().all(|status| *status == 503), "answers other than 202 and 503: {:?}", tally.other);
    assert!(before_stall.direct() > 0, "no event was published directly before the stall");
    assert!(probe_problems.is_empty(), "requests in flight at the SIGTERM not answered 202: {probe_problems:?}");
    assert_eq!(status.code(), Some(0), "hookgate did not exit 0 after SIGTERM: {status}");
    let refused_at =
        refused_at.unwrap_or_else(|| panic!("{} still accepted connections after the SIGTERM", process.listen));
    assert!(
        refused_at < last_probe_answer,
        "new connections were not refused while requests were in flight: refused {:?} after the signal, last \
         in-flight answer {:?} after it",
        refused_at - signalled,
        last_probe_answer - signalled
    );
    assert_eq!(late, Ok(()), "a request after the exit");
    assert!(
        probes_in_queue.is_empty(),
        "events published after the stall reached the queue, so the link was not stalled: {probes_in_queue:?}"
    );
    assert!(
        probes_not_spooled.is_empty(),
        "acknowledged events whose confirm never came were not kept in the spool: {probes_not_spooled:?}"
    );
    assert!(
        unaccounted.is_empty(),
        "{} acknowledged events were neither in the queue nor in the spool after the SIGTERM: {unaccounted:?} \
         (logs and spool in {})",
        unaccounted.len(),
        harness.dir.display()
    );
    assert_eq!(spool_damage, None, "the spool left by a graceful stop has an unreadable record");
    assert_eq!(restarted.cut_bytes, 0, "the spool left by a graceful stop had a damaged tail");
    assert_eq!(restarted.dead_letters, 0, "spooled events were dead-lettered instead of forwarded");
    assert!(
        emptied,
        "within {START:?} of the restart the spool did not empty or fewer than the {} events it held were forwarded",
        spool_records.len()
    );
    assert_eq!(
        restarted.drained,
        spool_records.len() as u64,
        "the restart forwarded a different number of events than the spool held at the exit"
    );
    assert_eq!(restart_status.code(), Some(0), "the restarted hookgate did not exit 0 after SIGTERM");
    assert!(received.corrupt.is_empty(), "messages not as sent: {:?}", received.corrupt);
    assert!(unknown.is_empty(), "messages with ids never sent: {unknown:?}");
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged events never reached the queue after the restart: {missing:?} (logs and spool in {})",
        missing.len(),
        acknowledged.len(),
        harness.dir.display()
    );
}
