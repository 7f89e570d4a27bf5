//! Static bearer tokens from a token file, like kube-apiserver's `--token-auth-file` but YAML:
//!
//! ```yaml
//! - token: "long-random-secret"
//!   user: alice
//!   groups: [team-a]
//!   expires: 2027-01-31T00:00:00Z   # optional (RFC 3339); refused from then on
//! ```
//!
//! Only SHA-256 digests of the tokens are kept in memory; a lookup digests the presented token
//! and finds the digest in a map, so neither the comparison nor the map leaks anything useful
//! about a token. [`ReloadingTokens`] rereads the file when it changes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use ring::digest::{digest, SHA256, SHA256_OUTPUT_LEN};
use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::authn_error::AuthnError;
use super::subject::Subject;

/// Tokens shorter than this are refused: they could be guessed.
pub const MIN_TOKEN_LEN: usize = 16;

type Digest = [u8; SHA256_OUTPUT_LEN];

/// One entry of the file as written; missing fields are caught by the checks, which name them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    #[serde(default)]
    token: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    expires: Option<String>,
}

/// What a token stands for, and until when.
#[derive(Debug, Clone)]
struct Grant {
    subject: Subject,
    expires: Option<OffsetDateTime>,
}

/// The tokens of one token file, by digest.
#[derive(Debug, Default)]
pub struct TokenFile {
    by_digest: HashMap<Digest, Grant>,
}

impl TokenFile {
    /// Reads and checks `path`. Errors name the file and the entry (counted from 1): an empty
    /// token or user, a token shorter than [`MIN_TOKEN_LEN`] or not sendable in a header, an
    /// empty group, a token given twice.
    pub fn load(path: &Path) -> Result<Self, AuthnError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            AuthnError::Config(format!("cannot read token file {}: {e}", path.display()))
        })?;
        Self::parse(&text, path)
    }

    fn parse(text: &str, path: &Path) -> Result<Self, AuthnError> {
        let file = path.display();
        let entries: Vec<Entry> = if text.trim().is_empty() {
            Vec::new()
        } else {
            serde_yaml::from_str(text).map_err(|e| {
                AuthnError::Config(format!(
                    "token file {file}: expected a list of {{token, user, groups}} entries: {e}"
                ))
            })?
        };
        // Digest → the entry (from 1) that holds it, to name both halves of a duplicate.
        let mut first_seen: HashMap<Digest, usize> = HashMap::new();
        let mut by_digest = HashMap::new();
        for (i, entry) in entries.into_iter().enumerate() {
            let n = i + 1;
            let bad = |why: String| {
                let who = if entry.user.trim().is_empty() {
                    String::new()
                } else {
                    format!(" (user {:?})", entry.user)
                };
                AuthnError::Config(format!("token file {file}: entry {n}{who}: {why}"))
            };
            check_token(&entry.token).map_err(bad)?;
            if entry.user.trim().is_empty() {
                return Err(bad("user is empty".into()));
            }
            if let Some(g) = entry.groups.iter().position(|g| g.trim().is_empty()) {
                return Err(bad(format!("group {} is empty", g + 1)));
            }
            let expires = match &entry.expires {
                None => None,
                Some(t) => Some(OffsetDateTime::parse(t, &Rfc3339).map_err(|e| {
                    bad(format!(
                        "expires {t:?} is not an RFC 3339 time (2027-01-31T00:00:00Z): {e}"
                    ))
                })?),
            };
            let d = token_digest(&entry.token);
            if let Some(earlier) = first_seen.insert(d, n) {
                return Err(bad(format!("the same token as entry {earlier}")));
            }
            let subject = Subject::new(entry.user, entry.groups);
            by_digest.insert(d, Grant { subject, expires });
        }
        Ok(Self { by_digest })
    }

    /// The subject `token` stands for, if it is one of the file's; an error if it expired.
    pub fn lookup(&self, token: &str) -> Result<Option<Subject>, AuthnError> {
        self.lookup_at(token, OffsetDateTime::now_utc())
    }

    fn lookup_at(&self, token: &str, now: OffsetDateTime) -> Result<Option<Subject>, AuthnError> {
        let Some(grant) = self.by_digest.get(&token_digest(token)) else {
            return Ok(None);
        };
        match grant.expires {
            Some(t) if t <= now => Err(AuthnError::BadToken(format!(
                "the token of user {:?} expired at {}",
                grant.subject.user,
                t.format(&Rfc3339).unwrap_or_default()
            ))),
            _ => Ok(Some(grant.subject.clone())),
        }
    }

    /// How many tokens the file holds.
    pub fn len(&self) -> usize {
        self.by_digest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }
}

