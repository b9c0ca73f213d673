//! `hookgate sign`: the headers a provider would send for a body, so a user can test a
//! source end to end with curl. Works for every HMAC, hash, token, basic and HMAC-JWT scheme
//! given the secret, and for Ed25519 and ECDSA schemes given a private key.

use std::time::SystemTime;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::HeaderValue;

use super::request::OwnedRequest;
use crate::config::secret::Secret;
use crate::providers::signature::Location;
use crate::providers::signed::{Algorithm, SignedScheme};
use crate::providers::{Provider, Scheme};

/// What to sign.
pub struct SignRequest {
    /// The shared secret, as configured in the source.
    pub secret: Option<String>,
    /// For asymmetric schemes: an Ed25519 seed (hex or base64, optional `whsk_` prefix) or a
    /// P-256 private key (PEM PKCS#8, or hex scalar).
    pub private_key: Option<String>,
    /// The request: method, URL, extra headers and body.
    pub request: OwnedRequest,
    /// The signing time.
    pub now: SystemTime,
}

impl SignRequest {
    fn clone_keys(&self) -> Self {
        // Not `Clone`: the private key should not be copied around casually.
        Self {
            secret: self.secret.clone(),
            private_key: self.private_key.clone(),
            request: self.request.clone(),
            now: self.now,
        }
    }
}

/// The headers to add to the request, `(name, value)` in order.
pub fn sign(provider: &Provider, input: SignRequest) -> Result<Vec<(String, String)>, String> {
    let mut reasons = Vec::new();
    for scheme in provider.schemes() {
        // Each attempt works on its own copy: a failed one must not leave headers behind.
        let mut attempt = input.clone_keys();
        match sign_with(scheme, &mut attempt) {
            Ok(headers) => return Ok(headers),
            Err(e) => reasons.push(e),
        }
    }
    Err(reasons.join("; "))
}

fn sign_with(scheme: &Scheme, input: &mut SignRequest) -> Result<Vec<(String, String)>, String> {
    match scheme {
        Scheme::Signed(signed) => sign_signed(signed, input),
        Scheme::Token(token) => {
            let secret = input.secret.as_deref().ok_or("token schemes need --secret")?;
            let header = token.header().ok_or("this token goes into the body or URL; put it there yourself")?;
            Ok(vec![(header.to_string(), format!("{}{secret}", token.prefix()))])
        }
        Scheme::Basic => {
            let secret = input.secret.as_deref().ok_or("basic needs --secret user:password")?;
            Ok(vec![("Authorization".into(), format!("Basic {}", STANDARD.encode(secret)))])
        }
        Scheme::Jwt(jwt) => {
            let token = match (&input.private_key, &input.secret) {
                (Some(private_key), _) => jwt
                    .sign_es256(&p256_key(private_key)?, &input.request.body, input.now)
                    .ok_or("this JWT scheme does not allow ES256")?,
                (None, Some(secret)) => jwt
                    .sign_hmac(secret.as_bytes(), &input.request.body, input.now)
                    .ok_or("this JWT scheme allows no HMAC algorithm: give --private-key")?,
                (None, None) => return Err("JWT schemes need --secret or --private-key".into()),
            };
            Ok(vec![(jwt.header().to_string(), token)])
        }
        Scheme::None => Ok(Vec::new()),
    }
}

