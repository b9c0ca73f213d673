//! Every provider handshake driven through the real server: the exact answer each provider
//! expects (status, Content-Type, body bytes, extra headers), and proof that the handshake was
//! not published. Also the negative paths: forged signed handshakes, wrong verify tokens,
//! refused secret hand-overs, and non-POST requests to providers without such a handshake.
//!
//! "Nothing was published" is shown without sleeping, as in `pipeline.rs`: after the requests
//! under test a valid GitHub sentinel is sent; every 202 waits for the broker's confirm, so
//! anything published earlier would be in the queue before the sentinel.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signer, SigningKey};
use hmac::{Hmac, Mac};
use http::Method;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::contract::amqp_header;
use crate::support::amqp::TestQueue;
use crate::support::http::{Reply, post, send};
use crate::support::{Gateway, Options, assert_next_is_sentinel, sign, unique};

/// The sentinel's source; every gateway here has it.
const GH: &str = "  - { name: gh, provider: github, secrets: [gh-secret] }\n";

/// Request headers as the tests build them.
type Headers = Vec<(&'static str, String)>;

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// The id hookgate gives events without a provider id: `sha256:<hex of the body>`.
fn body_id(body: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(body)))
}

/// A gateway with the sentinel source and `sources`, and a queue catching everything.
async fn start(sources: &str) -> (Gateway, TestQueue) {
    let gw = Gateway::start(&format!("{GH}{sources}")).await;
    let queue = TestQueue::bind(&gw.exchange, "#").await;
    (gw, queue)
}

/// Asserts the next message is `body` with event id `id`.
async fn assert_next_is(queue: &mut TestQueue, id: &str, body: &[u8]) {
    let next = queue.next().await;
    assert_eq!(amqp_header(&next, "cloudEvents:id").as_deref(), Some(id));
    assert_eq!(next.data, body, "body byte for byte");
}

/// Asserts an exact handshake answer: status, Content-Type and body bytes.
fn assert_answer(reply: &Reply, status: u16, content_type: &str, body: &[u8]) {
    assert_eq!(reply.status, status, "{:?}", reply.body);
    assert_eq!(reply.headers.get("content-type").map(|v| v.as_bytes()), Some(content_type.as_bytes()), "Content-Type");
    assert_eq!(&reply.body[..], body, "body: {:?}", String::from_utf8_lossy(&reply.body));
}

/// Asserts a JSON rejection `{"error": code}` with `status`.
fn assert_rejected(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status, status, "{code}: {:?}", reply.body);
    assert_eq!(reply.json(), json!({ "error": code }));
}

/// Asserts a plain 202 `{"status": "accepted", "id": id}`.
fn assert_accepted(reply: &Reply, id: &str) {
    assert_eq!(reply.status, 202, "{:?}", reply.body);
    assert_eq!(reply.json(), json!({"status": "accepted", "id": id}));
}

fn get(url: &str, headers: &[(&str, String)]) -> impl Future<Output = Reply> {
    send(Method::GET, url, headers, "")
}

// ---------------------------------------------------------------------------------------------
// Signed handshakes (verified first).
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn slack_url_verification_answers_the_challenge_only_when_signed() {
    let (gw, mut queue) = start("  - { name: sl, provider: slack, secrets: [slack-secret] }\n").await;
    let body = br#"{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
    let reply = post(&gw.hook("sl"), &sign::slack("slack-secret", sign::now(), body), &body[..]).await;
    assert_answer(&reply, 200, "text/plain", b"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P");

    let forged = post(&gw.hook("sl"), &sign::slack("forged", sign::now(), body), &body[..]).await;
    assert_rejected(&forged, 401, "signature_invalid");
    let stale = post(&gw.hook("sl"), &sign::slack("slack-secret", sign::now() - 301, body), &body[..]).await;
    assert_rejected(&stale, 401, "timestamp_out_of_tolerance");

    assert_next_is_sentinel(&gw, &mut queue).await;
    queue.cleanup().await;
}

fn zoom_headers(secret: &str, ts: u64, body: &[u8]) -> Headers {
    let mut content = format!("v0:{ts}:").into_bytes();
    content.extend_from_slice(body);
    vec![
        ("x-zm-request-timestamp", ts.to_string()),
        ("x-zm-signature", format!("v0={}", hex::encode(hmac_sha256(secret.as_bytes(), &content)))),
        ("Content-Type", "application/json; charset=utf-8".to_owned()),
    ]
}

