//! The pipeline's behaviour end to end: rejections publish nothing, duplicates are published
//! once, the rate limit and schemas hold, a missing broker answers 503.
//!
//! "Nothing was published" is shown without sleeping: after the requests under test, a valid
//! sentinel event is sent; since every 202 waits for the broker's confirm, anything published
//! earlier would be in the queue before the sentinel.

use futures_util::future::join_all;
use http::Method;

use crate::contract::{SOURCES, SW_SECRET, amqp_header};
use crate::support::amqp::TestQueue;
use crate::support::http::{post, send};
use crate::support::{Gateway, assert_next_is_sentinel, sign};

/// Request headers as the signing helpers return them.
type Headers = Vec<(&'static str, String)>;

fn without(headers: &[(&'static str, String)], name: &str) -> Headers {
    headers.iter().filter(|(k, _)| *k != name).cloned().collect()
}

async fn expect_rejection(url: &str, headers: &[(&'static str, String)], body: &[u8], status: u16, code: &str) {
    let reply = post(url, headers, body.to_vec()).await;
    assert_eq!(reply.status, status, "{code}: {:?}", reply.body);
    assert_eq!(reply.json(), serde_json::json!({"error": code}));
}

#[tokio::test]
async fn rejected_requests_are_never_published() {
    let gw = Gateway::start(SOURCES).await;
    let mut queue = TestQueue::bind(&gw.exchange, "#").await;
    let now = sign::now();
    let stale = now - 301;
    let body = br#"{"id":"evt_1","type":"x.y","event_id":"Ev1","event":{"type":"m"}}"#;
    let tampered = br#"{"id":"evt_2","type":"x.y","event_id":"Ev1","event":{"type":"m"}}"#;

    let cases: Vec<(&str, Headers, &str)> = vec![
        ("gh", sign::github("gh-secret", "d1", "push", body), "X-Hub-Signature-256"),
        ("st", sign::stripe("whsec_stripe-test", now, body), "Stripe-Signature"),
        ("sl", sign::slack("slack-secret", now, body), "X-Slack-Signature"),
        ("sw", sign::standard(SW_SECRET, "msg_1", now, body), "webhook-signature"),
    ];
    for (source, headers, sig_header) in &cases {
        let url = gw.hook(source);
        expect_rejection(&url, headers, tampered, 401, "signature_invalid").await;
        expect_rejection(&url, &without(headers, sig_header), body, 401, "signature_missing").await;
        let mut malformed = without(headers, sig_header);
        malformed.push((sig_header, "garbage".into()));
        expect_rejection(&url, &malformed, body, 401, "signature_invalid").await;
    }
    let wrong_secret = [
        ("gh", sign::github("not-the-secret", "d1", "push", body)),
        ("st", sign::stripe("whsec_other", now, body)),
        ("sl", sign::slack("other", now, body)),
        ("sw", sign::standard("whsec_c2VjcmV0", "msg_1", now, body)),
    ];
    for (source, headers) in &wrong_secret {
        expect_rejection(&gw.hook(source), headers, body, 401, "signature_invalid").await;
    }
    let stale_cases = [
        ("st", sign::stripe("whsec_stripe-test", stale, body)),
        ("sl", sign::slack("slack-secret", stale, body)),
        ("sw", sign::standard(SW_SECRET, "msg_1", stale, body)),
        ("sw", sign::standard(SW_SECRET, "msg_1", now + 600, body)),
    ];
    for (source, headers) in &stale_cases {
        expect_rejection(&gw.hook(source), headers, body, 401, "timestamp_out_of_tolerance").await;
    }
    let slack = sign::slack("slack-secret", now, body);
    expect_rejection(&gw.hook("sl"), &without(&slack, "X-Slack-Request-Timestamp"), body, 401, "signature_missing")
        .await;

    assert_next_is_sentinel(&gw, &mut queue).await;
    queue.cleanup().await;
}

#[tokio::test]
async fn a_redelivered_event_is_published_once() {
    let gw = Gateway::start(SOURCES).await;
    let mut queue = TestQueue::bind(&gw.exchange, "#").await;
    let body = br#"{"id":"evt_dup","object":"event","type":"charge.succeeded"}"#;
    let first = post(&gw.hook("st"), &sign::stripe("whsec_stripe-test", sign::now(), body), &body[..]).await;
    assert_eq!(first.json(), serde_json::json!({"status": "accepted", "id": "evt_dup"}));
    // Stripe re-signs retries with a new timestamp: same id, different signature.
    let again = post(&gw.hook("st"), &sign::stripe("whsec_stripe-test", sign::now() - 5, body), &body[..]).await;
    assert_eq!(again.status, 202);
    assert_eq!(again.json(), serde_json::json!({"status": "duplicate", "id": "evt_dup"}));
    assert_eq!(amqp_header(&queue.next().await, "cloudEvents:id").as_deref(), Some("evt_dup"));
    assert_next_is_sentinel(&gw, &mut queue).await;
    queue.cleanup().await;
}

#[tokio::test]
async fn concurrent_copies_of_an_event_are_published_once() {
    let gw = Gateway::start(SOURCES).await;
    let mut queue = TestQueue::bind(&gw.exchange, "#").await;
    let body = br#"{"ref":"refs/heads/main"}"#;
    let headers = sign::github("gh-secret", "same-delivery", "issues", body);
    let url = gw.hook("gh");
    let replies = join_all((0..16).map(|_| post(&url, &headers, &body[..]))).await;
    let mut statuses: Vec<String> = replies
        .iter()
        .map(|r| {
            assert_eq!(r.status, 202, "{:?}", r.body);
            r.json()["status"].as_str().unwrap().to_owned()
        })
        .collect();
    statuses.sort();
    assert_eq!(statuses.iter().filter(|s| *s == "accepted").count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| *s == "duplicate").count(), 15, "{statuses:?}");
    assert_eq!(amqp_header(&queue.next().await, "cloudEvents:id").as_deref(), Some("same-delivery"));
    assert_next_is_sentinel(&gw, &mut queue).await;
    queue.cleanup().await;
}

#[tokio::test]
async fn a_burst_beyond_the_rate_limit_gets_429() {
    let sources = "  - { name: gh, provider: github, secrets: [gh-secret], rate_limit: { per_second: 1, burst: 3 } }\n";
    let gw = Gateway::start(sources).await;
    let mut queue = TestQueue::bind(&gw.exchange, "#").await;
    let started = tokio::time::Instant::now();
    let mut accepted = 0;
    let mut limited = None;
    for i in 0..10 {
        let body = format!("{{\"n\":{i}}}");
        let reply =
            post(&gw.hook("gh"), &sign::github("gh-secret", &format!("rl-{i}"), "push", body.as_bytes()), body).await;
        match reply.status.as_u16() {
            202 => accepted += 1,
            429 => limited = Some(reply),
            other => panic!("unexpected {other}"),
        }
    }
    // 3 at once, plus at most one more per second that passed.
    assert!(accepted <= 3 + started.elapsed().as_secs() as usize + 1, "{accepted} accepted");
    let limited = limited.expect("a 429 within 10 requests at a 3-request burst");
    assert_eq!(limited.json(), serde_json::json!({"error": "rate_limited"}));
    let retry_after: u64 = limited.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=1).contains(&retry_after), "Retry-After {retry_after}");
    for _ in 0..accepted {
        queue.next().await;
    }
    queue.cleanup().await;
}

#[tokio::test]
async fn a_schema_invalid_payload_gets_422_and_is_not_published() {
    let gw = Gateway::start(SOURCES).await;
    let mut queue = TestQueue::bind(&gw.exchange, "#").await;
    let sha = "6113728f27ae82c7b1a177c8d03f9e96e0adf246";
    let invalid = format!(
        r#"{{"ref":"refs/heads/main","before":"{sha}","after":"not-a-sha","repository":{{"id":1,"full_name":"o/r"}},"pusher":{{"name":"n"}},"commits":[]}}"#
    );
    let reply = post(&gw.hook("gh"), &sign::github("gh-secret", "push-1", "push", invalid.as_bytes()), invalid).await;
    assert_eq!(reply.status, 422);
    assert_eq!(reply.json(), serde_json::json!({"error": "schema_invalid", "pointer": "/after"}));
    // The id was not remembered: the corrected retry is published.
    let valid = format!(
        r#"{{"ref":"refs/heads/main","before":"{sha}","after":"{sha}","repository":{{"id":1,"full_name":"o/r"}},"pusher":{{"name":"n"}},"commits":[]}}"#
    );
    let reply =
        post(&gw.hook("gh"), &sign::github("gh-secret", "push-1", "push", valid.as_bytes()), valid.clone()).await;
    assert_eq!(reply.status, 202, "{:?}", reply.body);
    let delivery = queue.next().await;
    assert_eq!(delivery.data, valid.as_bytes(), "the invalid copy must not have been published");
    queue.cleanup().await;
}

#[tokio::test]
async fn an_unreachable_broker_answers_503_with_retry_after() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let gw = Gateway::start_with(SOURCES, &format!("amqp://guest:guest@127.0.0.1:{port}/%2f"), false).await;
    let body = br#"{"zen":"x"}"#;
    let reply = post(&gw.hook("gh"), &sign::github("gh-secret", "d-503", "ping", body), &body[..]).await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.json(), serde_json::json!({"error": "broker_unavailable"}));
    assert_eq!(reply.headers["retry-after"], "5");
}

