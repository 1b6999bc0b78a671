//! Client certificate chain verification against a CA bundle, and the subject it names.

use std::time::{SystemTime, UNIX_EPOCH};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use webpki::{EndEntityCert, KeyUsage};

use crate::AuthError;

/// A set of trusted certificate authorities, read from PEM (a `--client-ca-file`, a
/// `--requestheader-client-ca-file`, or a key of `extension-apiserver-authentication`).
#[derive(Debug, Clone)]
pub struct CaBundle {
    name: String,
    anchors: Vec<TrustAnchor<'static>>,
}

/// What a verified client certificate says about its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSubject {
    pub common_name: String,
    pub organizations: Vec<String>,
}

impl CaBundle {
    /// Parses every `CERTIFICATE` block of `pem`; `name` (a file name or configmap key) is used
    /// in error messages. A bundle with no certificate is an error.
    pub fn from_pem(name: &str, pem: &[u8]) -> Result<Self, AuthError> {
        let invalid = |message: String| AuthError::InvalidCaBundle {
            name: name.to_string(),
            message,
        };
        let mut anchors = Vec::new();
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| invalid(e.to_string()))?;
            let anchor = webpki::anchor_from_trusted_cert(&cert)
                .map_err(|e| invalid(format!("certificate {}: {e}", anchors.len() + 1)))?;
            anchors.push(anchor.to_owned());
        }
        if anchors.is_empty() {
            return Err(invalid("no certificate found".to_string()));
        }
        Ok(CaBundle {
            name: name.to_string(),
            anchors,
        })
    }

    /// Where the bundle was read from.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of trusted certificates.
    pub fn len(&self) -> usize {
        self.anchors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.anchors.is_empty()
    }

    /// Verifies that `chain` (leaf first, DER; the rest are intermediates) chains to one of
    /// this bundle's CAs, is valid at `now`, and may be used for client authentication; then
    /// returns the leaf's subject common name and organizations.
    pub fn verify_client(
        &self,
        chain: &[Vec<u8>],
        now: SystemTime,
    ) -> Result<CertSubject, AuthError> {
        let invalid = |message: String| AuthError::CertificateInvalid {
            ca: self.name.clone(),
            message,
        };
        let (leaf, rest) = chain
            .split_first()
            .ok_or_else(|| invalid("no certificate presented".to_string()))?;
        let leaf_der = CertificateDer::from(leaf.as_slice());
        let end_entity = EndEntityCert::try_from(&leaf_der).map_err(|e| invalid(e.to_string()))?;
        let intermediates: Vec<CertificateDer<'_>> = rest
            .iter()
            .map(|c| CertificateDer::from(c.as_slice()))
            .collect();
        let since_epoch = now
            .duration_since(UNIX_EPOCH)
            .map_err(|_| invalid("clock is before 1970".to_string()))?;
        end_entity
            .verify_for_usage(
                webpki::ALL_VERIFICATION_ALGS,
                &self.anchors,
                &intermediates,
                UnixTime::since_unix_epoch(since_epoch),
                KeyUsage::client_auth(),
                None,
                None,
            )
            .map_err(|e| invalid(format!("{e:?}")))?;
        subject_of(leaf).map_err(invalid)
    }
}

/// The common name (the last one, as Go reads it) and organizations of a DER certificate's
/// subject.
pub fn subject_of(der: &[u8]) -> Result<CertSubject, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
    let subject = cert.subject();
    // Go's crypto/x509 (and so Kubernetes, and whoever approved the certificate) keeps the
    // last common name of a subject that has several.
    let common_name = subject
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok())
        .last()
        .unwrap_or_default()
        .to_string();
    let organizations = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok())
        .map(str::to_string)
        .collect();
    Ok(CertSubject {
        common_name,
        organizations,
    })
}
