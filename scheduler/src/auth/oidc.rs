//! OIDC bearer tokens: JWTs signed by an identity provider, verified against its JWKS (a file
//! or a URL), issuer and audience, like kube-apiserver's `--oidc-*` flags. Only asymmetric
//! algorithms are accepted (a shared-secret HS256 token could be forged by anyone who knows
//! the secret). A token signed by a key the cached JWKS lacks triggers one refetch, at most
//! every [`REFRESH_EVERY`], so key rotation at the provider needs no restart.

use std::path::PathBuf;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde_json::Value;

use super::authn_error::AuthnError;
use super::subject::Subject;

/// The least time between two JWKS fetches caused by unknown key ids.
pub const REFRESH_EVERY: Duration = Duration::from_secs(10);
/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECS: u64 = 30;
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
const ALGORITHMS: [Algorithm; 4] = [
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::RS256,
    Algorithm::PS256,
];

/// Where the provider's signing keys are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    File(PathBuf),
    Url(String),
}

#[derive(Debug, Clone)]
pub struct OidcConfig {
    pub issuer: String,
    pub audience: String,
    pub jwks: JwksSource,
    pub username_claim: String,
    pub groups_claim: String,
    /// Prepended to user names, so that an OIDC user cannot pose as `system:...` or a
    /// certificate user.
    pub username_prefix: String,
    pub groups_prefix: String,
}

impl Default for OidcConfig {
    fn default() -> Self {
        Self {
            issuer: String::new(),
            audience: String::new(),
            jwks: JwksSource::File(PathBuf::new()),
            username_claim: "sub".into(),
            groups_claim: "groups".into(),
            username_prefix: "oidc:".into(),
            groups_prefix: "oidc:".into(),
        }
    }
}

struct Keys {
    set: JwkSet,
    fetched: Instant,
}

pub struct OidcVerifier {
    cfg: OidcConfig,
    keys: RwLock<Keys>,
}

/// Whether `token` has the shape of a JWT (three base64url parts), so worth verifying.
pub fn looks_like_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

impl OidcVerifier {
    /// Checks the settings and loads the keys; the JWKS must be readable now.
    pub async fn new(cfg: OidcConfig) -> Result<Self, AuthnError> {
        if !cfg.issuer.starts_with("https://") && !cfg.issuer.starts_with("http://") {
            return Err(AuthnError::Config(format!(
                "oidc-issuer {:?} must be a URL",
                cfg.issuer
            )));
        }
        if cfg.audience.is_empty() {
            return Err(AuthnError::Config("oidc-audience must be set".into()));
        }
        let set = fetch(&cfg.jwks).await?;
        Ok(Self {
            cfg,
            keys: RwLock::new(Keys {
                set,
                fetched: Instant::now(),
            }),
        })
    }

