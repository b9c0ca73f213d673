//! Turning a configured secret into key material, as each scheme defines it: HMAC key bytes
//! (Stripe uses `whsec_…` verbatim; Standard Webhooks strips `whsec_` and base64-decodes),
//! Ed25519 and P-256 public keys, JSON Web Keys.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use p256::pkcs8::DecodePublicKey;

use super::spec::{KeyDecode, KeySpec};
use crate::config::secret::Secret;

/// Key material; `Debug` never prints secret bytes.
#[derive(Clone)]
pub enum Key {
    /// A shared secret: HMAC key, hash secret, token or credentials.
    Bytes(Vec<u8>),
    /// An Ed25519 public key.
    Ed25519(ed25519_dalek::VerifyingKey),
    /// A P-256 public key, with the JWK `kid` if it came from one.
    P256(p256::ecdsa::VerifyingKey, Option<String>),
    /// An RSA public key from an X.509 certificate.
    Rsa(Box<rsa::RsaPublicKey>),
}

impl Key {
    /// The shared-secret bytes, for schemes that use them.
    pub fn bytes(&self) -> Option<&[u8]> {
        match self {
            Key::Bytes(b) => Some(b),
            _ => None,
        }
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Bytes(_) => f.write_str("Key::Bytes([redacted])"),
            Key::Ed25519(k) => write!(f, "Key::Ed25519({})", hex::encode(k.as_bytes())),
            Key::P256(_, kid) => write!(f, "Key::P256(kid={kid:?})"),
            Key::Rsa(_) => f.write_str("Key::Rsa"),
        }
    }
}

/// What kind of key a scheme needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// Shared-secret bytes.
    Bytes,
    /// Ed25519 public key.
    Ed25519,
    /// P-256 public key.
    P256,
    /// Shared secret (HS*) or P-256 JWK (ES256), for JWT.
    Jwt,
    /// RSA public key of a certificate.
    Rsa,
}

/// Decodes `secret` per `spec` for a `kind` of key. The error names the expected form, never the
/// secret.
pub fn decode_key(kind: KeyKind, spec: &KeySpec, secret: &Secret) -> Result<Key, String> {
    let text = secret.expose();
    if text.is_empty() {
        return Err("secret is empty".to_owned());
    }
    let text = spec.strip_prefix.iter().find_map(|p| text.strip_prefix(p.as_str())).unwrap_or(text);
    let expected =
        || format!("secret is not a valid {}{}", describe(kind, spec.decode), describe_prefixes(&spec.strip_prefix));
    match (kind, spec.decode) {
        (KeyKind::Ed25519, _) => {
            let bytes = decode_bytes(spec.decode, text).ok_or_else(expected)?;
            let raw: [u8; 32] = bytes.try_into().map_err(|_| expected())?;
            ed25519_dalek::VerifyingKey::from_bytes(&raw).map(Key::Ed25519).map_err(|_| expected())
        }
        (KeyKind::P256 | KeyKind::Jwt, KeyDecode::SpkiBase64) => {
            let der = STANDARD.decode(text).map_err(|_| expected())?;
            p256::ecdsa::VerifyingKey::from_public_key_der(&der).map(|k| Key::P256(k, None)).map_err(|_| expected())
        }
        (KeyKind::P256 | KeyKind::Jwt, KeyDecode::Pem) => {
            p256::ecdsa::VerifyingKey::from_public_key_pem(text).map(|k| Key::P256(k, None)).map_err(|_| expected())
        }
        (KeyKind::P256 | KeyKind::Jwt, KeyDecode::Jwk) => jwk_p256(text).ok_or_else(expected),
        (KeyKind::P256, _) => Err(expected()),
        (KeyKind::Rsa, KeyDecode::X509Pem) => rsa_from_certificate(text.as_bytes()).ok_or_else(expected),
        (KeyKind::Rsa, _) => Err(expected()),
        (KeyKind::Bytes | KeyKind::Jwt, decode) => {
            decode_bytes(decode, text).filter(|b| !b.is_empty()).map(Key::Bytes).ok_or_else(expected)
        }
    }
}

/// The RSA public key of a PEM certificate.
pub fn rsa_from_certificate(pem: &[u8]) -> Option<Key> {
    use x509_cert::der::{DecodePem, Encode};
    let certificate = x509_cert::Certificate::from_pem(pem).ok()?;
    let spki = certificate.tbs_certificate.subject_public_key_info.to_der().ok()?;
    let key = <rsa::RsaPublicKey as rsa::pkcs8::DecodePublicKey>::from_public_key_der(&spki).ok()?;
    Some(Key::Rsa(Box::new(key)))
}

