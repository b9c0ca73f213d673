//! Signing as each provider does, computed here independently of hookgate's engine.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

/// Seconds since the epoch.
pub(crate) fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// GitHub: `X-Hub-Signature-256`.
pub(crate) fn github(secret: &str, id: &str, event: &str, body: &[u8]) -> Vec<(&'static str, String)> {
    vec![
        ("X-Hub-Signature-256", format!("sha256={}", hex::encode(hmac_sha256(secret.as_bytes(), &[body])))),
        ("X-GitHub-Delivery", id.to_owned()),
        ("X-GitHub-Event", event.to_owned()),
        ("Content-Type", "application/json".to_owned()),
    ]
}

/// Stripe: `Stripe-Signature: t=…,v1=…`.
pub(crate) fn stripe(secret: &str, t: u64, body: &[u8]) -> Vec<(&'static str, String)> {
    let sig = hmac_sha256(secret.as_bytes(), &[t.to_string().as_bytes(), b".", body]);
    vec![
        ("Stripe-Signature", format!("t={t},v1={}", hex::encode(sig))),
        ("Content-Type", "application/json; charset=utf-8".to_owned()),
    ]
}

/// Slack: `X-Slack-Signature` over `v0:{ts}:{body}`.
pub(crate) fn slack(secret: &str, ts: u64, body: &[u8]) -> Vec<(&'static str, String)> {
    let sig = hmac_sha256(secret.as_bytes(), &[b"v0:", ts.to_string().as_bytes(), b":", body]);
    vec![
        ("X-Slack-Request-Timestamp", ts.to_string()),
        ("X-Slack-Signature", format!("v0={}", hex::encode(sig))),
        ("Content-Type", "application/json".to_owned()),
    ]
}

/// Standard Webhooks: `webhook-signature: v1,<base64>` over `{id}.{ts}.{body}`.
pub(crate) fn standard(secret: &str, id: &str, ts: u64, body: &[u8]) -> Vec<(&'static str, String)> {
    let key = STANDARD.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
    let sig = hmac_sha256(&key, &[id.as_bytes(), b".", ts.to_string().as_bytes(), b".", body]);
    vec![
        ("webhook-id", id.to_owned()),
        ("webhook-timestamp", ts.to_string()),
        ("webhook-signature", format!("v1,{}", STANDARD.encode(sig))),
        ("Content-Type", "application/json".to_owned()),
    ]
}
