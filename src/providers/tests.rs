//! Engine behaviour beyond the known-answer vectors of `tests/vectors/` (which exercise every
//! shipped provider file): identity fallbacks, handshakes, overrides, token schemes.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderMap;

use super::request::RequestView;
use super::{Provider, VerifyContext, VerifyError};
use crate::config::secret::Secret;

fn provider(name: &str) -> Provider {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("providers");
    Provider::load(&dir, name).unwrap_or_else(|e| panic!("{e}"))
}

fn inline(yaml: &str) -> Provider {
    Provider::parse("inline", yaml, PathBuf::from("inline.yaml")).unwrap_or_else(|e| panic!("{e}"))
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in pairs {
        map.append(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
    }
    map
}

fn verify(
    p: &Provider,
    secrets: &[&str],
    req: &RequestView<'_>,
    ctx: VerifyContext<'_>,
    now: SystemTime,
) -> Result<(), VerifyError> {
    let secrets: Vec<Secret> = secrets.iter().map(|s| Secret::new(*s)).collect();
    p.verify(req, &p.decode_secrets(&secrets).unwrap(), ctx, now)
}

#[test]
fn event_ids_and_types_follow_each_provider() {
    let json =
        serde_json::json!({"id": "evt_1", "type": "invoice.paid", "event_id": "Ev1", "event": {"type": "app_mention"}});
    let hs = headers(&[("X-GitHub-Delivery", "d-1"), ("X-GitHub-Event", "push"), ("webhook-id", "msg_1")]);
    let view = RequestView::post(&hs, b"{}").with_json(Some(&json));
    let cases = [
        ("github", "d-1", "push"),
        ("stripe", "evt_1", "invoice.paid"),
        ("slack", "Ev1", "app_mention"),
        ("standard-webhooks", "msg_1", "invoice.paid"),
    ];
    for (name, id, event_type) in cases {
        let p = provider(name);
        assert_eq!((p.event_id(&view).as_str(), p.event_type(&view).as_str()), (id, event_type), "{name}");
    }
}

#[test]
fn missing_ids_fall_back_to_a_body_digest() {
    let hs = HeaderMap::new();
    let view = RequestView::post(&hs, b"abc");
    let p = provider("github");
    assert_eq!(p.event_id(&view), "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_eq!(p.event_type(&view), "unknown");
}

#[test]
fn slack_url_verification_is_a_signed_handshake_answered_with_the_challenge() {
    let p = provider("slack");
    let json = serde_json::json!({"type": "url_verification", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"});
    let hs = HeaderMap::new();
    let view = RequestView::post(&hs, b"").with_json(Some(&json));
    assert!(p.handshake(&view, true).is_none(), "answered only after verification");
    let reply = p.handshake(&view, false).expect("url_verification matches").reply(&view, None);
    assert_eq!(reply.status, http::StatusCode::OK);
    assert_eq!(&reply.body[..], b"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P");
    let callback = serde_json::json!({"type": "event_callback", "event": {"type": "message"}});
    assert!(p.handshake(&view.with_json(Some(&callback)), false).is_none());
}

#[test]
fn a_source_tolerance_narrows_the_window() {
    // Standard Webhooks library vector (tests/vectors/standard-webhooks.yaml).
    let p = provider("standard-webhooks");
    let hs = headers(&[
        ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"),
        ("webhook-timestamp", "1614265330"),
        ("webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
    ]);
    let view = RequestView::post(&hs, br#"{"test": 2432232314}"#);
    let later = UNIX_EPOCH + Duration::from_secs(1_614_265_330 + 60);
    let secret = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"];
    assert_eq!(verify(&p, &secret, &view, VerifyContext::default(), later), Ok(()));
    let narrow = VerifyContext { tolerance: Some(Duration::from_secs(30)), token_header: None };
    assert_eq!(verify(&p, &secret, &view, narrow, later), Err(VerifyError::TimestampOutOfTolerance));
}

#[test]
fn tokens_compare_exactly_and_the_header_can_be_overridden() {
    let p = inline("verify: { type: token, header: X-Token, prefix: 'Bearer ' }\n");
    let now = SystemTime::now();
    let ok = headers(&[("X-Token", "Bearer s3cret")]);
    let ctx = VerifyContext::default();
    assert_eq!(verify(&p, &["s3cret"], &RequestView::post(&ok, b""), ctx, now), Ok(()));
    for bad in ["s3cret", "Bearer s3cre", "Bearer s3cret2", "bearer s3cret"] {
        let hs = headers(&[("X-Token", bad)]);
        assert_eq!(
            verify(&p, &["s3cret"], &RequestView::post(&hs, b""), ctx, now),
            Err(VerifyError::SignatureInvalid),
            "{bad}"
        );
    }
    assert_eq!(
        verify(&p, &["s3cret"], &RequestView::post(&HeaderMap::new(), b""), ctx, now),
        Err(VerifyError::SignatureMissing)
    );
    let custom = http::HeaderName::from_static("authorization");
    let hs = headers(&[("Authorization", "Bearer s3cret")]);
    let ctx = VerifyContext { tolerance: None, token_header: Some(&custom) };
    assert_eq!(verify(&p, &["s3cret"], &RequestView::post(&hs, b""), ctx, now), Ok(()));
}

#[test]
fn basic_credentials_are_checked() {
    let p = inline("verify: { type: basic }\n");
    let now = SystemTime::now();
    let ctx = VerifyContext::default();
    // base64("user:pass") = dXNlcjpwYXNz
    let ok = headers(&[("Authorization", "Basic dXNlcjpwYXNz")]);
    assert_eq!(verify(&p, &["user:pass"], &RequestView::post(&ok, b""), ctx, now), Ok(()));
    let bad = headers(&[("Authorization", "Basic dXNlcjpwYXN6")]);
    assert_eq!(verify(&p, &["user:pass"], &RequestView::post(&bad, b""), ctx, now), Err(VerifyError::SignatureInvalid));
    let bearer = headers(&[("Authorization", "Bearer dXNlcjpwYXNz")]);
    assert_eq!(
        verify(&p, &["user:pass"], &RequestView::post(&bearer, b""), ctx, now),
        Err(VerifyError::SignatureInvalid)
    );
}

#[test]
fn with_several_schemes_the_most_telling_error_wins() {
    // Standard Webhooks has v1 (HMAC) and v1a (Ed25519); a valid v1 signature that is stale must
    // be reported as stale, not as "invalid" from the other scheme.
    let p = provider("standard-webhooks");
    let hs = headers(&[
        ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"),
        ("webhook-timestamp", "1614265330"),
        ("webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
    ]);
    let view = RequestView::post(&hs, br#"{"test": 2432232314}"#);
    let much_later = UNIX_EPOCH + Duration::from_secs(1_614_265_330 + 3600);
    let secret = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"];
    assert_eq!(
        verify(&p, &secret, &view, VerifyContext::default(), much_later),
        Err(VerifyError::TimestampOutOfTolerance)
    );
}

#[test]
fn a_secret_must_fit_some_scheme() {
    let p = provider("standard-webhooks");
    let err = p.decode_secrets(&[Secret::new("whsec_***")]).unwrap_err();
    assert_eq!(err, vec![(0, "secret is not a valid base64 (after an optional `whsec_` prefix)".to_owned())]);
    let keys = p.decode_secrets(&[Secret::new("whpk_ZlN4eg7dSSqi0moX9hQUk3orrOouK3QVQSlJa248c/g=")]).unwrap();
    assert!(!keys.is_empty());
}