/// Why a token from the file is unusable, if it is.
fn check_token(token: &str) -> Result<(), String> {
    if token.is_empty() {
        return Err("token is empty".into());
    }
    if token.chars().count() < MIN_TOKEN_LEN {
        return Err(format!("token is shorter than {MIN_TOKEN_LEN} characters"));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("token must be printable ASCII without spaces (it travels in a header)".into());
    }
    Ok(())
}

fn token_digest(token: &str) -> Digest {
    let mut d = [0u8; SHA256_OUTPUT_LEN];
    d.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref());
    d
}

/// What identifies one version of the file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    dev: u64,
    ino: u64,
}

fn stamp(path: &Path) -> Result<Stamp, AuthnError> {
    use std::os::unix::fs::MetadataExt;
    // Follows symbolic links, so a Kubernetes secret volume's swapped `..data` link counts
    // as a change.
    let m = std::fs::metadata(path).map_err(|e| {
        AuthnError::Config(format!("cannot read token file {}: {e}", path.display()))
    })?;
    Ok(Stamp {
        modified: m.modified().ok(),
        len: m.len(),
        dev: m.dev(),
        ino: m.ino(),
    })
}

/// A token file that can be reread while requests look tokens up.
#[derive(Debug)]
pub struct ReloadingTokens {
    path: PathBuf,
    current: RwLock<Arc<TokenFile>>,
    /// The version last read (or tried); `None` after the file could not be found.
    seen: Mutex<Option<Stamp>>,
}