#[tokio::test]
async fn zoom_url_validation_returns_the_hmac_of_the_plain_token() {
    let secret = "zoom-secret-token-4Tq9";
    let (gw, mut queue) = start(&format!("  - {{ name: zm, provider: zoom, secrets: ['{secret}'] }}\n")).await;
    let plain = "qgg8vlvZRS6UYooatFL8Aw";
    let body = format!(
        r#"{{"payload":{{"plainToken":"{plain}"}},"event_ts":1654503849680,"event":"endpoint.url_validation"}}"#
    );
    // Computed here, independently of hookgate: hex HMAC-SHA256(secret token, plainToken).
    let encrypted = hex::encode(hmac_sha256(secret.as_bytes(), plain.as_bytes()));
    let reply = post(&gw.hook("zm"), &zoom_headers(secret, sign::now(), body.as_bytes()), body.clone()).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.headers["content-type"], "application/json");
    assert_eq!(reply.json(), json!({"plainToken": plain, "encryptedToken": encrypted}));

    let forged = post(&gw.hook("zm"), &zoom_headers("not-the-secret", sign::now(), body.as_bytes()), body).await;
    assert_rejected(&forged, 401, "signature_invalid");

    assert_next_is_sentinel(&gw, &mut queue).await;
    queue.cleanup().await;
}

fn twitch_headers(secret: &str, message_id: &str, message_type: &str, body: &[u8]) -> Headers {
    let timestamp = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap();
    let mut content = format!("{message_id}{timestamp}").into_bytes();
    content.extend_from_slice(body);
    vec![
        ("Twitch-Eventsub-Message-Id", message_id.to_owned()),
        ("Twitch-Eventsub-Message-Retry", "0".to_owned()),
        ("Twitch-Eventsub-Message-Type", message_type.to_owned()),
        (
            "Twitch-Eventsub-Message-Signature",
            format!("sha256={}", hex::encode(hmac_sha256(secret.as_bytes(), &content))),
        ),
        ("Twitch-Eventsub-Message-Timestamp", timestamp),
        ("Twitch-Eventsub-Subscription-Type", "channel.follow".to_owned()),
        ("Twitch-Eventsub-Subscription-Version", "2".to_owned()),
        ("Content-Type", "application/json".to_owned()),
    ]
}

#[tokio::test]
async fn twitch_callback_verification_answers_the_raw_challenge_only_when_signed() {
    let secret = "s3cRe7-for-eventsub-0123456789abcdef";
    let (gw, mut queue) = start(&format!("  - {{ name: tw, provider: twitch, secrets: ['{secret}'] }}\n")).await;
    let body = br#"{"challenge":"pogchamp-kappa-360noscope-vohiyo","subscription":{"id":"f1c2a387-161a-49f9-a165-0f21d7a4e1c4","status":"webhook_callback_verification_pending","type":"channel.follow","version":"2","cost":1,"condition":{"broadcaster_user_id":"12826","moderator_user_id":"12826"},"transport":{"method":"webhook","callback":"https://example.com/webhooks/callback"},"created_at":"2019-11-16T10:11:12.634234626Z"}}"#;
    let message_id = uuid::Uuid::new_v4().to_string();
    let reply =
        post(&gw.hook("tw"), &twitch_headers(secret, &message_id, "webhook_callback_verification", body), &body[..])
            .await;
    // The raw string: no JSON, no quotes.
    assert_answer(&reply, 200, "text/plain", b"pogchamp-kappa-360noscope-vohiyo");

    let forged = post(
        &gw.hook("tw"),
        &twitch_headers("s3cRe7-for-eventsub-0123456789abcdeX", &message_id, "webhook_callback_verification", body),
        &body[..],
    )
    .await;
    assert_rejected(&forged, 401, "signature_invalid");

    assert_next_is_sentinel(&gw, &mut queue).await;
    queue.cleanup().await;
}

/// RFC 8032 section 7.1 TEST 1: the public key is the secret of `tests/vectors/discord.yaml`.
const DISCORD_SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
const DISCORD_PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

fn discord_headers(key: &SigningKey, ts: u64, body: &[u8]) -> Headers {
    let mut content = ts.to_string().into_bytes();
    content.extend_from_slice(body);
    vec![
        ("X-Signature-Ed25519", hex::encode(key.sign(&content).to_bytes())),
        ("X-Signature-Timestamp", ts.to_string()),
        ("Content-Type", "application/json".to_owned()),
    ]
}