fn sign_signed(scheme: &SignedScheme, input: &mut SignRequest) -> Result<Vec<(String, String)>, String> {
    let mut added = Vec::new();
    let mut params = Vec::new();
    if let Some(ts) = scheme.timestamp() {
        let value = ts.render(input.now);
        match (ts.target(), ts.sig_param()) {
            (Ok(Some(header)), _) if !input.request.headers.contains_key(header) => {
                added.push((header.to_string(), value.clone()));
                input.request.headers.insert(header.clone(), header_value(&value)?);
            }
            (Ok(None), Some(name)) => params.push((name.to_owned(), value)),
            (Err(pointer), _) => eprintln!("note: the signed timestamp is the body field {pointer}; keep it current"),
            _ => {}
        }
    }
    for header in scheme.content_headers() {
        if input.request.headers.contains_key(&header) {
            continue;
        }
        if !header.as_str().contains("id") {
            return Err(format!(
                "the signed content includes header {header}: give it with --header '{header}: VALUE'"
            ));
        }
        let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
        added.push((header.to_string(), id.clone()));
        input.request.headers.insert(header, header_value(&id)?);
    }
    let view = input.request.view(true);
    let signature = match scheme.algorithm() {
        Algorithm::Hmac(_) | Algorithm::Hash(_) => {
            let secret = input.secret.as_deref().ok_or("HMAC schemes need --secret")?;
            let key = scheme.decode_key(&Secret::new(secret))?;
            scheme.sign(&key, &view, &params).ok_or("an input of the signed content is missing (is --url set?)")?
        }
        Algorithm::Ed25519 => {
            let content = scheme.content(&view, &params, None)?;
            ed25519_sign(input.private_key.as_deref().ok_or("Ed25519 schemes need --private-key")?, &content)?
        }
        Algorithm::Ecdsa { der } => {
            let content = scheme.content(&view, &params, None)?;
            ecdsa_sign(input.private_key.as_deref().ok_or("ECDSA schemes need --private-key")?, &content, der)?
        }
        Algorithm::Rsa(_) => return Err("RSA signatures come from the provider's own key".into()),
    };
    let rendered = scheme.signature().render(&signature, &params);
    match scheme.signature().location() {
        Location::Header(name) => added.push((name.to_string(), rendered)),
        Location::Query(name) => added.push((format!("(query parameter {name})"), rendered)),
        Location::Json(pointer) => added.push((format!("(body field {pointer})"), rendered)),
    }
    Ok(added)
}

fn header_value(text: &str) -> Result<HeaderValue, String> {
    HeaderValue::from_str(text).map_err(|_| format!("`{text}` is not a valid header value"))
}

fn decode_key_text(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    let text = ["whsk_", "whsec_"].iter().find_map(|p| text.strip_prefix(p)).unwrap_or(text);
    hex::decode(text).ok().or_else(|| STANDARD.decode(text).ok())
}

fn ed25519_sign(private_key: &str, content: &[u8]) -> Result<Vec<u8>, String> {
    use ed25519_dalek::Signer;
    let bytes = decode_key_text(private_key).ok_or("the Ed25519 private key must be hex or base64")?;
    // Seed (32 bytes), or seed followed by the public key (64 bytes, as libsodium writes it).
    let seed: [u8; 32] =
        bytes.get(..32).and_then(|s| s.try_into().ok()).ok_or("an Ed25519 private key has 32 bytes")?;
    Ok(ed25519_dalek::SigningKey::from_bytes(&seed).sign(content).to_bytes().to_vec())
}

/// A P-256 private key from PEM (PKCS#8) or a hex/base64 scalar.
fn p256_key(private_key: &str) -> Result<p256::ecdsa::SigningKey, String> {
    use p256::pkcs8::DecodePrivateKey;
    p256::ecdsa::SigningKey::from_pkcs8_pem(private_key)
        .ok()
        .or_else(|| decode_key_text(private_key).and_then(|b| p256::ecdsa::SigningKey::from_slice(&b).ok()))
        .ok_or_else(|| "the P-256 private key must be PEM (PKCS#8) or a hex scalar".to_owned())
}

fn ecdsa_sign(private_key: &str, content: &[u8], der: bool) -> Result<Vec<u8>, String> {
    use p256::ecdsa::signature::Signer;
    let key = p256_key(private_key)?;
    let signature: p256::ecdsa::Signature = key.sign(content);
    Ok(if der { signature.to_der().as_bytes().to_vec() } else { signature.to_bytes().to_vec() })
}

