//! Reading certificates and keys from PEM files, with errors that name the file.

use std::path::Path;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::{Error, Result};

/// Every certificate in a PEM file; an error when it holds none.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let pem =
        std::fs::read(path).map_err(|e| Error::Tls(format!("reading {}: {e}", path.display())))?;
    certs_from_pem(&pem).map_err(|e| Error::Tls(format!("{}: {e}", path.display())))
}

/// Every certificate in PEM text.
pub fn certs_from_pem(pem: &[u8]) -> std::result::Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| format!("not PEM certificates: {e}"))?;
    if certs.is_empty() {
        return Err("no certificate in it".into());
    }
    Ok(certs)
}

/// The private key in a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let pem =
        std::fs::read(path).map_err(|e| Error::Tls(format!("reading {}: {e}", path.display())))?;
    key_from_pem(&pem).map_err(|e| Error::Tls(format!("{}: {e}", path.display())))
}

/// The private key in PEM text.
pub fn key_from_pem(pem: &[u8]) -> std::result::Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| format!("no PEM private key: {e}"))
}
