//! Client certificate chain verification against a CA bundle, and the subject it names.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use webpki::{EndEntityCert, KeyUsage};

use crate::AuthError;

/// A set of trusted certificate authorities, read from PEM (a `--client-ca-file`, a
/// `--requestheader-client-ca-file`, or a key of `extension-apiserver-authentication`).
///
/// Chains it verified are remembered (see [`VerifiedChains`]), so a client that sends many
/// requests — the aggregator's front proxy sends every one — costs one signature check,
/// not one per request.
#[derive(Debug, Clone)]
pub struct CaBundle {
    name: String,
    anchors: Vec<TrustAnchor<'static>>,
    verified: Arc<VerifiedChains>,
}

/// The most chains a bundle remembers; past it the memory starts over.
const MAX_VERIFIED_CHAINS: usize = 512;

/// Chains that verified against a bundle, by their exact bytes, with the subject of the
/// leaf and the time span in which every certificate of the chain is valid. Verification
/// depends on nothing else that can change (the bundle's anchors are fixed; a new bundle
/// starts with no memory), so within that span verifying the same chain again gives the
/// same answer; outside it the chain is verified anew. Failures are not remembered.
#[derive(Default)]
struct VerifiedChains {
    chains: Mutex<HashMap<Vec<Vec<u8>>, Verified>>,
}

struct Verified {
    subject: CertSubject,
    /// Unix seconds: the latest `notBefore` and earliest `notAfter` of the chain.
    not_before: i64,
    not_after: i64,
}

impl std::fmt::Debug for VerifiedChains {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.chains.lock().map_or(0, |c| c.len());
        write!(f, "VerifiedChains({n})")
    }
}

impl VerifiedChains {
    fn get(&self, chain: &[Vec<u8>], now: i64) -> Option<CertSubject> {
        let chains = self.chains.lock().unwrap_or_else(|p| p.into_inner());
        chains
            .get(chain)
            .filter(|v| v.not_before <= now && now <= v.not_after)
            .map(|v| v.subject.clone())
    }

    fn remember(&self, chain: &[Vec<u8>], subject: &CertSubject) {
        // Every certificate of the chain counts, used by the verified path or not: the
        // span can only be narrower than the path's.
        let mut not_before = i64::MIN;
        let mut not_after = i64::MAX;
        for der in chain {
            let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
                return;
            };
            let validity = cert.validity();
            not_before = not_before.max(validity.not_before.timestamp());
            not_after = not_after.min(validity.not_after.timestamp());
        }
        let mut chains = self.chains.lock().unwrap_or_else(|p| p.into_inner());
        if chains.len() >= MAX_VERIFIED_CHAINS {
            chains.clear();
        }
        chains.insert(
            chain.to_vec(),
            Verified {
                subject: subject.clone(),
                not_before,
                not_after,
            },
        );
    }
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
            verified: Arc::default(),
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
        let since_epoch = now
            .duration_since(UNIX_EPOCH)
            .map_err(|_| invalid("clock is before 1970".to_string()))?;
        // Whole seconds, as the verification below compares times.
        let now_secs = i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX);
        if let Some(subject) = self.verified.get(chain, now_secs) {
            return Ok(subject);
        }
        let leaf_der = CertificateDer::from(leaf.as_slice());
        let end_entity = EndEntityCert::try_from(&leaf_der).map_err(|e| invalid(e.to_string()))?;
        let intermediates: Vec<CertificateDer<'_>> = rest
            .iter()
            .map(|c| CertificateDer::from(c.as_slice()))
            .collect();
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
        let subject = subject_of(leaf).map_err(invalid)?;
        self.verified.remember(chain, &subject);
        Ok(subject)
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

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    };
    use std::time::Duration;

    /// A CA bundle and a client chain it signed, valid from 2026-01-01 for 30 days.
    fn ca_and_client() -> (CaBundle, Vec<Vec<u8>>) {
        let ca_key = KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap_or_else(|e| panic!("{e}"));
        ca.distinguished_name.push(DnType::CommonName, "ca");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca.self_signed(&ca_key).unwrap_or_else(|e| panic!("{e}"));
        let key = KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
        let mut params =
            CertificateParams::new(Vec::<String>::new()).unwrap_or_else(|e| panic!("{e}"));
        params
            .distinguished_name
            .push(DnType::CommonName, "front-proxy");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "proxies");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.not_before = rcgen::date_time_ymd(2026, 1, 1);
        params.not_after = rcgen::date_time_ymd(2026, 1, 31);
        let client = params
            .signed_by(&key, &ca, &ca_key)
            .unwrap_or_else(|e| panic!("{e}"));
        let bundle =
            CaBundle::from_pem("ca.crt", ca.pem().as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        (bundle, vec![client.der().to_vec()])
    }

    fn day(n: u64) -> SystemTime {
        // 2026-01-01T00:00:00Z plus `n` days.
        UNIX_EPOCH + Duration::from_secs(1_767_225_600 + n * 86_400)
    }

    fn remembered(bundle: &CaBundle) -> usize {
        bundle
            .verified
            .chains
            .lock()
            .map(|c| c.len())
            .unwrap_or_default()
    }

    #[test]
    fn verified_chains_are_remembered_only_within_their_validity() {
        let (bundle, chain) = ca_and_client();
        let subject = bundle
            .verify_client(&chain, day(3))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(subject.common_name, "front-proxy");
        assert_eq!(subject.organizations, vec!["proxies"]);
        assert_eq!(remembered(&bundle), 1);
        // Answered from memory, the same subject; clones of the bundle share it.
        assert_eq!(
            bundle.clone().verify_client(&chain, day(4)).ok(),
            Some(subject)
        );
        // Outside the certificate's validity the memory does not answer.
        assert!(bundle.verify_client(&chain, day(40)).is_err());
        assert!(bundle
            .verify_client(&chain, UNIX_EPOCH + Duration::from_secs(1_767_225_599))
            .is_err());
        // Failures are not remembered: a chain from another CA, or a broken one.
        let (_, other) = ca_and_client();
        assert!(bundle.verify_client(&other, day(3)).is_err());
        assert!(bundle
            .verify_client(&[b"garbage".to_vec()], day(3))
            .is_err());
        assert_eq!(remembered(&bundle), 1);
        // Another bundle (a rotated CA) starts with no memory.
        let (rotated, _) = ca_and_client();
        assert!(rotated.verify_client(&chain, day(3)).is_err());
    }
}