    /// The subject of a valid token.
    pub async fn verify(&self, token: &str) -> Result<Subject, AuthnError> {
        let header =
            decode_header(token).map_err(|e| AuthnError::BadToken(format!("header: {e}")))?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(AuthnError::BadToken(format!(
                "algorithm {:?} is not accepted (use ES256, ES384, RS256 or PS256)",
                header.alg
            )));
        }
        let jwk = match self.key(header.kid.as_deref()) {
            Some(k) => k,
            None => {
                self.refresh().await?;
                self.key(header.kid.as_deref()).ok_or_else(|| {
                    AuthnError::BadToken(format!(
                        "no key {:?} in the issuer's key set",
                        header.kid.unwrap_or_default()
                    ))
                })?
            }
        };
        let key = DecodingKey::from_jwk(&jwk)
            .map_err(|e| AuthnError::Config(format!("JWKS key: {e}")))?;
        let mut v = Validation::new(header.alg);
        v.set_issuer(&[&self.cfg.issuer]);
        v.set_audience(&[&self.cfg.audience]);
        v.leeway = LEEWAY_SECS;
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        let claims = decode::<Value>(token, &key, &v)
            .map_err(|e| AuthnError::BadToken(e.to_string()))?
            .claims;
        self.subject(&claims)
    }

    fn subject(&self, claims: &Value) -> Result<Subject, AuthnError> {
        let user = claims
            .get(&self.cfg.username_claim)
            .and_then(Value::as_str)
            .filter(|u| !u.is_empty())
            .ok_or_else(|| {
                AuthnError::BadToken(format!("no {:?} claim", self.cfg.username_claim))
            })?;
        let groups = match claims.get(&self.cfg.groups_claim) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(g)) => vec![g.clone()],
            Some(Value::Array(gs)) => gs
                .iter()
                .map(|g| {
                    g.as_str().map(str::to_string).ok_or_else(|| {
                        AuthnError::BadToken(format!(
                            "{:?} must hold strings",
                            self.cfg.groups_claim
                        ))
                    })
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(AuthnError::BadToken(format!(
                    "{:?} must be a string or a list of strings",
                    self.cfg.groups_claim
                )))
            }
        };
        Ok(Subject::new(
            format!("{}{user}", self.cfg.username_prefix),
            groups
                .into_iter()
                .map(|g| format!("{}{g}", self.cfg.groups_prefix))
                .collect(),
        ))
    }

    /// The key `kid` names; a set with one key serves tokens without a `kid`.
    fn key(&self, kid: Option<&str>) -> Option<Jwk> {
        let keys = self.keys.read().expect("jwks lock");
        match kid {
            Some(kid) => keys.set.find(kid).cloned(),
            None if keys.set.keys.len() == 1 => keys.set.keys.first().cloned(),
            None => None,
        }
    }

    async fn refresh(&self) -> Result<(), AuthnError> {
        if self.keys.read().expect("jwks lock").fetched.elapsed() < REFRESH_EVERY {
            return Ok(());
        }
        let set = fetch(&self.cfg.jwks).await?;
        *self.keys.write().expect("jwks lock") = Keys {
            set,
            fetched: Instant::now(),
        };
        Ok(())
    }
}

async fn fetch(source: &JwksSource) -> Result<JwkSet, AuthnError> {
    let (text, origin) = match source {
        JwksSource::File(p) => (
            tokio::fs::read(p)
                .await
                .map_err(|e| AuthnError::Config(format!("reading JWKS {}: {e}", p.display())))?
                .into(),
            p.display().to_string(),
        ),
        JwksSource::Url(url) => (fetch_url(url).await?, url.clone()),
    };
    serde_json::from_slice::<JwkSet>(&text)
        .map_err(|e| AuthnError::Config(format!("JWKS {origin}: {e}")))
}

