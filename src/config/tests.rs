//! Configuration loading: the shipped example and providers load; every mistake gets a precise,
//! pinned message.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Loads `yaml` as if it were `hookgate.yaml` at the repository root.
fn load(yaml: &str, env: &[(&str, &str)]) -> Result<Config, ConfigErrors> {
    let env: HashMap<String, String> = env.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
    load_str(yaml, &root().join("hookgate.yaml"), &env)
}

fn messages(result: Result<Config, ConfigErrors>) -> Vec<String> {
    let root = format!("{}/", root().display());
    result.unwrap_err().0.iter().map(|e| e.to_string().replace(&root, "")).collect()
}

const BROKER: &str = "broker: { url: 'amqp://127.0.0.1:5672/%2f' }\n";

#[test]
fn the_shipped_example_loads_unchanged() {
    let config = super::load(&root().join("hookgate.yaml")).unwrap();
    assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(config.admin_listen.to_string(), "127.0.0.1:9091");
    // Without HOOKGATE_AMQP_URL the example runs on its spool alone.
    assert!(config.broker.is_none());
    assert!(config.spool.as_ref().is_some_and(|s| s.fsync && s.dir.ends_with("spool")));
    assert_eq!(config.dedup_ttl, Duration::from_secs(86_400));
    let gh = config.sources.get("gh-acme").unwrap();
    assert_eq!(gh.provider.name, "github");
    assert!(gh.limiter.is_some());
    assert!(gh.schemas.for_type("push").is_some());
    assert!(gh.schemas.for_type("issues").is_none());
    assert_eq!(config.sources.get("standard").unwrap().tolerance, Some(Duration::from_secs(300)));
}

#[test]
fn every_shipped_provider_file_compiles() {
    let dir = root().join("providers");
    let names = known_providers(&dir);
    assert!(names.len() >= 4, "{names:?}");
    for name in names {
        let p = Provider::load(&dir, &name).unwrap_or_else(|e| panic!("{e}"));
        assert!(p.docs.as_deref().is_some_and(|d| d.starts_with("https://")), "{name} has no docs link");
        let text = std::fs::read_to_string(dir.join(format!("{name}.yaml"))).unwrap();
        assert!(text.starts_with("# "), "{name}.yaml must start with a comment naming its docs page");
    }
}

#[test]
fn unknown_keys_name_the_line_and_the_nearest_valid_key() {
    let yaml = format!("{BROKER}sources:\n  - name: a\n    provider: github\n    secrets: [x]\n    providr: github\n");
    assert_eq!(
        messages(load(&yaml, &[])),
        [
            "hookgate.yaml:6:5: sources[0]: unknown key `providr`; did you mean `provider`? (valid keys: name, provider, secrets, rate_limit, schemas, on_invalid, tolerance, max_body, public_url, verify_token, token_header, auto_confirm, require)"
        ]
    );
    let yaml = format!("{BROKER}listn: x\n");
    assert!(
        messages(load(&yaml, &[]))[0].starts_with("hookgate.yaml:2:1: unknown key `listn`; did you mean `listen`?")
    );
}

#[test]
fn unset_variables_are_reported_with_their_line() {
    let yaml = format!("{BROKER}sources:\n  - name: a\n    provider: github\n    secrets: [\"${{GH_SECRET}}\"]\n");
    assert_eq!(
        messages(load(&yaml, &[])),
        ["hookgate.yaml:5: environment variable `GH_SECRET` is not set; set it or write `${GH_SECRET:-default}`"]
    );
    let config = load(&yaml, &[("GH_SECRET", "s3cret")]).unwrap();
    assert!(!config.sources.get("a").unwrap().keys().is_empty());
}

#[test]
fn durations_and_sizes_need_units() {
    let yaml = format!("{BROKER}dedup: {{ ttl: 24 }}\n");
    assert!(messages(load(&yaml, &[]))[0].contains("duration `24` has no unit"));
    let yaml = format!("{BROKER}limits: {{ max_body: 1 furlong }}\n");
    assert!(messages(load(&yaml, &[]))[0].contains("unknown size unit `furlong`"));
}

#[test]
fn every_source_problem_is_reported_at_once() {
    let yaml = format!(
        "{BROKER}sources:
  - {{ name: a, provider: githb, secrets: [x] }}
  - {{ name: b, provider: standard-webhooks, secrets: ['whsec_***'] }}
  - {{ name: c, provider: github, secrets: [] }}
  - {{ name: c, provider: github, secrets: [x] }}
  - {{ name: 'd/e', provider: github, secrets: [x], rate_limit: {{ per_second: 0, burst: 1 }} }}
  - {{ name: f, provider: github, secrets: [x], schemas: {{ push: nope.json }} }}
"
    );
    let got = messages(load(&yaml, &[]));
    let expected = [
        "providers/githb.yaml: provider: no provider `githb` in",
        "hookgate.yaml: sources[1].secrets[0]: secret is not a valid base64 (after an optional `whsec_` prefix)",
        "hookgate.yaml: sources[2].secrets: needs at least one secret: `github` requests are signed",
        "hookgate.yaml: sources[3].name: `c` is already used by sources[2]",
        "hookgate.yaml: sources[4].name: `d/e` must be letters, digits, `-`, `_` or `.` (it is a URL segment)",
        "hookgate.yaml: sources[4].rate_limit: per_second must be at least 1",
        "hookgate.yaml: sources[5].schemas.push: cannot read",
    ];
    assert_eq!(got.len(), expected.len(), "{got:#?}");
    for (got, want) in got.iter().zip(expected) {
        assert!(got.starts_with(want), "got: {got}\nwant: {want}");
    }
    assert!(got[0].contains("did you mean `github`?"), "{}", got[0]);
}

#[test]
fn routing_key_placeholders_are_checked() {
    let yaml = "broker: { url: 'amqp://x', routing_key: '{source}.{kind}' }\n";
    assert_eq!(
        messages(load(yaml, &[])),
        ["hookgate.yaml: broker.routing_key: unknown placeholder `{kind}`: use {source}, {provider} or {type}"]
    );
}

#[test]
fn provider_files_get_precise_errors() {
    let parse =
        |text: &str| Provider::parse("p", text, Path::new("providers/p.yaml").to_owned()).unwrap_err().to_string();
    let hmac = |signed: &str| {
        format!(
            "docs: https://x\nverify:\n  type: hmac\n  signature: {{ format: plain, header: X-Sig, encoding: hex }}\n  signed_content: \"{signed}\"\n"
        )
    };
    assert_eq!(
        parse(&hmac("{bdy}")),
        "providers/p.yaml: verify.signed_content: unknown template variable `{bdy}`: use {body}, {method}, {url}, {header.NAME}, {sig.NAME}, {query.NAME}, {json:/pointer}, {body_sha256_hex} or {secret}"
    );
    assert_eq!(
        parse(&format!("{}id: json:id\n", hmac("{body}"))),
        "providers/p.yaml: id: `id` is not a JSON pointer: it must start with `/`, e.g. `/id`"
    );
    assert!(parse("verify: { type: rot13 }\n").contains("unknown variant `rot13`"));
    assert!(
        parse(&hmac("{body}").replace("encoding: hex", "encoding: hexx"))
            .contains("unknown variant `hexx`, expected one of `hex`, `base64`, `base64url`")
    );
}
