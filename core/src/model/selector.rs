//! Kubernetes label selectors: `app=chat`, `tier!=gold`, `zone in (a,b)`, `zone notin (c)`,
//! `gpu`, `!spot`, joined by ',' (AND). The empty selector matches everything.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::validate::names::{label_key, label_value};

/// A parsed label selector. Serialized as its canonical string.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Selector {
    requirements: Vec<Requirement>,
}

/// One condition of a selector; every requirement must hold.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Requirement {
    pub key: String,
    pub op: Operator,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Operator {
    /// `key=value` (also `key==value`): the label exists with this value.
    Equals(String),
    /// `key!=value`: the label is absent or has another value.
    NotEquals(String),
    /// `key in (a,b)`: the label exists with one of these values.
    In(BTreeSet<String>),
    /// `key notin (a,b)`: the label is absent or has none of these values.
    NotIn(BTreeSet<String>),
    /// `key`: the label exists.
    Exists,
    /// `!key`: the label is absent.
    DoesNotExist,
}

impl Selector {
    /// Matches every label set.
    pub fn everything() -> Self {
        Self::default()
    }

    /// `key=value` for every pair (a Kubernetes `matchLabels`).
    pub fn from_map(labels: &BTreeMap<String, String>) -> Self {
        let requirements = labels
            .iter()
            .map(|(k, v)| Requirement {
                key: k.clone(),
                op: Operator::Equals(v.clone()),
            })
            .collect();
        Self { requirements }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        Parser { s, pos: 0 }
            .selector()
            .map_err(|e| format!("invalid label selector {s:?}: {e}"))
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }
}

impl Requirement {
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match &self.op {
            Operator::Equals(v) => value == Some(v),
            Operator::NotEquals(v) => value != Some(v),
            Operator::In(set) => value.is_some_and(|v| set.contains(v)),
            Operator::NotIn(set) => !value.is_some_and(|v| set.contains(v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(",");
        match &self.op {
            Operator::Equals(v) => write!(f, "{}={v}", self.key),
            Operator::NotEquals(v) => write!(f, "{}!={v}", self.key),
            Operator::In(s) => write!(f, "{} in ({})", self.key, set(s)),
            Operator::NotIn(s) => write!(f, "{} notin ({})", self.key, set(s)),
            Operator::Exists => write!(f, "{}", self.key),
            Operator::DoesNotExist => write!(f, "!{}", self.key),
        }
    }
}

impl FromStr for Selector {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::parse(s)
    }
}

impl TryFrom<String> for Selector {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<Selector> for String {
    fn from(s: Selector) -> String {
        s.to_string()
    }
}

struct Parser<'a> {
    s: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn selector(&mut self) -> Result<Selector, String> {
        let mut requirements = Vec::new();
        self.skip_ws();
        if self.at_end() {
            return Ok(Selector { requirements });
        }
        loop {
            requirements.push(self.requirement()?);
            self.skip_ws();
            if self.at_end() {
                return Ok(Selector { requirements });
            }
            self.expect(",")?;
        }
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        self.skip_ws();
        if self.eat("!") {
            let key = self.key()?;
            return Ok(Requirement {
                key,
                op: Operator::DoesNotExist,
            });
        }
        let key = self.key()?;
        self.skip_ws();
        let op = if self.eat("!=") {
            Operator::NotEquals(self.value()?)
        } else if self.eat("==") || self.eat("=") {
            Operator::Equals(self.value()?)
        } else {
            let before = self.pos;
            match self.word() {
                "in" => Operator::In(self.set()?),
                "notin" => Operator::NotIn(self.set()?),
                _ => {
                    self.pos = before;
                    Operator::Exists
                }
            }
        };
        Ok(Requirement { key, op })
    }

    fn key(&mut self) -> Result<String, String> {
        self.skip_ws();
        let at = self.pos;
        let key = self.word();
        if key.is_empty() {
            return Err(format!("expected a label key at position {at}"));
        }
        label_key(key)?;
        Ok(key.to_string())
    }

