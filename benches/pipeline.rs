//! CPU cost of the pipeline, in process: signature verification per scheme, and a whole request
//! through the middleware stack with a publisher that confirms at once (the broker's share is
//! measured by `scripts/bench` against the real RabbitMQ).
//!
//! Run: `cargo bench --bench pipeline`.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use hmac::{Hmac, Mac};
use hookgate::config::interpolate::ProcessEnv;
use hookgate::providers::Provider;
use hookgate::providers::VerifyContext;
use hookgate::providers::request::RequestView;
use hookgate::sink::delivery::Delivery;
use hookgate::sink::{Message, PublishError, Publisher};
use hookgate::{AppState, config};
use http::{HeaderMap, Request};
use sha2::Sha256;
use tower::ServiceExt;

fn hex_hmac(key: &[u8], parts: &[&[u8]]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    for p in parts {
        mac.update(p);
    }
    hex::encode(mac.finalize().into_bytes())
}

fn payload(size: usize) -> Vec<u8> {
    let mut body = br#"{"id":"evt_1","type":"invoice.paid","pad":""#.to_vec();
    body.resize(size - 2, b'x');
    body.extend_from_slice(br#""}"#);
    body
}

fn verification(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("providers");
    let now = SystemTime::now();
    let t = now.duration_since(UNIX_EPOCH).unwrap().as_secs().to_string();
    let mut group = c.benchmark_group("verify");
    for size in [1024, 64 * 1024] {
        let body = payload(size);
        group.throughput(Throughput::Bytes(size as u64));

        let github = Provider::load(&dir, "github").unwrap();
        let keys = github.decode_secrets(&[config::secret::Secret::new("s3cret")]).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-hub-signature-256", format!("sha256={}", hex_hmac(b"s3cret", &[&body])).parse().unwrap());
        group.bench_function(format!("github/{size}B"), |b| {
            b.iter(|| {
                let view = RequestView::post(&headers, &body);
                black_box(github.verify(&view, &keys, VerifyContext::default(), now)).unwrap();
            })
        });

        let stripe = Provider::load(&dir, "stripe").unwrap();
        let keys = stripe.decode_secrets(&[config::secret::Secret::new("whsec_x")]).unwrap();
        let mut headers = HeaderMap::new();
        let sig = hex_hmac(b"whsec_x", &[t.as_bytes(), b".", &body]);
        headers.insert("stripe-signature", format!("t={t},v1={sig}").parse().unwrap());
        group.bench_function(format!("stripe/{size}B"), |b| {
            b.iter(|| {
                let view = RequestView::post(&headers, &body);
                black_box(stripe.verify(&view, &keys, VerifyContext::default(), now)).unwrap();
            })
        });
    }
    group.finish();
}

/// Confirms every message at once.
struct InstantBroker;

impl Publisher for InstantBroker {
    fn publish<'a>(&'a self, message: &'a Message) -> BoxFuture<'a, Result<(), PublishError>> {
        black_box(message);
        async { Ok(()) }.boxed()
    }

    fn is_ready(&self) -> bool {
        true
    }
}

fn whole_request(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let yaml = "broker: { url: 'amqp://unused' }\nsources:\n  - { name: gh, provider: github, secrets: [s3cret] }\n";
    let config = config::load_str(yaml, &root.join("bench.yaml"), &ProcessEnv).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let app = runtime.block_on(async {
        hookgate::app(AppState::new(&config, Delivery { publisher: Some(Arc::new(InstantBroker)), spool: None }))
    });
    let body = bytes::Bytes::from(payload(1024));
    let sig = format!("sha256={}", hex_hmac(b"s3cret", &[&body]));
    let mut n = 0u64;
    let mut group = c.benchmark_group("request");
    group.throughput(Throughput::Elements(1));
    group.bench_function("github/1KiB/accepted", |b| {
        b.to_async(&runtime).iter(|| {
            n += 1;
            let request = Request::post("/hooks/gh")
                .header("X-Hub-Signature-256", &sig)
                .header("X-GitHub-Delivery", n.to_string())
                .header("X-GitHub-Event", "push")
                .header("Content-Type", "application/json")
                .body(Body::from(body.clone()))
                .unwrap();
            let app = app.clone();
            async move {
                let response = app.oneshot(request).await.unwrap();
                assert_eq!(response.status(), 202);
            }
        })
    });
    group.finish();
}

criterion_group!(benches, verification, whole_request);
criterion_main!(benches);