#[tokio::test]
async fn discord_ping_gets_a_pong_and_bad_signatures_get_401() {
    let key = SigningKey::from_bytes(&hex::decode(DISCORD_SEED).unwrap().try_into().unwrap());
    assert_eq!(hex::encode(key.verifying_key().to_bytes()), DISCORD_PUBLIC);
    let (gw, mut queue) =
        start(&format!("  - {{ name: dc, provider: discord, secrets: ['{DISCORD_PUBLIC}'] }}\n")).await;
    let ping = br#"{"id":"787053080478613555","token":"ThisIsATokenFromDiscordThatIsVeryLong","type":1,"version":1}"#;
    let now = sign::now();
    let headers = discord_headers(&key, now, ping);
    let reply = post(&gw.hook("dc"), &headers, &ping[..]).await;
    assert_answer(&reply, 200, "application/json", br#"{"type":1}"#);

    // Discord's own security check: the same PING with a signature that does not verify.
    let mut bad = headers.clone();
    let mut sig = hex::decode(&bad[0].1).unwrap();
    sig[0] ^= 0x01;
    bad[0].1 = hex::encode(sig);
    assert_rejected(&post(&gw.hook("dc"), &bad, &ping[..]).await, 401, "signature_invalid");
    // Signed by another key (RFC 8032 TEST 2 seed).
    let other = SigningKey::from_bytes(
        &hex::decode("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb").unwrap().try_into().unwrap(),
    );
    assert_rejected(
        &post(&gw.hook("dc"), &discord_headers(&other, now, ping), &ping[..]).await,
        401,
        "signature_invalid",
    );
    // A valid signature over another timestamp than the one sent.
    let mut shifted = headers.clone();
    shifted[1].1 = (now + 1).to_string();
    assert_rejected(&post(&gw.hook("dc"), &shifted, &ping[..]).await, 401, "signature_invalid");

    assert_next_is_sentinel(&gw, &mut queue).await;
    queue.cleanup().await;
}

// ---------------------------------------------------------------------------------------------
// Unsigned GET / HEAD handshakes.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn meta_verification_request_needs_the_sources_verify_token() {
    let (gw, mut queue) = start(
        "  - { name: fb, provider: meta, secrets: [meta-app-secret], verify_token: meatyhamhock }\n  - { name: fb-no-token, provider: meta, secrets: [meta-app-secret] }\n",
    )
    .await;
    let url = |source: &str, query: &str| format!("{}?{query}", gw.hook(source));
    let reply = get(&url("fb", "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=meatyhamhock"), &[]).await;
    assert_answer(&reply, 200, "text/plain", b"1158201444");

    for query in [
        "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=wrong",
        "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=meatyhamhoc",
        "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=",
        "hub.mode=subscribe&hub.challenge=1158201444",
    ] {
        let reply = get(&url("fb", query), &[]).await;
        assert_rejected(&reply, 403, "verify_token_invalid");
    }
    // A source without a verify_token answers no verification request, whatever token is sent.
    for query in [
        "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=meatyhamhock",
        "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=",
        "hub.mode=subscribe&hub.challenge=1158201444",
    ] {
        let reply = get(&url("fb-no-token", query), &[]).await;
        assert_rejected(&reply, 403, "verify_token_invalid");
    }
    // Not the handshake (hub.mode is not subscribe): a GET like any other.
    let reply =
        get(&url("fb", "hub.mode=unsubscribe&hub.challenge=1158201444&hub.verify_token=meatyhamhock"), &[]).await;
    assert_rejected(&reply, 405, "method_not_allowed");

    assert_next_is_sentinel(&gw, &mut queue).await;
    queue.cleanup().await;
}

#[tokio::test]
async fn dropbox_challenge_is_echoed_as_text_with_nosniff() {
    let (gw, mut queue) = start("  - { name: dbx, provider: dropbox, secrets: [dropbox-app-secret] }\n").await;
    let reply = get(&format!("{}?challenge=KkHNrj7Q1Tz4%3Cb%3E", gw.hook("dbx")), &[]).await;
    // The decoded value, verbatim; nosniff keeps a browser from rendering it.
    assert_answer(&reply, 200, "text/plain", b"KkHNrj7Q1Tz4<b>");
    assert_eq!(reply.headers.get("x-content-type-options").map(|v| v.as_bytes()), Some(&b"nosniff"[..]));
    let reply = get(&gw.hook("dbx"), &[]).await;
    assert_rejected(&reply, 405, "method_not_allowed");

    assert_next_is_sentinel(&gw, &mut queue).await;
    queue.cleanup().await;
}

const TRELLO_SECRET: &str = "0f3e9a1b2c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f";

