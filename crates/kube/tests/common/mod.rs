//! Certificates for the kube crate's tests: a CA and client certificates it signs.
#![allow(clippy::unwrap_used, dead_code)]

pub mod standin;

use promhpa_core::tls::PeerCertificates;
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};

pub struct Ca {
    pub cert: Certificate,
    pub key: KeyPair,
}

/// A self-signed CA named `cn`.
pub fn ca(cn: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    Ca { cert, key }
}

/// A client certificate for `cn`, signed by `ca`, as a TLS peer presents it.
pub fn client(ca: &Ca, cn: &str) -> PeerCertificates {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    PeerCertificates::new(vec![params
        .signed_by(&key, &ca.cert, &ca.key)
        .unwrap()
        .der()
        .to_vec()])
}
