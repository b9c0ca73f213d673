//! Finding and decoding signatures in a header: plain (`sha256=<hex>`), key-value
//! (`t=1,v1=a,v1=b`) and version lists (`v1,a v1,b`). Decoding is strict: a non-canonical
//! base64 or a stray character is a mismatch, never "close enough".

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http::{HeaderMap, HeaderName};

use super::VerifyError;
use super::field::header_name;
use super::spec::{Encoding, SignatureSpec};

/// Signatures found in a request, with the other parameters of the header.
#[derive(Debug, Default)]
pub struct Signatures {
    /// Decoded candidate signatures; a match with any of them verifies.
    pub candidates: Vec<Vec<u8>>,
    /// Non-signature `key=value` parameters (`kv` format), for `{sig.NAME}`.
    pub params: Vec<(String, String)>,
}

/// A compiled signature location and syntax.
#[derive(Debug, Clone)]
pub struct SignatureFormat {
    header: HeaderName,
    syntax: Syntax,
    encoding: Encoding,
}

#[derive(Debug, Clone)]
enum Syntax {
    Plain {
        prefix: String,
    },
    Kv {
        pair_sep: String,
        kv_sep: String,
        sig_keys: Vec<String>,
    },
    List {
        sep: String,
        version_sep: String,
        versions: Vec<String>,
    },
}

impl SignatureFormat {
    /// Compiles the spec.
    pub fn from_spec(spec: &SignatureSpec) -> Result<Self, String> {
        let (header, syntax, encoding) = match spec {
            SignatureSpec::Plain {
                header,
                prefix,
                encoding,
            } => (
                header,
                Syntax::Plain {
                    prefix: prefix.clone(),
                },
                *encoding,
            ),
            SignatureSpec::Kv {
                header,
                pair_sep,
                kv_sep,
                sig_keys,
                encoding,
            } => {
                non_empty("sig_keys", sig_keys)?;
                let syntax = Syntax::Kv {
                    pair_sep: pair_sep.clone(),
                    kv_sep: kv_sep.clone(),
                    sig_keys: sig_keys.clone(),
                };
                (header, syntax, *encoding)
            }
            SignatureSpec::List {
                header,
                sep,
                version_sep,
                versions,
                encoding,
            } => {
                non_empty("versions", versions)?;
                let syntax = Syntax::List {
                    sep: sep.clone(),
                    version_sep: version_sep.clone(),
                    versions: versions.clone(),
                };
                (header, syntax, *encoding)
            }
        };
        Ok(Self {
            header: header_name(header)?,
            syntax,
            encoding,
        })
    }

    /// Whether `{sig.NAME}` parameters exist in this format.
    pub fn has_params(&self) -> bool {
        matches!(self.syntax, Syntax::Kv { .. })
    }

    /// The header carrying the signature.
    pub fn header(&self) -> &HeaderName {
        &self.header
    }

    /// Extracts the signatures. A missing header is `SignatureMissing`; a header with no
    /// well-formed signature of an accepted version is `SignatureInvalid`.
    pub fn parse(&self, headers: &HeaderMap) -> Result<Signatures, VerifyError> {
        let mut found = Signatures::default();
        let mut present = false;
        for value in headers.get_all(&self.header) {
            present = true;
            let text = value.to_str().map_err(|_| VerifyError::SignatureInvalid)?;
            self.parse_value(text, &mut found);
        }
        if !present {
            return Err(VerifyError::SignatureMissing);
        }
        if found.candidates.is_empty() {
            return Err(VerifyError::SignatureInvalid);
        }
        Ok(found)
    }

    fn parse_value(&self, text: &str, found: &mut Signatures) {
        match &self.syntax {
            Syntax::Plain { prefix } => {
                if let Some(sig) = text.trim().strip_prefix(prefix.as_str()) {
                    self.push_decoded(sig, found);
                }
            }
            Syntax::Kv {
                pair_sep,
                kv_sep,
                sig_keys,
            } => {
                for pair in text.split(pair_sep.as_str()) {
                    let Some((key, value)) = pair.split_once(kv_sep.as_str()) else {
                        continue;
                    };
                    let (key, value) = (key.trim(), value.trim());
                    if sig_keys.iter().any(|k| k == key) {
                        self.push_decoded(value, found);
                    } else {
                        found.params.push((key.to_owned(), value.to_owned()));
                    }
                }
            }
            Syntax::List {
                sep,
                version_sep,
                versions,
            } => {
                for entry in text.split(sep.as_str()).filter(|e| !e.is_empty()) {
                    let Some((version, sig)) = entry.split_once(version_sep.as_str()) else {
                        continue;
                    };
                    if versions.iter().any(|v| v == version) {
                        self.push_decoded(sig, found);
                    }
                }
            }
        }
    }