#[tokio::test]
async fn trello_head_check_gets_200_and_signed_events_still_verify() {
    let (gw, mut queue) = start(&format!(
        "  - {{ name: trello, provider: trello, secrets: ['{TRELLO_SECRET}'], public_url: 'https://hooks.example.com/hooks/trello' }}\n"
    ))
    .await;
    let reply = send(Method::HEAD, &gw.hook("trello"), &[], "").await;
    assert_eq!(reply.status, 200, "{:?}", reply.headers);
    assert!(reply.body.is_empty());
    // No GET handshake.
    assert_rejected(&get(&gw.hook("trello"), &[]).await, 405, "method_not_allowed");
    assert_next_is_sentinel(&gw, &mut queue).await;

    // The known-answer vector (callbackURL with a query): the URL-signed event goes through.
    let body = br#"{"model":{"id":"4d5ea62fd76aa1136000000c","name":"Trello Development"},"action":{"id":"51f9424bcd6e040f3c002412","idMemberCreator":"4fc78a59a885233f4b349bd9","data":{"board":{"name":"Trello Development","id":"4d5ea62fd76aa1136000000c"},"card":{"idShort":1458,"name":"Webhooks","id":"51a79e72dbb7e23c7c003778"},"voted":true},"type":"voteOnCard","date":"2013-07-31T16:58:51.949Z","memberCreator":{"id":"4fc78a59a885233f4b349bd9","avatarHash":"2da34d23b5f1ac1a20e2a01157bfa9fe","fullName":"Doug Patti","initials":"DP","username":"doug"}}}"#;
    let url = format!("{}?board=4d5ea62fd76aa1136000000c", gw.hook("trello"));
    let headers = vec![("X-Trello-Webhook", "15VAU/EG1HG04iaga6oezgedlz0=".to_owned())];
    assert_accepted(&post(&url, &headers, &body[..]).await, "51f9424bcd6e040f3c002412");
    assert_next_is(&mut queue, "51f9424bcd6e040f3c002412", body).await;
    queue.cleanup().await;
}

#[tokio::test]
async fn a_get_or_head_to_a_provider_without_such_handshake_is_405() {
    let (gw, mut queue) = start("").await;
    let body = br#"{"zen":"x"}"#;
    // Even carrying a valid signature and handshake-looking parameters.
    let headers = sign::github("gh-secret", "get-1", "ping", body);
    for url in [gw.hook("gh"), format!("{}?hub.mode=subscribe&hub.challenge=1&challenge=1", gw.hook("gh"))] {
        let reply = send(Method::GET, &url, &headers, &body[..]).await;
        assert_rejected(&reply, 405, "method_not_allowed");
        for method in [Method::PUT, Method::DELETE] {
            let reply = send(method, &url, &headers, &body[..]).await;
            assert_rejected(&reply, 405, "method_not_allowed");
        }
        let head = send(Method::HEAD, &url, &[], "").await;
        assert_eq!(head.status, 405);
    }
    assert_next_is_sentinel(&gw, &mut queue).await;
    queue.cleanup().await;
}

// ---------------------------------------------------------------------------------------------
// Okta: the one-time verification GET carries the authentication header and is verified first.
// ---------------------------------------------------------------------------------------------

const OKTA_SECRET: &str = "my-shared-secret-5b0c2f9e7d";
const OKTA_EVENT: &[u8] = br#"{"eventType":"com.okta.event_hook","eventTypeVersion":"1.0","cloudEventsVersion":"0.1","source":"https://example.okta.com/api/v1/eventHooks/whoql0HfiLGPWc8Jx0g3","eventId":"b5a188b9-5ece-4636-b041-482ffda96311","data":{"events":[{"uuid":"4a3a7a9f-5f2b-11e9-a2a6-1f1a9b0e1f2d","published":"2019-03-27T16:59:52.821Z","eventType":"user.session.start","version":"0","displayMessage":"User login to Okta","severity":"INFO"}]},"eventTime":"2019-03-27T16:59:53.032Z","contentType":"application/json"}"#;

