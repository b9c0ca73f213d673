//! The message contract: for each of the four providers, a correctly signed request is
//! published once, with the body byte for byte, the AMQP properties and the CloudEvents headers
//! the README documents.

use std::time::{SystemTime, UNIX_EPOCH};

use lapin::message::Delivery;
use lapin::types::{AMQPValue, ShortString};

use crate::support::amqp::TestQueue;
use crate::support::http::post;
use crate::support::{Gateway, sign};

pub(crate) const SOURCES: &str = "
  - { name: gh, provider: github, secrets: [gh-secret], schemas: { push: github/push.json } }
  - { name: st, provider: stripe, secrets: [whsec_stripe-test] }
  - { name: sl, provider: slack, secrets: [slack-secret] }
  - { name: sw, provider: standard-webhooks, secrets: ['whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'] }
";

pub(crate) const SW_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A header of a delivery as text.
pub(crate) fn amqp_header(delivery: &Delivery, name: &str) -> Option<String> {
    match delivery.properties.headers().as_ref()?.inner().get(&ShortString::from(name))? {
        AMQPValue::LongString(s) => Some(s.to_string()),
        other => panic!("{name} is not a long string: {other:?}"),
    }
}

struct Expected<'a> {
    source: &'a str,
    provider: &'a str,
    id: &'a str,
    event_type: &'a str,
    content_type: &'a str,
    body: &'a [u8],
}

fn assert_contract(delivery: &Delivery, want: &Expected<'_>, sent_at: u64, traceparent: Option<&str>) {
    let props = &delivery.properties;
    assert_eq!(delivery.data, want.body, "body byte for byte");
    assert_eq!(delivery.routing_key.as_str(), format!("{}.{}", want.source, want.event_type));
    assert_eq!(props.message_id().as_ref().map(|s| s.as_str()), Some(want.id));
    assert_eq!(props.kind().as_ref().map(|s| s.as_str()), Some(want.event_type));
    assert_eq!(props.content_type().as_ref().map(|s| s.as_str()), Some(want.content_type));
    assert_eq!(*props.delivery_mode(), Some(2));
    assert_eq!(props.app_id().as_ref().map(|s| s.as_str()), Some("hookgate"));
    let stamped = props.timestamp().expect("timestamp set");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    assert!((sent_at..=now).contains(&stamped), "timestamp {stamped} not within [{sent_at}, {now}]");

    let h = |name: &str| amqp_header(delivery, name);
    assert_eq!(h("cloudEvents:specversion").as_deref(), Some("1.0"));
    assert_eq!(h("cloudEvents:id").as_deref(), Some(want.id));
    assert_eq!(h("cloudEvents:source"), Some(format!("hookgate/{}", want.source)));
    assert_eq!(h("cloudEvents:type"), Some(format!("{}.{}", want.provider, want.event_type)));
    let time = h("cloudEvents:time").expect("cloudEvents:time");
    assert!(time.len() == 24 && time.ends_with('Z') && time.as_bytes()[10] == b'T', "RFC 3339 UTC: {time}");
    assert_eq!(h("hookgate-received-at"), Some(time));
    assert_eq!(h("hookgate-source").as_deref(), Some(want.source));
    assert_eq!(h("hookgate-provider").as_deref(), Some(want.provider));
    assert_eq!(h("traceparent").as_deref(), traceparent);
}

#[tokio::test]
async fn github_event_is_published_with_the_contract() {
    let gw = Gateway::start(SOURCES).await;
    let mut queue = TestQueue::bind(&gw.exchange, "#").await;
    let body = br#"{"zen":"Keep it logically awesome.","hook_id":1}"#;
    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let mut headers = sign::github("gh-secret", "72d3162e-cc78-11e3-81ab-4c9367dc0958", "ping", body);
    headers.push(("traceparent", traceparent.to_owned()));
    let sent_at = sign::now();
    let reply = post(&gw.hook("gh"), &headers, &body[..]).await;
    assert_eq!(reply.status, 202, "{:?}", reply.body);
    assert_eq!(reply.json(), serde_json::json!({"status": "accepted", "id": "72d3162e-cc78-11e3-81ab-4c9367dc0958"}));
    let want = Expected {
        source: "gh",
        provider: "github",
        id: "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        event_type: "ping",
        content_type: "application/json",
        body,
    };
    assert_contract(&queue.next().await, &want, sent_at, Some(traceparent));
    queue.cleanup().await;
}

#[tokio::test]
async fn stripe_event_is_published_with_the_contract() {
    let gw = Gateway::start(SOURCES).await;
    let mut queue = TestQueue::bind(&gw.exchange, "#").await;
    let body =
        b"{\n  \"id\": \"evt_1NG8Du2eZvKYlo2CUI79vXWy\",\n  \"object\": \"event\",\n  \"type\": \"invoice.paid\"\n}";
    let sent_at = sign::now();
    let reply = post(&gw.hook("st"), &sign::stripe("whsec_stripe-test", sent_at, body), &body[..]).await;
    assert_eq!(reply.status, 202, "{:?}", reply.body);
    let want = Expected {
        source: "st",
        provider: "stripe",
        id: "evt_1NG8Du2eZvKYlo2CUI79vXWy",
        event_type: "invoice.paid",
        content_type: "application/json; charset=utf-8",
        body,
    };
    assert_contract(&queue.next().await, &want, sent_at, None);
    queue.cleanup().await;
}

#[tokio::test]
async fn slack_event_is_published_with_the_contract() {
    let gw = Gateway::start(SOURCES).await;
    let mut queue = TestQueue::bind(&gw.exchange, "#").await;
    let body = br#"{"type":"event_callback","team_id":"T1","event_id":"Ev08MFMKH6","event_time":1,"event":{"type":"app_mention","text":"hi"}}"#;
    let sent_at = sign::now();
    let reply = post(&gw.hook("sl"), &sign::slack("slack-secret", sent_at, body), &body[..]).await;
    assert_eq!(reply.status, 202, "{:?}", reply.body);
    let want = Expected {
        source: "sl",
        provider: "slack",
        id: "Ev08MFMKH6",
        event_type: "app_mention",
        content_type: "application/json",
        body,
    };
    assert_contract(&queue.next().await, &want, sent_at, None);
    queue.cleanup().await;
}

#[tokio::test]
async fn standard_webhooks_event_is_published_with_the_contract() {
    let gw = Gateway::start(SOURCES).await;
    let mut queue = TestQueue::bind(&gw.exchange, "#").await;
    let body = br#"{"type":"contact.created","timestamp":"2022-11-03T20:26:10.344522Z","data":{"id":1}}"#;
    let sent_at = sign::now();
    let reply =
        post(&gw.hook("sw"), &sign::standard(SW_SECRET, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", sent_at, body), &body[..])
            .await;
    assert_eq!(reply.status, 202, "{:?}", reply.body);
    let want = Expected {
        source: "sw",
        provider: "standard-webhooks",
        id: "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
        event_type: "contact.created",
        content_type: "application/json",
        body,
    };
    assert_contract(&queue.next().await, &want, sent_at, None);
    queue.cleanup().await;
}
