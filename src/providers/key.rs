//! Turning a configured secret into HMAC key bytes, as each provider defines it (Stripe uses the
//! `whsec_…` text verbatim; Standard Webhooks strips `whsec_` and base64-decodes).

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use super::spec::{KeyDecode, KeySpec};
use crate::config::secret::Secret;

/// Key material; `Debug` never prints it.
#[derive(Clone)]
pub struct Key(Vec<u8>);

impl Key {
    /// The raw bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key([redacted])")
    }
}

/// Decodes `secret` per `spec`. The error names the expected form, never the secret.
pub fn decode_key(spec: &KeySpec, secret: &Secret) -> Result<Key, String> {
    let text = secret.expose();
    if text.is_empty() {
        return Err("secret is empty".to_owned());
    }
    let text = spec
        .strip_prefix
        .iter()
        .find_map(|p| text.strip_prefix(p.as_str()))
        .unwrap_or(text);
    let bytes = match spec.decode {
        KeyDecode::Utf8 => Some(text.as_bytes().to_vec()),
        KeyDecode::Hex => hex::decode(text).ok(),
        KeyDecode::Base64 => STANDARD.decode(text).ok(),
        KeyDecode::Base64url => URL_SAFE_NO_PAD.decode(text).ok(),
    };
    match bytes {
        Some(b) if !b.is_empty() => Ok(Key(b)),
        _ => Err(format!(
            "secret is not valid {:?}{}",
            spec.decode,
            describe_prefixes(&spec.strip_prefix)
        )
        .to_lowercase()),
    }
}

fn describe_prefixes(prefixes: &[String]) -> String {
    if prefixes.is_empty() {
        String::new()
    } else {
        format!(" (after an optional `{}` prefix)", prefixes.join("`/`"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_prefix_then_decodes() {
        let spec = KeySpec {
            decode: KeyDecode::Base64,
            strip_prefix: vec!["whsec_".into()],
        };
        let key = decode_key(&spec, &Secret::new("whsec_AQID")).unwrap();
        assert_eq!(key.bytes(), &[1, 2, 3]);
        let err = decode_key(&spec, &Secret::new("whsec_not base64!")).unwrap_err();
        assert_eq!(
            err,
            "secret is not valid base64 (after an optional `whsec_` prefix)"
        );
    }

    #[test]
    fn utf8_keys_are_verbatim_and_never_printed() {
        let key = decode_key(&KeySpec::default(), &Secret::new("whsec_x")).unwrap();
        assert_eq!(key.bytes(), b"whsec_x");
        assert_eq!(format!("{key:?}"), "Key([redacted])");
        assert!(decode_key(&KeySpec::default(), &Secret::new("")).is_err());
    }
}