#[tokio::test]
async fn an_event_no_queue_is_bound_for_is_kept_in_the_unroutable_queue() {
    let gw = Gateway::start(SOURCES).await;
    let elsewhere = TestQueue::bind(&gw.exchange, "nothing.matches").await;
    let mut unroutable = TestQueue::existing(&gw.exchange, &format!("{}.unroutable", gw.exchange)).await;
    let body = br#"{"zen":"x"}"#;
    let reply = post(&gw.hook("gh"), &sign::github("gh-secret", "d-unroutable", "ping", body), &body[..]).await;
    assert_eq!(reply.json(), serde_json::json!({"status": "accepted", "id": "d-unroutable"}));
    let kept = unroutable.next().await;
    assert_eq!(amqp_header(&kept, "cloudEvents:id").as_deref(), Some("d-unroutable"));
    assert_eq!(kept.routing_key.as_str(), "gh.ping");
    assert_eq!(kept.data, body);
    elsewhere.cleanup().await;
    unroutable.cleanup().await;
}

#[tokio::test]
async fn slack_url_verification_is_answered_after_verification_and_not_published() {
    let gw = Gateway::start(SOURCES).await;
    let mut queue = TestQueue::bind(&gw.exchange, "#").await;
    let body = br#"{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
    let reply = post(&gw.hook("sl"), &sign::slack("slack-secret", sign::now(), body), &body[..]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.headers["content-type"], "text/plain");
    assert_eq!(&reply.body[..], b"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P");
    // A forged handshake is rejected like any request.
    expect_rejection(&gw.hook("sl"), &sign::slack("forged", sign::now(), body), body, 401, "signature_invalid").await;
    assert_next_is_sentinel(&gw, &mut queue).await;
    queue.cleanup().await;
}