impl ReloadingTokens {
    /// Reads `path`, failing as [`TokenFile::load`] does.
    pub fn load(path: &Path) -> Result<Self, AuthnError> {
        // The stamp comes first: a write racing the read changes it, so is read next time.
        let seen = stamp(path)?;
        let file = TokenFile::load(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            current: RwLock::new(Arc::new(file)),
            seen: Mutex::new(Some(seen)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The subject `token` stands for in the tokens now in force; an error if it expired.
    pub fn lookup(&self, token: &str) -> Result<Option<Subject>, AuthnError> {
        let current = self
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        current.lookup(token)
    }

    /// Rereads the file if its modification time, length or inode changed: `Ok(true)` when
    /// the new tokens are in force. On an error the tokens in force stay, and the error is
    /// reported once per change of the file (a broken file is not retried until it changes).
    pub fn reload_if_changed(&self) -> Result<bool, AuthnError> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let now = match stamp(&self.path) {
            Ok(s) => s,
            Err(e) => {
                // Report a missing file once, then wait for it to come back.
                return match seen.take() {
                    Some(_) => Err(e),
                    None => Ok(false),
                };
            }
        };
        if *seen == Some(now) {
            return Ok(false);
        }
        *seen = Some(now);
        let file = TokenFile::load(&self.path)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(file);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &str = "alice-token-0123456789";
    const BOB: &str = "bob-token-0123456789abc";

    fn write(dir: &tempfile::TempDir, text: &str) -> PathBuf {
        let path = dir.path().join("tokens.yaml");
        std::fs::write(&path, text).unwrap();
        path
    }

    fn config_error(text: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        match TokenFile::load(&write(&dir, text)) {
            Err(AuthnError::Config(m)) => m,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn a_good_file_maps_each_token_to_its_subject() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            &dir,
            &format!(
                "- token: {ALICE:?}\n  user: alice\n  groups: [team-a, team-b]\n\
                 - token: {BOB:?}\n  user: bob\n"
            ),
        );
        let file = TokenFile::load(&path).unwrap();
        assert_eq!(file.len(), 2);
        let look = |t: &str| file.lookup(t).unwrap();
        assert_eq!(
            look(ALICE),
            Some(Subject::new(
                "alice",
                vec!["team-a".into(), "team-b".into()]
            ))
        );
        assert_eq!(look(BOB), Some(Subject::new("bob", vec![])));
        assert_eq!(look("wrong-token-0123456789"), None);
        assert_eq!(look(&ALICE[..ALICE.len() - 1]), None);
        assert_eq!(look(""), None);
    }

    #[test]
    fn a_token_is_refused_from_its_expiry_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            &dir,
            &format!("- token: {ALICE:?}\n  user: alice\n  expires: 2027-01-31T12:00:00Z\n"),
        );
        let file = TokenFile::load(&path).unwrap();
        let at = |t: &str| OffsetDateTime::parse(t, &Rfc3339).unwrap();
        assert_eq!(
            file.lookup_at(ALICE, at("2027-01-31T11:59:59Z")).unwrap(),
            Some(Subject::new("alice", vec![]))
        );
        for t in ["2027-01-31T12:00:00Z", "2028-01-01T00:00:00Z"] {
            match file.lookup_at(ALICE, at(t)) {
                Err(AuthnError::BadToken(m)) => {
                    assert!(
                        m.contains("alice") && m.contains("expired at 2027-01-31T12:00:00Z"),
                        "{m}"
                    );
                    assert!(!m.contains(ALICE), "{m}");
                }
                other => panic!("expected an expired token at {t}, got {other:?}"),
            }
        }
    }

    #[test]
    fn an_empty_file_holds_no_tokens() {
        let dir = tempfile::tempdir().unwrap();
        assert!(TokenFile::load(&write(&dir, "\n")).unwrap().is_empty());
        assert!(TokenFile::load(&write(&dir, "[]\n")).unwrap().is_empty());
    }

    #[test]
    fn each_bad_entry_is_named_with_the_reason() {
        let good = format!("- token: {ALICE:?}\n  user: alice\n");
        let cases: [(&str, &str); 9] = [
            (
                &format!("- token: {BOB:?}\n  user: bob\n  expires: tomorrow\n"),
                "entry 2 (user \"bob\"): expires \"tomorrow\" is not an RFC 3339 time",
            ),
            (
                "- token: \"\"\n  user: bob\n",
                "entry 2 (user \"bob\"): token is empty",
            ),
            ("- user: bob\n", "entry 2 (user \"bob\"): token is empty"),
            (
                "- token: short-token\n  user: bob\n",
                "entry 2 (user \"bob\"): token is shorter than 16 characters",
            ),
            (
                "- token: \"with space 0123456789\"\n  user: bob\n",
                "entry 2 (user \"bob\"): token must be printable ASCII",
            ),
            (
                &format!("- token: {BOB:?}\n  user: \"\"\n"),
                "entry 2: user is empty",
            ),
            (&format!("- token: {BOB:?}\n"), "entry 2: user is empty"),
            (
                &format!("- token: {BOB:?}\n  user: bob\n  groups: [a, \"\"]\n"),
                "entry 2 (user \"bob\"): group 2 is empty",
            ),
            (
                &format!("- token: {ALICE:?}\n  user: mallory\n"),
                "entry 2 (user \"mallory\"): the same token as entry 1",
            ),
        ];
        for (second, want) in cases {
            let message = config_error(&format!("{good}{second}"));
            assert!(message.contains("tokens.yaml"), "{message}");
            assert!(message.contains(want), "{message:?} should say {want:?}");
            assert!(
                !message.contains(ALICE) && !message.contains(BOB),
                "{message}"
            );
        }
    }

    #[test]
    fn a_file_that_is_not_a_token_list_is_refused() {
        let m = config_error("token: x\n");
        assert!(m.contains("tokens.yaml") && m.contains("list"), "{m}");
        let m = config_error(&format!("- token: {ALICE:?}\n  usr: alice\n"));
        assert!(m.contains("usr"), "{m}");
    }

    #[test]
    fn a_missing_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.yaml");
        match ReloadingTokens::load(&path) {
            Err(AuthnError::Config(m)) => assert!(m.contains("absent.yaml"), "{m}"),
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn reloading_swaps_in_a_changed_file_and_keeps_the_old_one_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, &format!("- token: {ALICE:?}\n  user: alice\n"));
        let tokens = ReloadingTokens::load(&path).unwrap();
        assert_eq!(tokens.path(), path);
        assert_eq!(tokens.reload_if_changed(), Ok(false));
        assert_eq!(
            tokens.lookup(ALICE).unwrap().map(|s| s.user),
            Some("alice".into())
        );

        // Each version has a different length, so the change shows whatever the clock does.
        write(
            &dir,
            &format!("- token: {BOB:?}\n  user: bob\n  groups: [b]\n"),
        );
        assert_eq!(tokens.reload_if_changed(), Ok(true));
        assert_eq!(tokens.lookup(ALICE).unwrap(), None);
        assert_eq!(
            tokens.lookup(BOB).unwrap().map(|s| s.user),
            Some("bob".into())
        );

        write(&dir, &format!("- token: {BOB:?}\n"));
        let err = tokens.reload_if_changed().unwrap_err();
        assert!(err.to_string().contains("entry 1: user is empty"), "{err}");
        assert_eq!(
            tokens.lookup(BOB).unwrap().map(|s| s.user),
            Some("bob".into())
        );
        // Reported once; retried when the file changes again.
        assert_eq!(tokens.reload_if_changed(), Ok(false));

        std::fs::remove_file(&path).unwrap();
        assert!(tokens.reload_if_changed().is_err());
        assert_eq!(tokens.reload_if_changed(), Ok(false));
        assert_eq!(
            tokens.lookup(BOB).unwrap().map(|s| s.user),
            Some("bob".into())
        );

        write(&dir, &format!("- token: {ALICE:?}\n  user: alice2\n"));
        assert_eq!(tokens.reload_if_changed(), Ok(true));
        assert_eq!(
            tokens.lookup(ALICE).unwrap().map(|s| s.user),
            Some("alice2".into())
        );
        assert_eq!(tokens.lookup(BOB).unwrap(), None);
    }
}
