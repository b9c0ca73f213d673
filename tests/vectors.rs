//! Known-answer vectors for every shipped provider: `tests/vectors/<file>.yaml` against the
//! shipped `providers/<provider>.yaml` (the files under test, not copies). For every vector that
//! must verify, the negatives are derived: tampered body, wrong secret, rotation, each required
//! header missing, and the timestamp window's edges. Format: `docs/provider-format.md`.
//!
//! One trial per vector file: `cargo test --test vectors -- stripe`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hookgate::cli::request::OwnedRequest;
use hookgate::config::secret::Secret;
use hookgate::providers::request::parse_json;
use hookgate::providers::{Provider, ProviderKeys, VerifyContext, VerifyError};
use libtest_mimic::{Arguments, Failed, Trial};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VectorFile {
    provider: String,
    vectors: Vec<Vector>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Vector {
    name: String,
    source: String,
    origin: Origin,
    secrets: Vec<String>,
    now: u64,
    #[serde(default)]
    now_ms: Option<u64>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, OneOrMany>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    body_base64: Option<String>,
    expect: Expect,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    event_type: Option<String>,
    #[serde(default)]
    wrong_secret: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Origin {
    Official,
    SdkSign,
    Derived,
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Expect {
    Ok,
    SignatureInvalid,
    SignatureMissing,
    TimestampOutOfTolerance,
}

impl Expect {
    fn result(self) -> Result<(), VerifyError> {
        match self {
            Expect::Ok => Ok(()),
            Expect::SignatureInvalid => Err(VerifyError::SignatureInvalid),
            Expect::SignatureMissing => Err(VerifyError::SignatureMissing),
            Expect::TimestampOutOfTolerance => Err(VerifyError::TimestampOutOfTolerance),
        }
    }
}

/// Well-formed secrets in common encodings, tried as "wrong secret" when a vector names none.
const WRONG_SECRETS: &[&str] = &["d3Jvbmctc2VjcmV0", "0123456789abcdef0123456789abcdef"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The request a vector describes (the CLI's request type: one way to build a request from
/// captured parts).
fn request_from(v: &Vector) -> Result<OwnedRequest, String> {
    let mut lines = Vec::new();
    for (name, values) in &v.headers {
        let values = match values {
            OneOrMany::One(v) => std::slice::from_ref(v),
            OneOrMany::Many(v) => v.as_slice(),
        };
        lines.extend(values.iter().map(|value| format!("{name}: {value}")));
    }
    let body = match (&v.body, &v.body_base64) {
        (Some(b), None) => b.as_bytes().to_vec(),
        (None, Some(b)) => STANDARD.decode(b).map_err(|e| format!("body_base64: {e}"))?,
        (None, None) => Vec::new(),
        _ => return Err("give body or body_base64, not both".into()),
    };
    OwnedRequest::new(v.method.as_deref().unwrap_or("POST"), v.url.as_deref(), &lines, body)
}

fn verify(
    request: &OwnedRequest,
    provider: &Provider,
    keys: &ProviderKeys,
    now: SystemTime,
) -> Result<(), VerifyError> {
    verifying_scheme(request, provider, keys, now).map(|_| ())
}

/// Verifies as the gateway does: the parsed body is shown only to providers that sign inside it.
fn verifying_scheme(
    request: &OwnedRequest,
    provider: &Provider,
    keys: &ProviderKeys,
    now: SystemTime,
) -> Result<usize, VerifyError> {
    let view = request.view(provider.needs_json_to_verify());
    provider.verifying_scheme(&view, keys, VerifyContext::default(), now)
}

fn keys(provider: &Provider, secrets: &[&str]) -> Result<ProviderKeys, String> {
    let secrets: Vec<Secret> = secrets.iter().map(|s| Secret::new(*s)).collect();
    provider.decode_secrets(&secrets).map_err(|e| format!("secrets do not decode: {e:?}"))
}

fn check_vector(provider: &Provider, v: &Vector, file_wrong_secret: Option<&str>) -> Result<(), String> {
    let request = request_from(v)?;
    let now = UNIX_EPOCH + v.now_ms.map_or(Duration::from_secs(v.now), Duration::from_millis);
    let secrets: Vec<&str> = v.secrets.iter().map(String::as_str).collect();
    let right = keys(provider, &secrets)?;
    let got = verify(&request, provider, &right, now);
    if got != v.expect.result() {
        return Err(format!("expected {:?}, got {got:?}", v.expect));
    }
    if v.expect != Expect::Ok {
        return Ok(());
    }
    let view = request.view(true);
    if let Some(id) = &v.id {
        let got = provider.event_id(&view);
        if &got != id {
            return Err(format!("event id: expected {id:?}, got {got:?}"));
        }
    }
    if let Some(event_type) = &v.event_type {
        let got = provider.event_type(&view);
        if &got != event_type {
            return Err(format!("event type: expected {event_type:?}, got {got:?}"));
        }
    }
    negatives(provider, v, &request, &secrets, now, file_wrong_secret)
}

/// What every verifying vector implies must fail (or still pass).
fn negatives(
    provider: &Provider,
    v: &Vector,
    request: &OwnedRequest,
    secrets: &[&str],
    now: SystemTime,
    file_wrong_secret: Option<&str>,
) -> Result<(), String> {
    let right = keys(provider, secrets)?;
    let signs_body = provider.signs_body();
    if signs_body && !request.body.is_empty() {
        let mut tampered = request.clone();
        tampered.body[0] ^= 1;
        tampered.json = parse_json(&tampered.body);
        if verify(&tampered, provider, &right, now).is_ok() {
            return Err("a body with its first byte changed still verifies".into());
        }
    }
    if !provider.is_unauthenticated() {
        let wrong = v
            .wrong_secret
            .as_deref()
            .into_iter()
            .chain(file_wrong_secret)
            .chain(WRONG_SECRETS.iter().copied())
            .find(|w| keys(provider, &[w]).is_ok_and(|k| !k.is_empty()))
            .ok_or("no default wrong secret decodes for this provider: add `wrong_secret` to the vector")?;
        let wrong_keys = keys(provider, &[wrong])?;
        if verify(request, provider, &wrong_keys, now).is_ok() {
            return Err(format!("verifies with the wrong secret {wrong:?}"));
        }
        let mut rotated = vec![wrong];
        rotated.extend_from_slice(secrets);
        if let Err(e) = verify(request, provider, &keys(provider, &rotated)?, now) {
            return Err(format!("the right secret after a wrong one fails: {e:?}"));
        }
    }
    let single_scheme = provider.required_headers().len() == 1;
    for required in provider.required_headers().into_iter().flatten() {
        if !request.headers.contains_key(&required) {
            continue;
        }
        let mut without = request.clone();
        without.headers.remove(&required);
        match verify(&without, provider, &right, now) {
            Err(VerifyError::SignatureMissing) => {}
            Err(_) if !single_scheme => {}
            other => {
                return Err(format!("without header {required}: expected SignatureMissing, got {other:?}"));
            }
        }
    }
    // The window of the scheme that verified this vector (a provider may mix timed and untimed).
    let scheme = verifying_scheme(request, provider, &right, now).map_err(|e| format!("{e:?}"))?;
    if let Some(tolerance) = provider.scheme_tolerance(scheme) {
        let second = Duration::from_secs(1);
        for (at, expect) in [
            (now + tolerance, Ok(())),
            (now - tolerance, Ok(())),
            (now + tolerance + second, Err(VerifyError::TimestampOutOfTolerance)),
            (now - tolerance - second, Err(VerifyError::TimestampOutOfTolerance)),
        ] {
            let got = verify(request, provider, &right, at);
            if got != expect {
                let offset = at.duration_since(now).map_or_else(|e| -(e.duration().as_secs_f64()), |d| d.as_secs_f64());
                return Err(format!("at now{offset:+}s: expected {expect:?}, got {got:?}"));
            }
        }
    }
    Ok(())
}

fn run_file(path: &Path) -> Result<(), Failed> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let file: VectorFile = serde_yaml_ng::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let provider = Provider::load(&root().join("providers"), &file.provider).map_err(|e| e.to_string())?;
    if !file.vectors.iter().any(|v| v.expect == Expect::Ok) {
        return Err("no vector that must verify".into());
    }
    // A vector without its own `wrong_secret` borrows one from another vector of the file.
    let file_wrong_secret = file.vectors.iter().find_map(|v| v.wrong_secret.as_deref());
    let failures: Vec<String> = file
        .vectors
        .iter()
        .filter_map(|v| {
            let checked = if v.source.trim().is_empty() {
                Err(format!("cite the vector's source ({:?})", v.origin))
            } else {
                check_vector(&provider, v, file_wrong_secret)
            };
            checked.err().map(|e| format!("{}: {e}", v.name))
        })
        .collect();
    if failures.is_empty() { Ok(()) } else { Err(failures.join("\n").into()) }
}

fn main() {
    let args = Arguments::from_args();
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("tests/vectors"))
        .expect("tests/vectors exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let mut trials: Vec<Trial> = files
        .into_iter()
        .map(|path| {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            Trial::test(name, move || run_file(&path))
        })
        .collect();
    trials.push(Trial::test("every_provider_has_vectors", every_provider_has_vectors));
    trials.push(Trial::test("readme_lists_every_provider", readme_lists_every_provider));
    libtest_mimic::run(&args, trials).exit();
}

/// The README's provider table (made by `scripts/provider-table`) names every shipped provider.
fn readme_lists_every_provider() -> Result<(), Failed> {
    let readme = std::fs::read_to_string(root().join("README.md")).map_err(|e| e.to_string())?;
    let missing: Vec<String> = hookgate::config::known_providers(&root().join("providers"))
        .into_iter()
        .filter(|p| !readme.contains(&format!("| [`{p}`](")))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("README.md lacks {}: run scripts/provider-table", missing.join(", ")).into())
    }
}

/// Every shipped provider has a vector file whose `provider` names it.
fn every_provider_has_vectors() -> Result<(), Failed> {
    let mut covered = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(root().join("tests/vectors")).map_err(|e| e.to_string())? {
        let path = entry.map_err(|e| e.to_string())?.path();
        let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
        if let Ok(file) = serde_yaml_ng::from_str::<VectorFile>(&text) {
            covered.insert(file.provider);
        }
    }
    let missing: Vec<String> = hookgate::config::known_providers(&root().join("providers"))
        .into_iter()
        .filter(|p| !covered.contains(p))
        .collect();
    if missing.is_empty() { Ok(()) } else { Err(format!("providers without vectors: {}", missing.join(", ")).into()) }
}
