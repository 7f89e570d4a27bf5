//! A small certificate authority: `uni-scheduler init` creates one, the scheduler signs node
//! certificates with it at bootstrap and rotation, and tests issue throwaway identities.
//! Keys are ECDSA P-256. A client certificate names its user in CN and its group in O.

use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, CertificateSigningRequestParams,
    DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use time::OffsetDateTime;

use crate::{Error, Result};

/// How long a generated CA is valid.
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Issued certificates start this far in the past, to tolerate clock skew between hosts.
const BACKDATE: Duration = Duration::from_secs(300);

fn tls_err(what: &str) -> impl Fn(rcgen::Error) -> Error + '_ {
    move |e| Error::Tls(format!("{what}: {e}"))
}

/// A CA's certificate and key.
pub struct Ca {
    cert_pem: String,
    key_pem: String,
    /// The CA as rcgen needs it to sign; same subject and key as `cert_pem`.
    issuer: Certificate,
    key: KeyPair,
}

/// A certificate and its private key, both PEM.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Issued {
    /// Writes the certificate (0644) and key (0600).
    pub fn write(&self, cert: &Path, key: &Path) -> Result<()> {
        write_file(cert, &self.cert_pem, 0o644)?;
        write_file(key, &self.key_pem, 0o600)
    }
}

/// Writes `text` to `path` through a temporary file, so a reader never sees half a file.
pub fn write_file(path: &Path, text: &str, mode: u32) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp = path.with_extension("tmp");
    let io = |e: std::io::Error| Error::Tls(format!("writing {}: {e}", path.display()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

fn validity(params: &mut CertificateParams, valid_for: Duration) {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now + valid_for;
}

fn name(cn: &str, group: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    if let Some(g) = group {
        dn.push(DnType::OrganizationName, g);
    }
    dn
}

impl Ca {
    /// A new self-signed CA named `cn`.
    pub fn generate(cn: &str) -> Result<Self> {
        let key = KeyPair::generate().map_err(tls_err("generating the CA key"))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name(cn, None);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        validity(&mut params, CA_VALIDITY);
        let issuer = params
            .self_signed(&key)
            .map_err(tls_err("signing the CA"))?;
        Ok(Self {
            cert_pem: issuer.pem(),
            key_pem: key.serialize_pem(),
            issuer,
            key,
        })
    }

    /// A CA from its PEM certificate and key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self> {
        let key = KeyPair::from_pem(key_pem).map_err(tls_err("CA key"))?;
        let params =
            CertificateParams::from_ca_cert_pem(cert_pem).map_err(tls_err("CA certificate"))?;
        // Re-signing gives rcgen an issuer with the same subject and key; certificates it
        // signs verify against the original CA certificate.
        let issuer = params.self_signed(&key).map_err(tls_err("CA key"))?;
        if issuer
            .params()
            .distinguished_name
            .get(&DnType::CommonName)
            .is_none()
        {
            return Err(Error::Tls("CA certificate has no common name".into()));
        }
        Ok(Self {
            cert_pem: cert_pem.to_string(),
            key_pem: key_pem.to_string(),
            issuer,
            key,
        })
    }

    /// A CA from `cert` and `key` files.
    pub fn load(cert: &Path, key: &Path) -> Result<Self> {
        let read = |p: &Path| {
            std::fs::read_to_string(p)
                .map_err(|e| Error::Tls(format!("reading {}: {e}", p.display())))
        };
        Self::from_pem(&read(cert)?, &read(key)?)
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// Writes `DIR/BASENAME.crt` (0644) and `DIR/BASENAME.key` (0600).
    pub fn write(&self, dir: &Path, basename: &str) -> Result<()> {
        write_file(&dir.join(format!("{basename}.crt")), &self.cert_pem, 0o644)?;
        write_file(&dir.join(format!("{basename}.key")), &self.key_pem, 0o600)
    }

    /// A server certificate for `names` (DNS names or IP addresses).
    pub fn issue_server(&self, cn: &str, names: &[String], valid_for: Duration) -> Result<Issued> {
        let mut params = CertificateParams::new(names.to_vec()).map_err(tls_err("server names"))?;
        params.distinguished_name = name(cn, None);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        validity(&mut params, valid_for);
        self.sign(params)
    }

    /// A certificate a component serves with and also presents as a client (`cn` in
    /// `group`), e.g. the scheduler calling the agents' log services.
    pub fn issue_peer(
        &self,
        cn: &str,
        group: &str,
        names: &[String],
        valid_for: Duration,
    ) -> Result<Issued> {
        let mut params = CertificateParams::new(names.to_vec()).map_err(tls_err("server names"))?;
        params.distinguished_name = name(cn, Some(group));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        validity(&mut params, valid_for);
        self.sign(params)
    }

    /// A client certificate for user `cn` in `group`.
    pub fn issue_client(
        &self,
        cn: &str,
        group: Option<&str>,
        valid_for: Duration,
    ) -> Result<Issued> {
        let mut params = CertificateParams::default();
        params.distinguished_name = name(cn, group);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        validity(&mut params, valid_for);
        self.sign(params)
    }

    fn sign(&self, params: CertificateParams) -> Result<Issued> {
        let key = KeyPair::generate().map_err(tls_err("generating a key"))?;
        let cert = params
            .signed_by(&key, &self.issuer, &self.key)
            .map_err(tls_err("signing"))?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Signs a CSR's public key into a certificate whose subject, names and usage the CA
    /// decides: whatever the CSR asks for besides its key is ignored.
    pub fn sign_csr(
        &self,
        csr_pem: &str,
        usage: &CsrUsage<'_>,
        valid_for: Duration,
    ) -> Result<String> {
        let mut csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(tls_err("certificate signing request"))?;
        let mut params =
            CertificateParams::new(usage.server_names.to_vec()).map_err(tls_err("server names"))?;
        params.distinguished_name = name(usage.common_name, usage.group);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        if !usage.server_names.is_empty() {
            params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ServerAuth);
        }
        validity(&mut params, valid_for);
        csr.params = params;
        let cert = csr
            .signed_by(&self.issuer, &self.key)
            .map_err(tls_err("signing"))?;
        Ok(cert.pem())
    }
}

/// What a certificate signed from a CSR is for.
pub struct CsrUsage<'a> {
    pub common_name: &'a str,
    pub group: Option<&'a str>,
    /// Non-empty also makes it a server certificate for these names.
    pub server_names: &'a [String],
}

/// A new key and a CSR for it, both PEM: `(csr, key)`.
pub fn generate_csr(cn: &str) -> Result<(String, String)> {
    let key = KeyPair::generate().map_err(tls_err("generating a key"))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = name(cn, None);
    let csr = params
        .serialize_request(&key)
        .map_err(tls_err("certificate signing request"))?;
    let pem = csr.pem().map_err(tls_err("certificate signing request"))?;
    Ok((pem, key.serialize_pem()))
}

/// The parts of a certificate that identify and bound it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    pub common_name: String,
    pub organizations: Vec<String>,
    /// DNS names and IP addresses (subject alternative names).
    pub server_names: Vec<String>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

/// The identity and validity of a DER certificate.
pub fn cert_info(der: &[u8]) -> Result<CertInfo> {
    use std::net::IpAddr;
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| Error::Tls(format!("not an X.509 certificate: {e}")))?;
    let subject = cert.subject();
    let text =
        |a: &x509_parser::x509::AttributeTypeAndValue<'_>| a.as_str().ok().map(str::to_string);
    let at = |secs: i64| SystemTime::UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64);
    let common_name = subject
        .iter_common_name()
        .find_map(text)
        .unwrap_or_default();
    let organizations = subject.iter_organization().filter_map(text).collect();
    let server_names = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::DNSName(d) => Some(d.to_string()),
                GeneralName::IPAddress(b) => match b.len() {
                    4 => Some(IpAddr::from(<[u8; 4]>::try_from(*b).ok()?).to_string()),
                    16 => Some(IpAddr::from(<[u8; 16]>::try_from(*b).ok()?).to_string()),
                    _ => None,
                },
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let info = CertInfo {
        common_name,
        organizations,
        server_names,
        not_before: at(cert.validity().not_before.timestamp()),
        not_after: at(cert.validity().not_after.timestamp()),
    };
    Ok(info)
}