fn decode_bytes(decode: KeyDecode, text: &str) -> Option<Vec<u8>> {
    match decode {
        KeyDecode::Utf8 => Some(text.as_bytes().to_vec()),
        KeyDecode::Hex => hex::decode(text).ok(),
        KeyDecode::Base64 | KeyDecode::SpkiBase64 => STANDARD.decode(text).ok(),
        KeyDecode::Base64url => URL_SAFE_NO_PAD.decode(text).ok(),
        KeyDecode::Pem | KeyDecode::Jwk | KeyDecode::X509Pem => None,
    }
}

/// A P-256 key from a JWK (`kty: EC`, `crv: P-256`, `x`, `y`), keeping its `kid`.
fn jwk_p256(text: &str) -> Option<Key> {
    let jwk: serde_json::Value = serde_json::from_str(text).ok()?;
    if jwk["kty"] != "EC" || jwk["crv"] != "P-256" {
        return None;
    }
    let coordinate = |name: &str| URL_SAFE_NO_PAD.decode(jwk[name].as_str()?).ok().filter(|c| c.len() == 32);
    let (x, y) = (coordinate("x")?, coordinate("y")?);
    let point = p256::EncodedPoint::from_affine_coordinates(x.as_slice().into(), y.as_slice().into(), false);
    let key = p256::ecdsa::VerifyingKey::from_encoded_point(&point).ok()?;
    Some(Key::P256(key, jwk["kid"].as_str().map(str::to_owned)))
}

fn describe(kind: KeyKind, decode: KeyDecode) -> String {
    let form = match decode {
        KeyDecode::Utf8 => "text",
        KeyDecode::Hex => "hex",
        KeyDecode::Base64 => "base64",
        KeyDecode::Base64url => "base64url",
        KeyDecode::SpkiBase64 => "base64 DER public key",
        KeyDecode::Pem => "PEM public key",
        KeyDecode::Jwk => "JSON Web Key (EC P-256)",
        KeyDecode::X509Pem => "PEM X.509 certificate with an RSA key",
    };
    match kind {
        KeyKind::Ed25519 => format!("{form} Ed25519 public key (32 bytes)"),
        _ => form.to_owned(),
    }
}

fn describe_prefixes(prefixes: &[String]) -> String {
    if prefixes.is_empty() { String::new() } else { format!(" (after an optional `{}` prefix)", prefixes.join("`/`")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(decode: KeyDecode, strip: &[&str]) -> KeySpec {
        KeySpec { fetch: None, decode, strip_prefix: strip.iter().map(|s| (*s).to_owned()).collect() }
    }

    #[test]
    fn strips_prefix_then_decodes() {
        let key =
            decode_key(KeyKind::Bytes, &spec(KeyDecode::Base64, &["whsec_"]), &Secret::new("whsec_AQID")).unwrap();
        assert_eq!(key.bytes(), Some(&[1u8, 2, 3][..]));
        let err = decode_key(KeyKind::Bytes, &spec(KeyDecode::Base64, &["whsec_"]), &Secret::new("whsec_not base64!"))
            .unwrap_err();
        assert_eq!(err, "secret is not a valid base64 (after an optional `whsec_` prefix)");
    }

    #[test]
    fn utf8_keys_are_verbatim_and_never_printed() {
        let key = decode_key(KeyKind::Bytes, &KeySpec::default(), &Secret::new("whsec_x")).unwrap();
        assert_eq!(key.bytes(), Some(&b"whsec_x"[..]));
        assert_eq!(format!("{key:?}"), "Key::Bytes([redacted])");
        assert!(decode_key(KeyKind::Bytes, &KeySpec::default(), &Secret::new("")).is_err());
    }

    #[test]
    fn public_keys_are_checked() {
        // RFC 8032 test 1 public key.
        let hex_key = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
        assert!(matches!(
            decode_key(KeyKind::Ed25519, &spec(KeyDecode::Hex, &[]), &Secret::new(hex_key)),
            Ok(Key::Ed25519(_))
        ));
        let err = decode_key(KeyKind::Ed25519, &spec(KeyDecode::Hex, &[]), &Secret::new("abcd")).unwrap_err();
        assert_eq!(err, "secret is not a valid hex Ed25519 public key (32 bytes)");
        assert!(decode_key(KeyKind::P256, &spec(KeyDecode::SpkiBase64, &[]), &Secret::new("AAAA")).is_err());
    }
}