/// A ready `curl` command for the signed request.
pub fn curl(url: &str, method: &str, headers: &[(String, String)], body_file: Option<&str>) -> String {
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let mut parts = vec!["curl".to_owned(), "-i".into(), "-X".into(), method.to_owned(), quote(url)];
    for (name, value) in headers.iter().filter(|(n, _)| !n.starts_with('(')) {
        parts.push("-H".into());
        parts.push(quote(&format!("{name}: {value}")));
    }
    if let Some(file) = body_file {
        parts.push("--data-binary".into());
        parts.push(quote(&format!("@{file}")));
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::providers::VerifyContext;

    fn provider(name: &str) -> Provider {
        Provider::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("providers"), name).unwrap()
    }

    /// Signs with the CLI's code, then verifies with the gateway's: they must agree.
    fn round_trip(name: &str, secret: Option<&str>, private_key: Option<&str>, verify_secret: &str, url: Option<&str>) {
        let p = provider(name);
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let body = br#"{"id":"evt_1","type":"t","event_id":"E1","challenge":"x"}"#.to_vec();
        let request = OwnedRequest::new("POST", url, &["Content-Type: application/json".into()], body).unwrap();
        let input = SignRequest {
            secret: secret.map(str::to_owned),
            private_key: private_key.map(str::to_owned),
            request,
            now,
        };
        let headers = sign(&p, input).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut lines: Vec<String> = headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        lines.push("Content-Type: application/json".into());
        let signed = OwnedRequest::new(
            "POST",
            url,
            &lines,
            br#"{"id":"evt_1","type":"t","event_id":"E1","challenge":"x"}"#.to_vec(),
        )
        .unwrap();
        let keys = p.decode_secrets(&[Secret::new(verify_secret)]).unwrap();
        let view = signed.view(p.needs_json_to_verify());
        assert_eq!(p.verify(&view, &keys, VerifyContext::default(), now), Ok(()), "{name}: {headers:?}");
    }

    #[test]
    fn signed_requests_verify() {
        for (name, secret) in [
            ("github", "s3cret"),
            ("stripe", "whsec_abc"),
            ("slack", "s3cret"),
            ("standard-webhooks", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            ("paddle", "pdl_ntfset_x"),
            ("twitch", "0123456789abcdef"),
            ("gitlab", "glsecret"),
            ("netlify", "jws-secret"),
            ("postmark", "user:pass"),
            ("hubspot-v1", "s3cret"),
        ] {
            round_trip(name, Some(secret), None, secret, None);
        }
        round_trip("square", Some("sq-key"), None, "sq-key", Some("https://hooks.example.com/hooks/sq"));
        round_trip("twilio", Some("auth-token"), None, "auth-token", Some("https://hooks.example.com/hooks/tw?x=1"));
    }

    #[test]
    fn asymmetric_schemes_sign_with_a_private_key() {
        // RFC 8032 §7.1 TEST 1 key pair.
        let seed = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
        let public = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
        round_trip("discord", None, Some(seed), public, None);
        let whpk = format!("whpk_{}", STANDARD.encode(hex::decode(public).unwrap()));
        round_trip("standard-webhooks", None, Some(seed), &whpk, None);
    }

    #[test]
    fn es256_tokens_sign_with_a_private_key() {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        // RFC 6979 A.2.5 P-256 private key.
        let scalar = "c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721";
        let key = p256::ecdsa::SigningKey::from_slice(&hex::decode(scalar).unwrap()).unwrap();
        let point = key.verifying_key().to_encoded_point(false);
        let jwk = serde_json::json!({
            "kty": "EC", "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()),
            "y": URL_SAFE_NO_PAD.encode(point.y().unwrap()),
        })
        .to_string();
        round_trip("plaid", None, Some(scalar), &jwk, None);
    }

    #[test]
    fn curl_commands_quote_their_arguments() {
        let cmd = curl("http://h/x", "POST", &[("X-Sig".into(), "a'b".into())], Some("body.json"));
        assert_eq!(cmd, r"curl -i -X POST 'http://h/x' -H 'X-Sig: a'\''b' --data-binary '@body.json'");
    }
}
