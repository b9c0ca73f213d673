//! `${VAR}` and `${VAR:-default}` substitution, applied to the raw YAML text before parsing so
//! that secrets never have to be written into the file.

use std::collections::HashMap;

/// A reference to an environment variable that is unset and has no default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingVar {
    /// The variable's name.
    pub name: String,
    /// 1-based line of the reference in the text.
    pub line: usize,
}

/// Where variable values come from: the process environment, or a fixed map in tests.
pub trait Env {
    /// The value of `name`, if set.
    fn var(&self, name: &str) -> Option<String>;
}

/// The real process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Env for HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// Replaces every `${VAR}` / `${VAR:-default}` in `text`, outside YAML comments. `$$` is a
/// literal `$`. An unset variable with no default is an error naming the variable and its line;
/// an empty value counts as unset for `:-`, as in the shell.
pub fn interpolate(text: &str, env: &dyn Env) -> Result<String, Vec<MissingVar>> {
    let mut out = String::with_capacity(text.len());
    let mut missing = Vec::new();
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let (content, comment) = line.split_at(comment_start(line));
        substitute(content, index + 1, env, &mut out, &mut missing);
        out.push_str(comment);
    }
    if missing.is_empty() { Ok(out) } else { Err(missing) }
}

/// Byte offset of a `#` comment in a YAML line (a `#` at the start or after whitespace, outside
/// quotes), or the line's length.
fn comment_start(line: &str) -> usize {
    let mut quote = None;
    let mut previous = ' ';
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '#') if previous.is_whitespace() => return i,
            _ => {}
        }
        previous = c;
    }
    line.len()
}

fn substitute(mut rest: &str, line: usize, env: &dyn Env, out: &mut String, missing: &mut Vec<MissingVar>) {
    while let Some(pos) = rest.find('$') {
        let (before, after) = rest.split_at(pos);
        out.push_str(before);
        if let Some(tail) = after.strip_prefix("$$") {
            out.push('$');
            rest = tail;
            continue;
        }
        let Some(close) = after.strip_prefix("${").and_then(|t| t.find('}')) else {
            out.push('$');
            rest = &after[1..];
            continue;
        };
        let expr = &after[2..2 + close];
        let (name, default) = match expr.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (expr, None),
        };
        match (env.var(name).filter(|v| !v.is_empty()), default) {
            (Some(value), _) => out.push_str(&value),
            (None, Some(default)) => out.push_str(default),
            (None, None) => missing.push(MissingVar { name: name.to_owned(), line }),
        }
        rest = &after[3 + close..];
    }
    out.push_str(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn substitutes_set_variables_and_defaults() {
        let env = env(&[("A", "one")]);
        let text = "a: ${A}\nb: ${B:-two}\nc: ${A:-unused}\n";
        assert_eq!(interpolate(text, &env).unwrap(), "a: one\nb: two\nc: one\n");
    }

    #[test]
    fn empty_value_falls_back_to_default() {
        let env = env(&[("A", "")]);
        assert_eq!(interpolate("${A:-x}", &env).unwrap(), "x");
    }

    #[test]
    fn reports_each_missing_variable_with_its_line() {
        let err = interpolate("a: 1\nb: ${NOPE}\nc: ${ALSO}", &env(&[])).unwrap_err();
        assert_eq!(err, vec![MissingVar { name: "NOPE".into(), line: 2 }, MissingVar { name: "ALSO".into(), line: 3 }]);
    }

    #[test]
    fn comments_are_left_alone() {
        let text = "a: ${A} # see ${NOPE}\n# ${ALSO_NOPE}\nb: \"x # ${A}\"\n";
        assert_eq!(
            interpolate(text, &env(&[("A", "1")])).unwrap(),
            "a: 1 # see ${NOPE}\n# ${ALSO_NOPE}\nb: \"x # 1\"\n"
        );
    }

    #[test]
    fn dollar_escapes_and_lone_dollars_pass_through() {
        assert_eq!(interpolate("$$ {x} $5 ${", &env(&[])).unwrap(), "$ {x} $5 ${");
    }
}