#[tokio::test]
async fn okta_one_time_verification_answers_json_when_authenticated() {
    let (gw, mut queue) = start(&format!(
        "  - {{ name: okta, provider: okta, secrets: ['{OKTA_SECRET}'] }}\n  - {{ name: okta-custom, provider: okta, secrets: ['{OKTA_SECRET}'], token_header: X-Custom-Auth }}\n"
    ))
    .await;
    let challenge = "X1F1pmLZnMwxj3jmN4WLNGhGSy3_XzmqlJ8TFSRPUWI";
    let reply = get(
        &gw.hook("okta"),
        &[("X-Okta-Verification-Challenge", challenge.to_owned()), ("Authorization", OKTA_SECRET.to_owned())],
    )
    .await;
    assert_answer(&reply, 200, "application/json", format!(r#"{{"verification":"{challenge}"}}"#).as_bytes());
    // Verified first: without or with a wrong authentication header it is refused.
    let reply = get(&gw.hook("okta"), &[("X-Okta-Verification-Challenge", challenge.to_owned())]).await;
    assert_rejected(&reply, 401, "signature_missing");
    let reply = get(
        &gw.hook("okta"),
        &[("X-Okta-Verification-Challenge", challenge.to_owned()), ("Authorization", "wrong-secret".to_owned())],
    )
    .await;
    assert_rejected(&reply, 401, "signature_invalid");
    // A source with token_header reads the token from that header for the handshake too.
    let reply = get(
        &gw.hook("okta-custom"),
        &[("X-Okta-Verification-Challenge", challenge.to_owned()), ("X-Custom-Auth", OKTA_SECRET.to_owned())],
    )
    .await;
    assert_answer(&reply, 200, "application/json", format!(r#"{{"verification":"{challenge}"}}"#).as_bytes());

    assert_next_is_sentinel(&gw, &mut queue).await;
    queue.cleanup().await;
}

#[tokio::test]
async fn okta_token_header_override_authenticates_events() {
    let (gw, mut queue) = start(&format!(
        "  - {{ name: okta, provider: okta, secrets: ['{OKTA_SECRET}'] }}\n  - {{ name: okta-custom, provider: okta, secrets: ['{OKTA_SECRET}'], token_header: X-Custom-Auth }}\n"
    ))
    .await;
    let id = "b5a188b9-5ece-4636-b041-482ffda96311";
    let json_ct = ("Content-Type", "application/json".to_owned());
    // The override source ignores Authorization and reads X-Custom-Auth.
    let reply =
        post(&gw.hook("okta-custom"), &[("Authorization", OKTA_SECRET.to_owned()), json_ct.clone()], OKTA_EVENT).await;
    assert_rejected(&reply, 401, "signature_missing");
    let reply =
        post(&gw.hook("okta-custom"), &[("X-Custom-Auth", "wrong-secret".to_owned()), json_ct.clone()], OKTA_EVENT)
            .await;
    assert_rejected(&reply, 401, "signature_invalid");
    // The default source does not accept the custom header.
    let reply = post(&gw.hook("okta"), &[("X-Custom-Auth", OKTA_SECRET.to_owned()), json_ct.clone()], OKTA_EVENT).await;
    assert_rejected(&reply, 401, "signature_missing");
    assert_next_is_sentinel(&gw, &mut queue).await;

    let reply =
        post(&gw.hook("okta-custom"), &[("X-Custom-Auth", OKTA_SECRET.to_owned()), json_ct.clone()], OKTA_EVENT).await;
    assert_accepted(&reply, id);
    assert_next_is(&mut queue, id, OKTA_EVENT).await;
    let reply = post(&gw.hook("okta"), &[("Authorization", OKTA_SECRET.to_owned()), json_ct], OKTA_EVENT).await;
    assert_accepted(&reply, id);
    assert_next_is(&mut queue, id, OKTA_EVENT).await;
    queue.cleanup().await;
}

// ---------------------------------------------------------------------------------------------
// Unsigned POST handshakes.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn microsoft_graph_validation_echoes_the_decoded_token() {
    let (gw, mut queue) = start("  - { name: graph, provider: microsoft-graph, secrets: [client-state-7f3c] }\n").await;
    let token = "Validation: Testing client application reachability for subscription Request-Id: 25a0aa5e-0b71-4d7c-9bf4-0ff2c1c6b3ab&x=+1";
    let encoded: String = form_urlencoded::byte_serialize(token.as_bytes()).collect();
    let encoded_pct = encoded.replace('+', "%20");
    for query_value in [encoded, encoded_pct] {
        let reply = post(
            &format!("{}?validationToken={query_value}", gw.hook("graph")),
            &[("Content-Type", "text/plain; charset=utf-8".to_owned())],
            "",
        )
        .await;
        assert_answer(&reply, 200, "text/plain", token.as_bytes());
    }
    // Without the token it is an ordinary notification, and this one has a wrong clientState.
    let body = br#"{"value":[{"subscriptionId":"s1","clientState":"nope","changeType":"created","id":"n1"}]}"#;
    let reply = post(&gw.hook("graph"), &[("Content-Type", "application/json".to_owned())], &body[..]).await;
    assert_rejected(&reply, 401, "signature_invalid");

    assert_next_is_sentinel(&gw, &mut queue).await;
    queue.cleanup().await;
}

#[tokio::test]
async fn monday_challenge_is_echoed_as_the_identical_json() {
    let (gw, mut queue) = start("  - { name: monday, provider: monday, secrets: [monday-signing-secret] }\n").await;
    let body = br#"{"challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}"#;
    let reply = post(&gw.hook("monday"), &[("Content-Type", "application/json".to_owned())], &body[..]).await;
    assert_answer(&reply, 200, "application/json", body);
    // An event without the JWT is not a handshake and is refused.
    let event = br#"{"event":{"type":"create_item","triggerUuid":"t-1"}}"#;
    let reply = post(&gw.hook("monday"), &[("Content-Type", "application/json".to_owned())], &event[..]).await;
    assert_rejected(&reply, 401, "signature_missing");

    assert_next_is_sentinel(&gw, &mut queue).await;
    queue.cleanup().await;
}

fn asana_event(secret: &str, body: &[u8]) -> Headers {
    vec![
        ("X-Hook-Signature", hex::encode(hmac_sha256(secret.as_bytes(), body))),
        ("Content-Type", "application/json".to_owned()),
    ]
}

async fn asana_handshake(gw: &Gateway, secret: &str) -> Reply {
    post(&gw.hook("asana"), &[("X-Hook-Secret", secret.to_owned())], "").await
}

#[tokio::test]
async fn asana_hook_secret_is_captured_persisted_and_never_replaced() {
    const SOURCES: &str = "  - { name: asana, provider: asana, secrets: [] }\n";
    let secret = "b537207f20cbfa02357cf448134da559e8bd39d61597dcd5631b8012eae53e81";
    let other = "0000207f20cbfa02357cf448134da559e8bd39d61597dcd5631b8012eae53e81";
    let state_dir = std::env::temp_dir().join(unique("hookgate-state"));
    let exchange = unique("hookgate-test");
    let options =
        || Options { state_dir: Some(state_dir.clone()), exchange: Some(exchange.clone()), ..Options::default() };
    let gw = Gateway::start_opts(&format!("{GH}{SOURCES}"), options()).await;
    let mut queue = TestQueue::bind(&gw.exchange, "#").await;

    // No secret yet: a signed event cannot verify.
    let first = br#"{"events":[{"action":"changed","resource":{"gid":"1201","resource_type":"task"}}]}"#;
    let reply = post(&gw.hook("asana"), &asana_event(secret, first), &first[..]).await;
    assert_eq!(reply.status, 401, "{:?}", reply.body);

    let reply = asana_handshake(&gw, secret).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.headers["x-hook-secret"], secret);
    assert!(reply.body.is_empty(), "{:?}", reply.body);
    assert_next_is_sentinel(&gw, &mut queue).await;

    let reply = post(&gw.hook("asana"), &asana_event(secret, first), &first[..]).await;
    assert_accepted(&reply, &body_id(first));
    assert_next_is(&mut queue, &body_id(first), first).await;
    let reply = post(&gw.hook("asana"), &asana_event(other, first), &first[..]).await;
    assert_rejected(&reply, 401, "signature_invalid");

    // Restart on the same state directory: the secret is still there.
    drop(gw);
    let gw = Gateway::start_opts(&format!("{GH}{SOURCES}"), options()).await;
    let second = br#"{"events":[{"action":"added","resource":{"gid":"1202","resource_type":"story"}}]}"#;
    let reply = post(&gw.hook("asana"), &asana_event(secret, second), &second[..]).await;
    assert_accepted(&reply, &body_id(second));
    assert_next_is(&mut queue, &body_id(second), second).await;

    // The same secret again is confirmed; another is refused and does not replace it.
    let reply = asana_handshake(&gw, secret).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.headers["x-hook-secret"], secret);
    let reply = asana_handshake(&gw, other).await;
    assert_rejected(&reply, 403, "secret_not_accepted");
    assert!(!reply.headers.contains_key("x-hook-secret"));
    let third = br#"{"events":[]}"#;
    let reply = post(&gw.hook("asana"), &asana_event(other, third), &third[..]).await;
    assert_rejected(&reply, 401, "signature_invalid");
    assert_next_is_sentinel(&gw, &mut queue).await;

    let reply = post(&gw.hook("asana"), &asana_event(secret, third), &third[..]).await;
    assert_accepted(&reply, &body_id(third));
    assert_next_is(&mut queue, &body_id(third), third).await;
    queue.cleanup().await;
    let _ = std::fs::remove_dir_all(&state_dir);
}

#[tokio::test]
async fn notion_verification_token_becomes_the_signing_key() {
    let (gw, mut queue) = start("  - { name: notion, provider: notion, secrets: [] }\n").await;
    let token = "secret_tMrlL1qK5vuQAh1b6cZGhFChZTSYJlce98V0pYn7yBl";
    let handshake = format!(r#"{{"verification_token":"{token}"}}"#);
    let json_ct = ("Content-Type", "application/json".to_owned());
    let reply = post(&gw.hook("notion"), std::slice::from_ref(&json_ct), handshake).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert!(reply.body.is_empty(), "{:?}", reply.body);
    assert_next_is_sentinel(&gw, &mut queue).await;

    let notion = |key: &str, body: &[u8]| -> Headers {
        vec![
            ("X-Notion-Signature", format!("sha256={}", hex::encode(hmac_sha256(key.as_bytes(), body)))),
            json_ct.clone(),
        ]
    };
    let event = br#"{"id":"367cba44-b6f3-4c92-81e7-6a2e9659efd4","timestamp":"2024-12-05T23:55:34.285Z","type":"page.content_updated","entity":{"id":"153104cd-477e-809d-8dc4-ff2d96ae3090","type":"page"}}"#;
    let reply = post(&gw.hook("notion"), &notion(token, event), &event[..]).await;
    assert_accepted(&reply, "367cba44-b6f3-4c92-81e7-6a2e9659efd4");
    assert_next_is(&mut queue, "367cba44-b6f3-4c92-81e7-6a2e9659efd4", event).await;

    let reply =
        post(&gw.hook("notion"), std::slice::from_ref(&json_ct), r#"{"verification_token":"secret_other"}"#).await;
    assert_rejected(&reply, 403, "secret_not_accepted");
    let forged = br#"{"id":"e2","type":"page.deleted"}"#;
    let reply = post(&gw.hook("notion"), &notion("secret_other", forged), &forged[..]).await;
    assert_rejected(&reply, 401, "signature_invalid");

    assert_next_is_sentinel(&gw, &mut queue).await;
    queue.cleanup().await;
    let _ = std::fs::remove_dir_all(&gw.state_dir);
}

// ---------------------------------------------------------------------------------------------
// Providers with their own success answer.
// ---------------------------------------------------------------------------------------------

const XERO_KEY: &str = "rTRW1hBqbmmkvGz8dqqCdz5hrX6lgjYmd2a3v1EDZt7sJSAvRVDYdD0XL4ZcxVD4hXhWbeJOQ2W6tiVPScB6tw==";

#[tokio::test]
async fn xero_intent_to_receive_gets_200_when_signed_and_401_when_not() {
    let (gw, mut queue) = start(&format!("  - {{ name: xero, provider: xero, secrets: ['{XERO_KEY}'] }}\n")).await;
    let body = br#"{"events":[],"lastEventSequence":0,"firstEventSequence":0,"entropy":"S0m3r4Nd0mt3xt"}"#;
    // Computed here: base64 HMAC-SHA256(UTF-8 key, body); equals the vector's signature.
    let good = STANDARD.encode(hmac_sha256(XERO_KEY.as_bytes(), body));
    assert_eq!(good, "EBNMiZuSVF9w0KIj6N9QylA5aVKrv2JVSYD33agzxDE=");
    let sig = |s: &str| vec![("x-xero-signature", s.to_owned())];

    // Incorrectly signed probes first: the MAC under the base64-decoded key, and garbage.
    for bad in ["k5/QCiwCKmT7vu43CnY62OnuFtg9KjP6rCbQXKhJ0LM=", "not-base64!"] {
        let reply = post(&gw.hook("xero"), &sig(bad), &body[..]).await;
        assert_eq!(reply.status, 401, "{:?}", reply.body);
    }
    assert_next_is_sentinel(&gw, &mut queue).await;

    let reply = post(&gw.hook("xero"), &sig(&good), &body[..]).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert!(reply.body.is_empty(), "Xero wants an empty body: {:?}", reply.body);
    assert!(!reply.headers.contains_key("set-cookie"));
    assert_next_is(&mut queue, &body_id(body), body).await;
    // Xero resends the same probe: still 200, not published twice.
    let reply = post(&gw.hook("xero"), &sig(&good), &body[..]).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert!(reply.body.is_empty(), "{:?}", reply.body);
    assert_next_is_sentinel(&gw, &mut queue).await;
    queue.cleanup().await;
}

#[tokio::test]
async fn adyen_notification_is_acknowledged_with_accepted_once_published() {
    let (gw, mut queue) = start(
        "  - { name: adyen, provider: adyen, secrets: ['44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056'] }\n",
    )
    .await;
    let body = br#"{"live":"false","notificationItems":[{"NotificationRequestItem":{"additionalData":{"hmacSignature":"coqCmt/IZ4E3CzPvMY8zTjQVL5hYJUiBRg8UU+iCWo0="},"amount":{"currency":"EUR","value":1130},"eventCode":"AUTHORISATION","eventDate":"2019-05-06T17:15:34.121+02:00","merchantAccountCode":"TestMerchant","merchantReference":"TestPayment-1407325143704","operations":["CANCEL","CAPTURE","REFUND"],"paymentMethod":"visa","pspReference":"7914073381342284","success":"true"}}]}"#;
    let headers = vec![("Content-Type", "application/json".to_owned())];
    let reply = post(&gw.hook("adyen"), &headers, &body[..]).await;
    assert_answer(&reply, 200, "text/plain", b"[accepted]");
    assert_next_is(&mut queue, "7914073381342284:AUTHORISATION", body).await;

    // Adyen retries until it reads [accepted]: the duplicate gets it too, and is not republished.
    let reply = post(&gw.hook("adyen"), &headers, &body[..]).await;
    assert_answer(&reply, 200, "text/plain", b"[accepted]");
    // A tampered amount does not verify and is not acknowledged.
    let tampered = String::from_utf8(body.to_vec()).unwrap().replace(r#""value":1130"#, r#""value":1131"#);
    let reply = post(&gw.hook("adyen"), &headers, tampered).await;
    assert_rejected(&reply, 401, "signature_invalid");

    assert_next_is_sentinel(&gw, &mut queue).await;
    queue.cleanup().await;
}

fn as_pairs(headers: &[(String, String)]) -> Vec<(&str, String)> {
    headers.iter().map(|(k, v)| (k.as_str(), v.clone())).collect()
}

/// A vector of `tests/vectors/aws-sns.yaml`: (secrets, headers, body).
fn sns_vector(name: &str) -> (Vec<String>, Vec<(String, String)>, String) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/aws-sns.yaml");
    let file: serde_json::Value = serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let vector = file["vectors"].as_array().unwrap().iter().find(|v| v["name"] == name).expect("vector exists");
    let secrets = vector["secrets"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_owned()).collect();
    let headers = vector["headers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    (secrets, headers, vector["body"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn aws_sns_notifications_are_published_and_subscription_confirmations_answered() {
    // Real SNS messages and certificate (aws/aws-php-sns-message-validator tests), plus a
    // SubscriptionConfirmation signed with a test certificate; both certificates pinned.
    let (official, notification_headers, notification) =
        sns_vector("Notification, SignatureVersion 2 (SHA256withRSA), no Subject");
    let (derived, confirmation_headers, confirmation) =
        sns_vector("SubscriptionConfirmation, SignatureVersion 2 (derived key)");
    let secrets = serde_json::to_string(&[&official[0], &derived[0]]).unwrap();
    let topics = r#"require: { "json:/TopicArn": ["arn:aws:sns:us-east-2:295079676684:publish-and-verify-62674b1d-4295-426b-88e7-5fb75652a04e", "arn:aws:sns:us-west-2:123456789012:MyTopic"] }"#;
    let other = r#"require: { "json:/TopicArn": ["arn:aws:sns:eu-west-1:000000000000:mine"] }"#;
    let (gw, mut queue) = start(&format!(
        "  - {{ name: sns, provider: aws-sns, secrets: {secrets}, {topics} }}\n  - {{ name: sns-other, provider: aws-sns, secrets: {secrets}, {other} }}\n"
    ))
    .await;

    let reply = post(&gw.hook("sns"), &as_pairs(&notification_headers), notification.clone()).await;
    assert_accepted(&reply, "17dea24b-55c2-540b-8362-f916557af765");
    // Authentic, but from a topic this source does not subscribe to: refused.
    let reply = post(&gw.hook("sns-other"), &as_pairs(&notification_headers), notification.clone()).await;
    assert_rejected(&reply, 403, "not_allowed");
    assert_next_is(&mut queue, "17dea24b-55c2-540b-8362-f916557af765", notification.as_bytes()).await;

    // Without auto_confirm the SubscribeURL is only logged; the answer is 200 and nothing is published.
    let reply = post(&gw.hook("sns"), &as_pairs(&confirmation_headers), confirmation.clone()).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert!(reply.body.is_empty());
    // A tampered confirmation is refused like any message.
    let tampered = confirmation.replace("MyTopic", "YourTopic");
    let reply = post(&gw.hook("sns"), &as_pairs(&confirmation_headers), tampered).await;
    assert_rejected(&reply, 401, "signature_invalid");
    assert_next_is_sentinel(&gw, &mut queue).await;
    queue.cleanup().await;
}