/// [`cert_info`] of the first certificate in PEM text.
pub fn cert_info_pem(pem: &str) -> Result<CertInfo> {
    let certs = super::pem::certs_from_pem(pem.as_bytes()).map_err(Error::Tls)?;
    cert_info(certs[0].as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_certificates_name_their_subject_and_reload_from_pem() {
        let ca = Ca::generate("test-ca").unwrap();
        let client = ca
            .issue_client("alice", Some("team-a"), Duration::from_secs(3600))
            .unwrap();
        let info = cert_info_pem(&client.cert_pem).unwrap();
        assert_eq!(info.common_name, "alice");
        assert_eq!(info.organizations, vec!["team-a".to_string()]);
        assert!(info.not_after > SystemTime::now());
        assert!(info.not_after < SystemTime::now() + Duration::from_secs(3700));

        // A CA loaded back from PEM signs certificates that name it as issuer.
        let again = Ca::from_pem(ca.cert_pem(), ca.key_pem()).unwrap();
        let server = again
            .issue_server(
                "s",
                &["localhost".into(), "127.0.0.1".into()],
                Duration::from_secs(60),
            )
            .unwrap();
        let info = cert_info_pem(&server.cert_pem).unwrap();
        assert_eq!(info.common_name, "s");
        assert_eq!(info.server_names, ["localhost", "127.0.0.1"]);
        assert!(cert_info_pem(&client.cert_pem)
            .unwrap()
            .server_names
            .is_empty());
    }

    #[test]
    fn a_csr_gets_the_identity_the_ca_decides() {
        let ca = Ca::generate("test-ca").unwrap();
        let (csr, _key) = generate_csr("system:masters-please").unwrap();
        let usage = CsrUsage {
            common_name: "system:node:n1",
            group: Some("system:nodes"),
            server_names: &[],
        };
        let cert = ca.sign_csr(&csr, &usage, Duration::from_secs(60)).unwrap();
        let info = cert_info_pem(&cert).unwrap();
        assert_eq!(info.common_name, "system:node:n1");
        assert_eq!(info.organizations, vec!["system:nodes".to_string()]);
        assert!(ca
            .sign_csr("not a csr", &usage, Duration::from_secs(60))
            .is_err());
    }
}