async fn fetch_url(url: &str) -> Result<Bytes, AuthnError> {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(uni_core::tls::provider())
        .map_err(|e| AuthnError::Config(format!("system CA roots: {e}")))?
        .https_or_http()
        .enable_http1()
        .build();
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(https);
    let uri: http::Uri = url
        .parse()
        .map_err(|e| AuthnError::Config(format!("JWKS URL {url:?}: {e}")))?;
    let unavailable = |e: String| AuthnError::Unavailable(format!("fetching JWKS {url}: {e}"));
    let resp = tokio::time::timeout(FETCH_TIMEOUT, client.get(uri))
        .await
        .map_err(|_| unavailable("timed out".into()))?
        .map_err(|e| unavailable(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(unavailable(format!("HTTP {}", resp.status())));
    }
    let body = tokio::time::timeout(FETCH_TIMEOUT, resp.into_body().collect())
        .await
        .map_err(|_| unavailable("timed out".into()))?
        .map_err(|e| unavailable(e.to_string()))?;
    Ok(body.to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use base64::Engine as _;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};
    use serde_json::json;

    const ISSUER: &str = "https://idp.example";

    struct Signer {
        pkcs8: Vec<u8>,
        jwk: Value,
    }

    fn signer(kid: &str) -> Signer {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .unwrap()
            .as_ref()
            .to_vec();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &rng).unwrap();
        let point = pair.public_key().as_ref(); // 0x04 || x || y
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
            "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..65]),
        });
        Signer { pkcs8, jwk }
    }

    impl Signer {
        fn token(&self, claims: Value) -> String {
            let mut h = Header::new(Algorithm::ES256);
            h.kid = self.jwk["kid"].as_str().map(str::to_string);
            encode(&h, &claims, &EncodingKey::from_ec_der(&self.pkcs8)).unwrap()
        }
    }

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn claims(sub: &str) -> Value {
        json!({"iss": ISSUER, "aud": "universal", "sub": sub, "exp": now() + 600,
               "groups": ["team-a"]})
    }

    fn write_jwks(dir: &std::path::Path, keys: &[&Signer]) -> PathBuf {
        let p = dir.join("jwks.json");
        let set = json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()});
        std::fs::write(&p, set.to_string()).unwrap();
        p
    }

    async fn verifier(jwks: JwksSource) -> OidcVerifier {
        OidcVerifier::new(OidcConfig {
            issuer: ISSUER.into(),
            audience: "universal".into(),
            jwks,
            ..OidcConfig::default()
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn valid_tokens_map_to_prefixed_users_and_bad_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let good = signer("k1");
        let v = verifier(JwksSource::File(write_jwks(dir.path(), &[&good]))).await;

        let token = good.token(claims("alice"));
        assert!(looks_like_jwt(&token));
        let s = v.verify(&token).await.unwrap();
        assert_eq!(s.user, "oidc:alice");
        assert_eq!(s.groups, vec!["oidc:team-a".to_string()]);

        let mut expired = claims("alice");
        expired["exp"] = json!(now() - 3600);
        let err = v.verify(&good.token(expired)).await.unwrap_err();
        assert!(err.to_string().contains("Expired"), "{err}");

        let mut wrong_aud = claims("alice");
        wrong_aud["aud"] = json!("someone-else");
        assert!(v.verify(&good.token(wrong_aud)).await.is_err());

        let mut wrong_iss = claims("alice");
        wrong_iss["iss"] = json!("https://evil.example");
        assert!(v.verify(&good.token(wrong_iss)).await.is_err());

        // Same kid, different key: the signature does not verify.
        let forger = signer("k1");
        let err = v.verify(&forger.token(claims("root"))).await.unwrap_err();
        assert!(matches!(err, AuthnError::BadToken(_)), "{err}");

        let hs = encode(
            &Header::new(Algorithm::HS256),
            &claims("root"),
            &EncodingKey::from_secret(b"guessable"),
        )
        .unwrap();
        let err = v.verify(&hs).await.unwrap_err();
        assert!(err.to_string().contains("not accepted"), "{err}");
    }

    #[tokio::test]
    async fn a_rotated_key_is_fetched_from_the_jwks_url() {
        use std::sync::{Arc, Mutex};
        let first = signer("k1");
        let second = signer("k2");
        let served = Arc::new(Mutex::new(json!({"keys": [first.jwk.clone()]})));
        let app = {
            let served = served.clone();
            axum::Router::new().route(
                "/jwks",
                axum::routing::get(move || {
                    let body = served.lock().unwrap().to_string();
                    async move { body }
                }),
            )
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });

        let v = verifier(JwksSource::Url(format!("http://{addr}/jwks"))).await;
        assert_eq!(
            v.verify(&first.token(claims("a"))).await.unwrap().user,
            "oidc:a"
        );

        // The provider rotates to a new key; the cache is old enough to refetch.
        *served.lock().unwrap() = json!({"keys": [first.jwk.clone(), second.jwk.clone()]});
        v.keys.write().unwrap().fetched = Instant::now() - REFRESH_EVERY;
        assert_eq!(
            v.verify(&second.token(claims("b"))).await.unwrap().user,
            "oidc:b"
        );

        // An unknown kid right after a fetch does not cause another one.
        let third = signer("k3");
        let err = v.verify(&third.token(claims("c"))).await.unwrap_err();
        assert!(err.to_string().contains("no key"), "{err}");
    }
}
