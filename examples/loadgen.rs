//! Load generator for `scripts/bench`: sends signed GitHub-style deliveries (unique ids) to a
//! running hookgate and reports throughput, latency percentiles and status counts. While it runs,
//! it keeps a bounded queue bound to the exchange so every event is routable.
//!
//! `cargo run --release --example loadgen -- URL SECRET REQUESTS CONCURRENCY BODY_BYTES EXCHANGE`

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties, ExchangeKind};
use sha2::Sha256;
use tokio::time::Instant;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, secret, requests, concurrency, size, exchange, mode] = &args[..] else {
        eprintln!("usage: loadgen URL SECRET REQUESTS CONCURRENCY BODY_BYTES EXCHANGE broker|spool");
        std::process::exit(2);
    };
    let with_broker = mode == "broker";
    let requests: u64 = requests.parse().unwrap();
    let concurrency: u64 = concurrency.parse().unwrap();
    let size: usize = size.parse().unwrap();

    // A bounded queue catches what the gateway publishes, so every event is routable.
    let amqp = std::env::var("HOOKGATE_AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let queue = "hookgate-bench";
    let channel = if with_broker {
        let connection = Connection::connect(&amqp, ConnectionProperties::default()).await.unwrap();
        let channel = connection.create_channel().await.unwrap();
        // Declared by the gateway (with its alternate exchange): only check it exists.
        let passive = ExchangeDeclareOptions { passive: true, ..Default::default() };
        channel
            .exchange_declare(exchange.as_str().into(), ExchangeKind::Topic, passive, FieldTable::default())
            .await
            .unwrap();
        let mut args = FieldTable::default();
        args.insert("x-max-length".into(), AMQPValue::LongLongInt(10_000));
        channel.queue_declare(queue.into(), QueueDeclareOptions::default(), args).await.unwrap();
        channel
            .queue_bind(
                queue.into(),
                exchange.as_str().into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        Some((connection, channel))
    } else {
        None
    };
    let mut body = br#"{"ref":"refs/heads/main","pad":""#.to_vec();
    body.resize(size.saturating_sub(2).max(body.len()), b'x');
    body.extend_from_slice(br#""}"#);
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(&body);
    let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let body = Bytes::from(body);

    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let next = Arc::new(AtomicU64::new(0));
    let run = format!("{:x}", std::process::id());
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, next, url, signature, body, run) =
                (client.clone(), next.clone(), url.clone(), signature.clone(), body.clone(), run.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut statuses = BTreeMap::new();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= requests {
                        return (latencies, statuses);
                    }
                    let request = Request::post(&url)
                        .header("X-Hub-Signature-256", &signature)
                        .header("X-GitHub-Delivery", format!("{run}-{n}"))
                        .header("X-GitHub-Event", "push")
                        .header("Content-Type", "application/json")
                        .body(Full::new(body.clone()))
                        .unwrap();
                    let sent = Instant::now();
                    let status = match client.request(request).await {
                        Ok(response) => {
                            let status = response.status().as_u16();
                            let _ = response.into_body().collect().await;
                            status
                        }
                        Err(_) => 0,
                    };
                    latencies.push(sent.elapsed());
                    *statuses.entry(status).or_insert(0u64) += 1;
                }
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut statuses = BTreeMap::new();
    for worker in workers {
        let (l, s) = worker.await.unwrap();
        latencies.extend(l);
        for (k, v) in s {
            *statuses.entry(k).or_insert(0) += v;
        }
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "requests={requests} concurrency={concurrency} body={size}B elapsed={:.2}s throughput={:.0} req/s p50={:.2}ms p90={:.2}ms p99={:.2}ms max={:.2}ms statuses={statuses:?}",
        elapsed.as_secs_f64(),
        requests as f64 / elapsed.as_secs_f64(),
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.90).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        latencies.last().unwrap().as_secs_f64() * 1e3,
    );
    if let Some((_connection, channel)) = channel {
        let _ = channel.queue_delete(queue.into(), QueueDeleteOptions::default()).await;
    }
}