    fn push_decoded(&self, text: &str, found: &mut Signatures) {
        if let Some(bytes) = decode(self.encoding, text) {
            found.candidates.push(bytes);
        }
    }
}

/// Strict decoding: `None` for anything that is not the canonical encoding of some bytes.
pub fn decode(encoding: Encoding, text: &str) -> Option<Vec<u8>> {
    match encoding {
        Encoding::Hex => hex::decode(text).ok(),
        Encoding::Base64 => STANDARD.decode(text).ok(),
        Encoding::Base64url => URL_SAFE_NO_PAD.decode(text).ok(),
    }
}

fn non_empty(field: &str, list: &[String]) -> Result<(), String> {
    if list.is_empty() {
        Err(format!("`{field}` must name at least one entry"))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: &'static str, values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(name, v.parse().unwrap());
        }
        map
    }

    fn kv() -> SignatureFormat {
        SignatureFormat::from_spec(&SignatureSpec::Kv {
            header: "Sig".into(),
            pair_sep: ",".into(),
            kv_sep: "=".into(),
            sig_keys: vec!["v1".into()],
            encoding: Encoding::Hex,
        })
        .unwrap()
    }

    #[test]
    fn kv_collects_every_signature_and_keeps_other_params() {
        let sigs = kv()
            .parse(&headers("sig", &["t=12,v1=aa,v0=bb,v1=CC"]))
            .unwrap();
        assert_eq!(sigs.candidates, vec![vec![0xaa], vec![0xcc]]);
        assert_eq!(
            sigs.params,
            vec![("t".into(), "12".into()), ("v0".into(), "bb".into())]
        );
    }

    #[test]
    fn list_ignores_unknown_versions() {
        let format = SignatureFormat::from_spec(&SignatureSpec::List {
            header: "Sig".into(),
            sep: " ".into(),
            version_sep: ",".into(),
            versions: vec!["v1".into()],
            encoding: Encoding::Base64,
        })
        .unwrap();
        let sigs = format
            .parse(&headers("sig", &["v1a,AAAA v1,AQ== v2,Ag=="]))
            .unwrap();
        assert_eq!(sigs.candidates, vec![vec![1]]);
    }

    #[test]
    fn plain_requires_the_prefix_and_reads_repeated_headers() {
        let format = SignatureFormat::from_spec(&SignatureSpec::Plain {
            header: "Sig".into(),
            prefix: "sha256=".into(),
            encoding: Encoding::Hex,
        })
        .unwrap();
        assert!(matches!(
            format.parse(&headers("sig", &["0a"])),
            Err(VerifyError::SignatureInvalid)
        ));
        let sigs = format
            .parse(&headers("sig", &["sha256=0a", "sha256=0b"]))
            .unwrap();
        assert_eq!(sigs.candidates.len(), 2);
        assert!(matches!(
            format.parse(&HeaderMap::new()),
            Err(VerifyError::SignatureMissing)
        ));
    }

    #[test]
    fn decoding_is_strict() {
        assert_eq!(decode(Encoding::Base64, "AQ=="), Some(vec![1]));
        // Same bytes, but the unused low bits of the last character are set: not canonical.
        assert_eq!(decode(Encoding::Base64, "AR=="), None);
        assert_eq!(decode(Encoding::Base64, "AQ"), None);
        assert_eq!(decode(Encoding::Hex, "0g"), None);
        assert_eq!(decode(Encoding::Hex, "AbCd"), Some(vec![0xab, 0xcd]));
        assert_eq!(decode(Encoding::Base64url, "_w"), Some(vec![0xff]));
    }
}