#[tokio::test]
async fn request_bounds_and_routing_errors() {
    let sources = "  - { name: gh, provider: github, secrets: [gh-secret], max_body: 64B }\n";
    let gw = Gateway::start(sources).await;
    let big = vec![b'x'; 65];
    expect_rejection(&gw.hook("gh"), &sign::github("gh-secret", "big", "push", &big), &big, 413, "payload_too_large")
        .await;
    expect_rejection(&gw.hook("nope"), &[], b"{}", 404, "unknown_source").await;
    let reply = send(Method::GET, &gw.hook("gh"), &[], "").await;
    assert_eq!(reply.status, 405);
    assert_eq!(reply.json(), serde_json::json!({"error": "method_not_allowed"}));
    let health = send(Method::GET, &format!("{}/healthz", gw.base), &[], "").await;
    assert_eq!(health.status, 200);
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let gw = Gateway::start_with_limits(SOURCES, "header_read_timeout: 300ms").await;
    let addr = gw.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(b"POST /hooks/gh HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    // The server closes the connection (possibly after a 408); waiting for EOF is the event.
    let mut buf = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "connection still open 10 s after a 300 ms header timeout");
}

#[tokio::test]
async fn a_body_slower_than_the_request_timeout_gets_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let gw = Gateway::start_with_limits(SOURCES, "request_timeout: 300ms").await;
    let addr = gw.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(b"POST /hooks/gh HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12345").await.unwrap();
    let mut buf = [0u8; 12];
    tokio::time::timeout(std::time::Duration::from_secs(10), stream.read_exact(&mut buf)).await.unwrap().unwrap();
    assert_eq!(&buf, b"HTTP/1.1 408");
}
