//! `hookgate providers [--json]`: the provider catalog as the shipped files define it.

use std::path::Path;

use std::io::Write;

use serde_json::json;

use crate::config::known_providers;
use crate::providers::Provider;

/// The catalog as JSON objects: name, aliases, family, schemes, id and type sources,
/// handshakes, docs.
pub fn catalog(dir: &Path) -> Result<Vec<serde_json::Value>, String> {
    known_providers(dir)
        .into_iter()
        .map(|name| {
            let p = Provider::load(dir, &name).map_err(|e| e.to_string())?;
            Ok(json!({
                "name": p.name,
                "aliases": p.aliases,
                "family": p.family,
                "schemes": p.scheme_names(),
                "id": p.identity.0,
                "event_type": p.identity.1,
                "handshakes": p.handshakes().iter().map(|h| &h.name).collect::<Vec<_>>(),
                "secrets": p.secrets_hint(),
                "docs": p.docs,
            }))
        })
        .collect()
}

/// Prints the catalog, as JSON or as an aligned table. A closed pipe (`| head`) ends it quietly.
pub fn run(dir: &Path, as_json: bool) -> Result<(), String> {
    let catalog = catalog(dir)?;
    let _ = write(&mut std::io::stdout().lock(), &catalog, as_json);
    Ok(())
}

fn write(out: &mut impl Write, catalog: &[serde_json::Value], as_json: bool) -> std::io::Result<()> {
    if as_json {
        return writeln!(out, "{}", serde_json::to_string_pretty(catalog).unwrap_or_default());
    }
    writeln!(out, "{:<20} {:<6} {:<24} {:<34} HANDSHAKES", "PROVIDER", "FAMILY", "SCHEMES", "ID")?;
    for p in catalog {
        let list = |key: &str| {
            p[key]
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_str()).collect::<Vec<_>>().join(", "))
                .unwrap_or_default()
        };
        let mut id = list("id");
        if id.len() > 34 {
            id.truncate(id.floor_char_boundary(31));
            id.push_str("...");
        }
        let (name, family) = (p["name"].as_str().unwrap_or_default(), p["family"].as_str().unwrap_or("-"));
        writeln!(out, "{name:<20} {family:<6} {:<24} {id:<34} {}", list("schemes"), list("handshakes"))?;
    }
    writeln!(out, "{} providers", catalog.len())
}