    fn value(&mut self) -> Result<String, String> {
        self.skip_ws();
        let value = self.word();
        label_value(value)?;
        Ok(value.to_string())
    }

    /// `(a, b, c)`, not empty.
    fn set(&mut self) -> Result<BTreeSet<String>, String> {
        self.skip_ws();
        self.expect("(")?;
        let mut set = BTreeSet::new();
        loop {
            set.insert(self.value()?);
            self.skip_ws();
            if self.eat(")") {
                break;
            }
            self.expect(",")?;
        }
        if set.len() == 1 && set.contains("") {
            return Err("a value set must not be empty".to_string());
        }
        Ok(set)
    }

    /// Characters that may appear in keys and values; the validators judge the rest.
    fn word(&mut self) -> &str {
        let rest = &self.s[self.pos..];
        let len = rest
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'))
            .count();
        self.pos += len;
        &rest[..len]
    }

    fn skip_ws(&mut self) {
        let rest = &self.s[self.pos..];
        self.pos += rest.len() - rest.trim_start_matches([' ', '\t']).len();
    }

    fn eat(&mut self, token: &str) -> bool {
        if self.s[self.pos..].starts_with(token) {
            self.pos += token.len();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, token: &str) -> Result<(), String> {
        if self.eat(token) {
            return Ok(());
        }
        match self.s[self.pos..].chars().next() {
            Some(c) => Err(format!(
                "expected '{token}' at position {}, found {c:?}",
                self.pos
            )),
            None => Err(format!("expected '{token}' at end")),
        }
    }

    fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_every_operator() {
        let s = Selector::parse("app=chat, tier!=gold,zone in (b, a),env notin (dev),gpu,!spot")
            .expect("valid");
        assert_eq!(s.requirements().len(), 6);
        assert_eq!(
            s.to_string(),
            "app=chat,tier!=gold,zone in (a,b),env notin (dev),gpu,!spot"
        );
        assert_eq!(Selector::parse(&s.to_string()), Ok(s));
        assert_eq!(
            Selector::parse("a==b").map(|s| s.to_string()),
            Ok("a=b".into())
        );
        assert_eq!(
            Selector::parse("universal.dev/class in(x)").map(|s| s.to_string()),
            Ok("universal.dev/class in (x)".into())
        );
    }

    #[test]
    fn matches_like_kubernetes() {
        let l = labels(&[("app", "chat"), ("zone", "a")]);
        let yes = |s: &str| Selector::parse(s).expect(s).matches(&l);
        assert!(yes(""));
        assert!(yes("app=chat"));
        assert!(!yes("app=other"));
        assert!(yes("app!=other"));
        assert!(yes("missing!=x"));
        assert!(yes("zone in (a,b)"));
        assert!(!yes("missing in (a)"));
        assert!(yes("missing notin (a)"));
        assert!(!yes("zone notin (a)"));
        assert!(yes("app"));
        assert!(!yes("!app"));
        assert!(yes("!spot"));
        assert!(!yes("app=chat,zone=b"));
        assert!(!yes("a=,app"));
        assert!(!Selector::parse("a=").expect("empty value").matches(&l));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "a b",
            "a=b=c",
            "a in",
            "a in (",
            "a in ()",
            "a in (x",
            ",",
            "a,",
            "!",
            "a=b c",
            "A B",
            "Bad Key=x",
            "a=-x",
            "a|b",
        ] {
            let err = Selector::parse(bad).expect_err(bad);
            assert!(err.starts_with("invalid label selector"), "{err}");
        }
    }

    #[test]
    fn serde_uses_the_string_form() {
        let s = Selector::parse("a in (x,y),!b").expect("valid");
        let json = serde_json::to_string(&s).expect("serialize");
        assert_eq!(json, r#""a in (x,y),!b""#);
        assert_eq!(serde_json::from_str::<Selector>(&json).expect("parse"), s);
        assert!(serde_json::from_str::<Selector>(r#""a in""#).is_err());
    }
}
