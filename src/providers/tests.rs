//! Known-answer vectors for the shipped provider files (the files under test are
//! `providers/*.yaml` themselves), plus the negatives every scheme must reject.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderMap;

use super::field::RequestView;
use super::key::Key;
use super::{Provider, VerifyError};
use crate::config::secret::Secret;

/// Valid as UTF-8 and as base64 ("wrong-secret"), so every key decoding accepts it.
const WRONG_SECRET: &str = "d3Jvbmctc2VjcmV0";

fn provider(name: &str) -> Provider {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("providers");
    Provider::load(&dir, name).unwrap_or_else(|e| panic!("{e}"))
}

fn keys(provider: &Provider, secrets: &[&str]) -> Vec<Key> {
    secrets
        .iter()
        .map(|s| provider.decode_secret(&Secret::new(*s)).unwrap())
        .collect()
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in pairs {
        map.append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    map
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn verify(
    p: &Provider,
    keys: &[Key],
    headers: &HeaderMap,
    body: &[u8],
    now: SystemTime,
) -> Result<(), VerifyError> {
    p.verify(
        &RequestView {
            headers,
            body,
            json: None,
        },
        keys,
        None,
        now,
    )
}

/// A fixed request of one provider, to be mutated by the negative cases.
struct Case {
    provider: Provider,
    secret: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    now: u64,
}

impl Case {
    fn run(&self) -> Result<(), VerifyError> {
        self.run_with(&[self.secret], &self.headers, &self.body, self.now)
    }

    fn run_with(
        &self,
        secrets: &[&str],
        hs: &[(&'static str, String)],
        body: &[u8],
        now: u64,
    ) -> Result<(), VerifyError> {
        let pairs: Vec<(&str, &str)> = hs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        verify(
            &self.provider,
            &keys(&self.provider, secrets),
            &headers(&pairs),
            body,
            at(now),
        )
    }

    /// The negatives every scheme must reject.
    fn assert_negatives(&self, tolerance: Option<u64>) {
        assert_eq!(self.run(), Ok(()), "the known-answer vector must verify");
        let mut tampered = self.body.clone();
        tampered[0] ^= 1;
        assert_eq!(
            self.run_with(&[self.secret], &self.headers, &tampered, self.now),
            Err(VerifyError::SignatureInvalid)
        );
        assert_eq!(
            self.run_with(&[WRONG_SECRET], &self.headers, &self.body, self.now),
            Err(VerifyError::SignatureInvalid)
        );
        // Rotation: the right secret among wrong ones verifies, whatever its position.
        assert_eq!(
            self.run_with(
                &[WRONG_SECRET, self.secret],
                &self.headers,
                &self.body,
                self.now
            ),
            Ok(())
        );
        for i in 0..self.headers.len() {
            let mut without = self.headers.clone();
            without.remove(i);
            assert_eq!(
                self.run_with(&[self.secret], &without, &self.body, self.now),
                Err(VerifyError::SignatureMissing),
                "missing {}",
                self.headers[i].0
            );
        }
        if let Some(tolerance) = tolerance {
            let ts = self.now;
            assert_eq!(
                self.run_with(&[self.secret], &self.headers, &self.body, ts + tolerance),
                Ok(())
            );
            assert_eq!(
                self.run_with(&[self.secret], &self.headers, &self.body, ts - tolerance),
                Ok(())
            );
            assert_eq!(
                self.run_with(
                    &[self.secret],
                    &self.headers,
                    &self.body,
                    ts + tolerance + 1
                ),
                Err(VerifyError::TimestampOutOfTolerance)
            );
            assert_eq!(
                self.run_with(
                    &[self.secret],
                    &self.headers,
                    &self.body,
                    ts - tolerance - 1
                ),
                Err(VerifyError::TimestampOutOfTolerance)
            );
        }
    }

    fn with_header(&self, name: &'static str, value: String) -> Vec<(&'static str, String)> {
        self.headers
            .iter()
            .map(|(k, v)| {
                if *k == name {
                    (*k, value.clone())
                } else {
                    (*k, v.clone())
                }
            })
            .collect()
    }
}

// GitHub docs, "Testing the webhook payload validation":
// https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
// (github/docs content/webhooks/using-webhooks/validating-webhook-deliveries.md).
fn github_docs_case() -> Case {
    Case {
        provider: provider("github"),
        secret: "It's a Secret to Everybody",
        headers: vec![(
            "X-Hub-Signature-256",
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17".into(),
        )],
        body: b"Hello, World!".to_vec(),
        now: 1_700_000_000,
    }
}

#[test]
fn github_docs_vector_and_negatives() {
    github_docs_case().assert_negatives(None);
}

#[test]
fn github_octokit_vector() {
    // octokit/webhooks-methods.js test/verify.test.ts (`signatureSHA256`).
    let case = Case {
        provider: provider("github"),
        secret: "mysecret",
        headers: vec![(
            "X-Hub-Signature-256",
            "sha256=4864d2759938a15468b5df9ade20bf161da9b4f737ea61794142f3484236bda3".into(),
        )],
        body: br#"{"foo":"bar"}"#.to_vec(),
        now: 1_700_000_000,
    };
    assert_eq!(case.run(), Ok(()));
}

#[test]
fn github_rejects_malformed_and_truncated_signatures() {
    let case = github_docs_case();
    let sig = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    for bad in [
        sig.to_owned(),
        format!("sha1={sig}"),
        format!("sha256={}", &sig[..62]),
        "sha256=zz".into(),
    ] {
        let hs = case.with_header("X-Hub-Signature-256", bad.clone());
        assert_eq!(
            case.run_with(&[case.secret], &hs, &case.body, case.now),
            Err(VerifyError::SignatureInvalid),
            "{bad}"
        );
    }
    // Hex is case-insensitive: compare decoded bytes, not strings.
    let upper = case.with_header(
        "X-Hub-Signature-256",
        format!("sha256={}", sig.to_uppercase()),
    );
    assert_eq!(
        case.run_with(&[case.secret], &upper, &case.body, case.now),
        Ok(())
    );
}

// stripe/stripe-dotnet src/StripeTests/Services/Events/EventUtilityTest.cs with
// src/StripeTests/Resources/event_test_signature.json (LF line endings, trailing newline).
const STRIPE_DOTNET_EVENT: &str = include_str!("testdata/stripe_event_test_signature.json");

fn stripe_case() -> Case {
    Case {
        provider: provider("stripe"),
        secret: "webhook_secret",
        headers: vec![(
            "Stripe-Signature",
            "t=1533204620,v1=2220f87ef101a04665f11cdf770523143f875572008577fa0f20882ddb9cc3c7,v0=63f3a72374a733066c4be69ed7f8e5ac85c22c9f0a6a612ab9a025a9e4ee7eef".into(),
        )],
        body: STRIPE_DOTNET_EVENT.as_bytes().to_vec(),
        now: 1_533_204_620,
    }
}

#[test]
fn stripe_dotnet_vector_and_negatives() {
    stripe_case().assert_negatives(Some(300));
}

#[test]
fn stripe_accepts_the_good_signature_among_several() {
    let case = stripe_case();
    let good = "2220f87ef101a04665f11cdf770523143f875572008577fa0f20882ddb9cc3c7";
    let bad = "1".repeat(64);
    for header in [
        format!("t=1533204620,v1={bad},v1={good}"),
        format!("v1={good},t=1533204620"),
    ] {
        let hs = case.with_header("Stripe-Signature", header.clone());
        assert_eq!(
            case.run_with(&[case.secret], &hs, &case.body, case.now),
            Ok(()),
            "{header}"
        );
    }
    // v0 is not a verifying scheme; a header with only v0 is malformed.
    let only_v0 = case.with_header("Stripe-Signature", format!("t=1533204620,v0={good}"));
    assert_eq!(
        case.run_with(&[case.secret], &only_v0, &case.body, case.now),
        Err(VerifyError::SignatureInvalid)
    );
    // Without t the signed content cannot be built.
    let no_t = case.with_header("Stripe-Signature", format!("v1={good}"));
    assert_eq!(
        case.run_with(&[case.secret], &no_t, &case.body, case.now),
        Err(VerifyError::SignatureMissing)
    );
}

// slackapi/python-slack-sdk tests/slack_sdk/signature/test_signature_verifier.py, the example of
// https://docs.slack.dev/authentication/verifying-requests-from-slack/.
fn slack_case() -> Case {
    Case {
        provider: provider("slack"),
        secret: "8f742231b10e8888abcd99yyyzzz85a5",
        headers: vec![
            ("X-Slack-Request-Timestamp", "1531420618".into()),
            ("X-Slack-Signature", "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503".into()),
        ],
        body: b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c".to_vec(),
        now: 1_531_420_618,
    }
}

#[test]
fn slack_sdk_vector_and_negatives() {
    slack_case().assert_negatives(Some(300));
}

#[test]
fn slack_timestamp_is_part_of_the_signed_content() {
    let case = slack_case();
    let hs = case.with_header("X-Slack-Request-Timestamp", "1531420619".into());
    assert_eq!(
        case.run_with(&[case.secret], &hs, &case.body, case.now),
        Err(VerifyError::SignatureInvalid)
    );
    let garbage = case.with_header("X-Slack-Request-Timestamp", "soon".into());
    assert_eq!(
        case.run_with(&[case.secret], &garbage, &case.body, case.now),
        Err(VerifyError::SignatureInvalid)
    );
}

// standard-webhooks/standard-webhooks libraries/javascript/src/webhook.test.ts ("sign function
// works") and libraries/python/tests/test_webhooks.py (`test_sign_function`).
fn standard_case() -> Case {
    Case {
        provider: provider("standard-webhooks"),
        secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        headers: vec![
            ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek".into()),
            ("webhook-timestamp", "1614265330".into()),
            (
                "webhook-signature",
                "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=".into(),
            ),
        ],
        body: br#"{"test": 2432232314}"#.to_vec(),
        now: 1_614_265_330,
    }
}

#[test]
fn standard_webhooks_vector_and_negatives() {
    standard_case().assert_negatives(Some(300));
}

#[test]
fn standard_webhooks_signature_lists() {
    let case = standard_case();
    let good = "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
    let accepted = [
        format!("v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= v1,{good}"),
        format!("v2,{good} v1,{good}"),
        format!("v1a,{good} v1,{good}"),
    ];
    for header in accepted {
        let hs = case.with_header("webhook-signature", header.clone());
        assert_eq!(
            case.run_with(&[case.secret], &hs, &case.body, case.now),
            Ok(()),
            "{header}"
        );
    }
    let rejected = [
        format!("v2,{good}"),
        good.to_owned(),
        format!("v1,{}", &good[..40]),
        "v1,".into(),
    ];
    for header in rejected {
        let hs = case.with_header("webhook-signature", header.clone());
        assert_eq!(
            case.run_with(&[case.secret], &hs, &case.body, case.now),
            Err(VerifyError::SignatureInvalid),
            "{header}"
        );
    }
    // The id is signed: another id with the same signature fails.
    let other_id = case.with_header("webhook-id", "msg_other".into());
    assert_eq!(
        case.run_with(&[case.secret], &other_id, &case.body, case.now),
        Err(VerifyError::SignatureInvalid)
    );
}

#[test]
fn tolerance_override_narrows_the_window() {
    let case = standard_case();
    let pairs: Vec<(&str, &str)> = case.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let hs = headers(&pairs);
    let view = RequestView {
        headers: &hs,
        body: &case.body,
        json: None,
    };
    let keys = keys(&case.provider, &[case.secret]);
    let later = at(case.now + 60);
    assert_eq!(case.provider.verify(&view, &keys, None, later), Ok(()));
    assert_eq!(
        case.provider
            .verify(&view, &keys, Some(Duration::from_secs(30)), later),
        Err(VerifyError::TimestampOutOfTolerance)
    );
}

#[test]
fn event_ids_and_types_follow_each_provider() {
    let json = serde_json::json!({"id": "evt_1", "type": "invoice.paid", "event_id": "Ev1", "event": {"type": "app_mention"}});
    let hs = headers(&[
        ("X-GitHub-Delivery", "d-1"),
        ("X-GitHub-Event", "push"),
        ("webhook-id", "msg_1"),
    ]);
    let view = RequestView {
        headers: &hs,
        body: b"{}",
        json: Some(&json),
    };
    let cases = [
        ("github", "d-1", "push"),
        ("stripe", "evt_1", "invoice.paid"),
        ("slack", "Ev1", "app_mention"),
        ("standard-webhooks", "msg_1", "invoice.paid"),
    ];
    for (name, id, event_type) in cases {
        let p = provider(name);
        assert_eq!(
            (p.event_id(&view).as_str(), p.event_type(&view).as_str()),
            (id, event_type),
            "{name}"
        );
    }
}

#[test]
fn missing_ids_fall_back_to_a_body_digest() {
    let hs = HeaderMap::new();
    let view = RequestView {
        headers: &hs,
        body: b"abc",
        json: None,
    };
    let p = provider("github");
    assert_eq!(
        p.event_id(&view),
        "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(p.event_type(&view), "unknown");
}

#[test]
fn slack_url_verification_is_a_handshake_answered_with_the_challenge() {
    let p = provider("slack");
    let json = serde_json::json!({"type": "url_verification", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P", "token": "x"});
    let hs = HeaderMap::new();
    let view = RequestView {
        headers: &hs,
        body: b"",
        json: Some(&json),
    };
    let reply = p
        .handshake(&view)
        .expect("url_verification matches")
        .reply(&view);
    assert_eq!(reply.status, http::StatusCode::OK);
    assert_eq!(
        &reply.body[..],
        b"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    );
    let callback = serde_json::json!({"type": "event_callback", "event": {"type": "message"}});
    assert!(
        p.handshake(&RequestView {
            json: Some(&callback),
            ..view
        })
        .is_none()
    );
}
