//! Configuration errors: each names the file, the line or field, and what to write instead.

use std::path::PathBuf;

/// Anything wrong with `hookgate.yaml`, a provider file or a schema.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A `${VAR}` without default names an unset variable.
    #[error("{}:{line}: environment variable `{name}` is not set; set it or write `${{{name}:-default}}`", path.display())]
    MissingEnv {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// The variable.
        name: String,
    },
    /// The YAML does not parse into the expected shape.
    #[error("{}{}: {message}", path.display(), location.map(|(l, c)| format!(":{l}:{c}")).unwrap_or_default())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line and column, when known.
        location: Option<(usize, usize)>,
        /// What is wrong, with a suggestion where one exists.
        message: String,
    },
    /// A value parses but makes no sense (unknown provider, bad secret, ...).
    #[error("{}: {field}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Dotted path of the offending field, e.g. `sources[0].provider`.
        field: String,
        /// What is wrong and how to fix it.
        message: String,
    },
}

/// Every problem found, so `hookgate check` can list them all at once.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        Self(vec![e])
    }
}

/// Turns a YAML/serde error into a [`ConfigError::Syntax`], replacing serde's list of expected
/// keys by the nearest one ("did you mean") when a key is unknown.
pub fn syntax_error(path: PathBuf, err: &serde_yaml_ng::Error) -> ConfigError {
    let location = err.location().map(|l| (l.line(), l.column()));
    let raw = err.to_string();
    let message = raw.split(" at line ").next().unwrap_or(&raw).to_owned();
    ConfigError::Syntax { path, location, message: suggest_nearest_key(&message) }
}

/// `unknown field `providr`, expected one of `name`, `provider`` →
/// `unknown key `providr`; did you mean `provider`? (valid keys: ...)`.
fn suggest_nearest_key(message: &str) -> String {
    let Some(start) = message.find("unknown field `") else {
        return message.to_owned();
    };
    let prefix = &message[..start];
    let rest = &message[start + "unknown field `".len()..];
    let Some((unknown, tail)) = rest.split_once('`') else {
        return message.to_owned();
    };
    let expected: Vec<&str> = tail.split('`').skip(1).step_by(2).collect();
    let nearest = expected
        .iter()
        .map(|k| (strsim::levenshtein(unknown, k), *k))
        .min()
        .filter(|(distance, key)| *distance <= key.len().max(unknown.len()) / 2 + 1);
    let valid = expected.join(", ");
    match nearest {
        Some((_, key)) => {
            format!("{prefix}unknown key `{unknown}`; did you mean `{key}`? (valid keys: {valid})")
        }
        None => format!("{prefix}unknown key `{unknown}` (valid keys: {valid})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_the_nearest_valid_key() {
        let msg = "sources[0]: unknown field `providr`, expected one of `name`, `provider`, `secrets`";
        assert_eq!(
            suggest_nearest_key(msg),
            "sources[0]: unknown key `providr`; did you mean `provider`? (valid keys: name, provider, secrets)"
        );
    }

    #[test]
    fn lists_valid_keys_when_nothing_is_close() {
        let msg = "unknown field `zzzzzzzzzz`, expected `listen` or `sources`";
        assert_eq!(suggest_nearest_key(msg), "unknown key `zzzzzzzzzz` (valid keys: listen, sources)");
    }
}
