//! Alertmanager's matcher syntax: `name="value"`, `name!="value"`, `name=~"regex"`,
//! `name!~"regex"`. Values may be unquoted when they contain no special characters, as
//! Alertmanager accepts. Regexes are fully anchored, as in Alertmanager and Prometheus.

use std::fmt;

use regex::Regex;

use crate::series::Labels;

/// The comparison a matcher makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~`
    Regex,
    /// `!~`
    NotRegex,
}

/// A parsed matcher.
#[derive(Clone, Debug)]
pub struct Matcher {
    /// The label name.
    pub name: String,
    /// The comparison.
    pub op: MatchOp,
    /// The value or regex source, unquoted.
    pub value: String,
    /// The anchored regex for `=~` and `!~`.
    re: Option<Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

/// Why a matcher did not parse; `offset` is the byte offset inside the matcher string.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid matcher {input:?}: {reason}")]
pub struct MatcherError {
    /// The matcher as written.
    pub input: String,
    /// What is wrong, in words.
    pub reason: String,
}

impl Matcher {
    /// Builds a matcher, compiling the regex for `=~`/`!~`.
    pub fn new(name: &str, op: MatchOp, value: &str) -> Result<Self, MatcherError> {
        let re = match op {
            MatchOp::Regex | MatchOp::NotRegex => Some(
                Regex::new(&format!("^(?s:{value})$")).map_err(|e| MatcherError {
                    input: format!("{name}{op}{value:?}"),
                    reason: format!("bad regex: {}", one_line_regex_error(&e)),
                })?,
            ),
            _ => None,
        };
        Ok(Matcher {
            name: name.to_string(),
            op,
            value: value.to_string(),
            re,
        })
    }

    /// Parses one matcher in Alertmanager's syntax.
    pub fn parse(input: &str) -> Result<Self, MatcherError> {
        let err = |reason: &str| MatcherError {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        let s = input.trim();
        let name_end = s
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .ok_or_else(|| err("expected an operator (=, !=, =~, !~) after the label name"))?;
        let name = &s[..name_end];
        if name.is_empty() {
            return Err(err("missing label name"));
        }
        if name.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(err("label name must not start with a digit"));
        }
        let rest = s[name_end..].trim_start();
        let (op, rest) = if let Some(r) = rest.strip_prefix("=~") {
            (MatchOp::Regex, r)
        } else if let Some(r) = rest.strip_prefix("!~") {
            (MatchOp::NotRegex, r)
        } else if let Some(r) = rest.strip_prefix("!=") {
            (MatchOp::NotEqual, r)
        } else if let Some(r) = rest.strip_prefix('=') {
            (MatchOp::Equal, r)
        } else {
            return Err(err(
                "expected an operator (=, !=, =~, !~) after the label name",
            ));
        };
        let rest = rest.trim();
        let value = if let Some(q) = rest.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = q.chars();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some('n') => out.push('\n'),
                        Some('t') => out.push('\t'),
                        Some(c) => out.push(c),
                        None => return Err(err("unterminated escape")),
                    },
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => out.push(c),
                }
            }
            if !closed {
                return Err(err("missing closing quote"));
            }
            if !chars.as_str().trim().is_empty() {
                return Err(err("unexpected text after the closing quote"));
            }
            out
        } else {
            if rest.contains(['"', '{', '}', ',', '=', '~', '!']) {
                return Err(err("unquoted value contains a special character; quote it"));
            }
            rest.to_string()
        };
        Matcher::new(name, op, &value)
    }

    /// True when `value` (the empty string for an absent label) satisfies this matcher.
    pub fn matches_value(&self, value: &str) -> bool {
        match self.op {
            MatchOp::Equal => value == self.value,
            MatchOp::NotEqual => value != self.value,
            // The regex exists for these two ops by construction in `new`.
            MatchOp::Regex => self.re.as_ref().is_some_and(|r| r.is_match(value)),
            MatchOp::NotRegex => !self.re.as_ref().is_some_and(|r| r.is_match(value)),
        }
    }

    /// True when the label set satisfies this matcher (absent labels count as "").
    pub fn matches(&self, labels: &Labels) -> bool {
        self.matches_value(labels.get(&self.name).unwrap_or(""))
    }
}

/// The regex crate's syntax errors span several lines (pattern, caret, message); a config
/// problem is one line, so keep the message.
pub(crate) fn one_line_regex_error(e: &regex::Error) -> String {
    let s = e.to_string();
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().trim_start_matches("error: ").to_string())
        .unwrap_or(s)
}

/// True when every matcher matches; an empty list matches everything.
pub fn matches_all(matchers: &[Matcher], labels: &Labels) -> bool {
    matchers.iter().all(|m| m.matches(labels))
}

impl fmt::Display for MatchOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        })
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{:?}", self.name, self.op, self.value)
    }
}

#[cfg(test)]
mod tests;
