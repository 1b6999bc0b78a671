//! A server certificate that the CA file holds itself, trusted as Go trusts it.
//!
//! A self-signed certificate made with `openssl req -x509` is marked as a CA
//! (`basicConstraints: CA:TRUE`). Go, and so prometheus-adapter, accepts it as a server's
//! certificate when the CA file given holds that very certificate: it checks only its names
//! and validity period. rustls refuses a CA used as an end entity (`CaUsedAsEndEntity`).
//! When the CA file holds such a certificate (self-signed, naming hosts), the client is built
//! with a verifier that does what rustls does and, when that fails for a certificate found
//! byte for byte in the CA file, what Go does.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;

/// The certificates of a PEM bundle that could be a server's own: self-signed and naming
/// hosts (a subjectAltName), as opposed to a CA's root.
pub(crate) fn server_certificates(ca_pem: &[u8]) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(ca_pem)
        .filter_map(Result::ok)
        .filter(|der| {
            x509_parser::parse_x509_certificate(der.as_ref()).is_ok_and(|(_, cert)| {
                cert.subject().as_raw() == cert.issuer().as_raw()
                    && cert.subject_alternative_name().ok().flatten().is_some()
            })
        })
        .collect()
}

/// The rustls configuration reqwest would build (ring, TLS 1.2 and 1.3, `alpn`, the client
/// certificate), verifying servers with `ca_pem` and accepting a certificate of `leaves`
/// as Go does.
pub(crate) fn client_config(
    ca_pem: &[u8],
    leaves: Vec<CertificateDer<'static>>,
    identity: Option<(&[u8], &[u8])>,
    alpn: Vec<Vec<u8>>,
) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    let (added, _) = roots
        .add_parsable_certificates(CertificateDer::pem_slice_iter(ca_pem).filter_map(Result::ok));
    if added == 0 {
        return Err("no usable certificate in it".into());
    }
    let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| e.to_string())?;
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(CaFileLeaves { inner, leaves }));
    let mut config = match identity {
        Some((cert, key)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert)
                .collect::<Result<_, _>>()
                .map_err(|e| format!("client certificate: {e}"))?;
            let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| format!("client key: {e}"))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("client certificate: {e}"))?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn;
    Ok(config)
}

#[derive(Debug)]
struct CaFileLeaves {
    inner: Arc<WebPkiServerVerifier>,
    leaves: Vec<CertificateDer<'static>>,
}

impl ServerCertVerifier for CaFileLeaves {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let refused = match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(verified) => return Ok(verified),
            Err(e) => e,
        };
        if !self
            .leaves
            .iter()
            .any(|l| l.as_ref() == end_entity.as_ref())
        {
            return Err(refused);
        }
        // The CA file holds this very certificate: as Go, only its validity period and
        // names are checked.
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(end_entity.as_ref()) else {
            return Err(refused);
        };
        let now_s = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        let validity = cert.validity();
        if now_s > validity.not_after.timestamp() {
            return Err(rustls::Error::InvalidCertificate(CertificateError::Expired));
        }
        if now_s < validity.not_before.timestamp() {
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidYet,
            ));
        }
        // As Go's verification requires of the chain: an extended key usage, when there is
        // one, must allow server authentication.
        if let Ok(Some(eku)) = cert.extended_key_usage() {
            if !(eku.value.server_auth || eku.value.any) {
                return Err(rustls::Error::InvalidCertificate(
                    CertificateError::InvalidPurpose,
                ));
            }
        }
        let leaf = webpki::EndEntityCert::try_from(end_entity).map_err(|_| refused.clone())?;
        leaf.verify_is_valid_for_subject_name(server_name)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::NotValidForName))?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use promhpa_test_support::TestPki;

    fn read(p: &std::path::Path) -> Vec<u8> {
        std::fs::read(p).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn only_self_signed_certificates_naming_hosts_are_taken_as_servers() {
        let ca = TestPki::generate("a-root", "client").unwrap_or_else(|e| panic!("{e}"));
        assert!(server_certificates(&read(&ca.ca_cert)).is_empty());
        let own = TestPki::self_signed_server("client").unwrap_or_else(|e| panic!("{e}"));
        let mut bundle = read(&ca.ca_cert);
        bundle.extend(read(&own.ca_cert));
        assert_eq!(server_certificates(&bundle).len(), 1);
        // With a client certificate, as reqwest would present it.
        let config = client_config(
            &bundle,
            server_certificates(&bundle),
            Some((&read(&own.client_cert), &read(&own.client_key))),
            vec![b"http/1.1".to_vec()],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(config.client_auth_cert_resolver.has_certs());
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
        let e = client_config(b"", Vec::new(), None, Vec::new()).err();
        assert!(e.is_some_and(|e| e.contains("no usable certificate")));
    }

    /// The fallback checks what Go checks of a certificate the CA file holds: validity,
    /// names, and an extended key usage that allows server authentication.
    #[test]
    fn a_ca_file_leaf_keeps_its_name_and_usage_checks() {
        use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair};
        let make = |eku: Vec<ExtendedKeyUsagePurpose>| {
            let key = KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
            let mut params = CertificateParams::new(vec!["localhost".to_string()])
                .unwrap_or_else(|e| panic!("{e}"));
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.extended_key_usages = eku;
            params
                .self_signed(&key)
                .unwrap_or_else(|e| panic!("{e}"))
                .der()
                .clone()
        };
        let verify = |der: &CertificateDer<'static>, name: &str| {
            let mut roots = RootCertStore::empty();
            roots.add(der.clone()).unwrap_or_else(|e| panic!("{e}"));
            let inner = WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                Arc::new(rustls::crypto::ring::default_provider()),
            )
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
            let verifier = CaFileLeaves {
                inner,
                leaves: vec![der.clone()],
            };
            let name = ServerName::try_from(name.to_string()).unwrap_or_else(|e| panic!("{e}"));
            verifier.verify_server_cert(der, &[], &name, &[], UnixTime::now())
        };
        let plain = make(Vec::new());
        assert!(verify(&plain, "localhost").is_ok());
        assert!(matches!(
            verify(&plain, "prometheus.example"),
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName
            ))
        ));
        assert!(verify(
            &make(vec![ExtendedKeyUsagePurpose::ServerAuth]),
            "localhost"
        )
        .is_ok());
        assert!(matches!(
            verify(
                &make(vec![ExtendedKeyUsagePurpose::ClientAuth]),
                "localhost"
            ),
            Err(rustls::Error::InvalidCertificate(
                CertificateError::InvalidPurpose
            ))
        ));
    }
}
