//! A throw-away certificate authority for tests: a CA, a server certificate for
//! `127.0.0.1`/`localhost` (and a name no resolver knows), and a client certificate, written
//! as PEM files.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};

/// PEM files of a test CA and the certificates it signed.
pub struct TestPki {
    pub dir: tempfile::TempDir,
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

/// A name in the server certificate that no resolver knows.
pub const UNRESOLVED_NAME: &str = "prometheus.promhpa.test";

fn err(what: &str) -> impl Fn(rcgen::Error) -> String + '_ {
    move |e| format!("generating {what}: {e}")
}

impl TestPki {
    /// Generate a CA (`CN=<ca_name>`), a server certificate and a client certificate
    /// (`CN=<client_cn>`).
    pub fn generate(ca_name: &str, client_cn: &str) -> Result<TestPki, String> {
        Self::generate_with_group(ca_name, client_cn, None)
    }

    /// [`TestPki::generate`] with an organization (`O=`) in the client certificate, which
    /// Kubernetes reads as the user's group (`system:masters` is allowed everything without
    /// asking the cluster).
    pub fn generate_with_group(
        ca_name: &str,
        client_cn: &str,
        client_group: Option<&str>,
    ) -> Result<TestPki, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
        let ca_key = KeyPair::generate().map_err(err("ca key"))?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err("ca"))?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, ca_name);
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = ca_params.self_signed(&ca_key).map_err(err("ca"))?;

        let server_key = KeyPair::generate().map_err(err("server key"))?;
        // Also a name that resolves nowhere (`.test` is reserved), for tests whose proxy
        // takes it to 127.0.0.1.
        let mut sp =
            CertificateParams::new(vec!["localhost".to_string(), UNRESOLVED_NAME.to_string()])
                .map_err(err("server"))?;
        sp.subject_alt_names
            .push(SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1])));
        sp.distinguished_name.push(DnType::CommonName, "localhost");
        sp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server = sp
            .signed_by(&server_key, &ca, &ca_key)
            .map_err(err("server certificate"))?;

        let client_key = KeyPair::generate().map_err(err("client key"))?;
        let mut cp = CertificateParams::new(Vec::<String>::new()).map_err(err("client"))?;
        cp.distinguished_name.push(DnType::CommonName, client_cn);
        if let Some(group) = client_group {
            cp.distinguished_name.push(DnType::OrganizationName, group);
        }
        cp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client = cp
            .signed_by(&client_key, &ca, &ca_key)
            .map_err(err("client certificate"))?;

        let p = |n: &str| dir.path().join(n);
        let pki = TestPki {
            ca_cert: p("ca.crt"),
            server_cert: p("server.crt"),
            server_key: p("server.key"),
            client_cert: p("client.crt"),
            client_key: p("client.key"),
            dir,
        };
        write(&pki.ca_cert, &ca.pem())?;
        write(&pki.server_cert, &server.pem())?;
        write(&pki.server_key, &server_key.serialize_pem())?;
        write(&pki.client_cert, &client.pem())?;
        write(&pki.client_key, &client_key.serialize_pem())?;
        Ok(pki)
    }
}

impl TestPki {
    /// [`TestPki::generate`] with the server certificate self-signed and marked as a CA, as
    /// `openssl req -x509` makes one: `ca_cert` is that same certificate, as a user hands a
    /// self-signed server's certificate over as its CA file. The client certificate is
    /// signed by a CA of its own.
    pub fn self_signed_server(client_cn: &str) -> Result<TestPki, String> {
        let pki = Self::generate("client-ca", client_cn)?;
        let key = KeyPair::generate().map_err(err("self-signed key"))?;
        let mut params =
            CertificateParams::new(vec!["localhost".to_string()]).map_err(err("self-signed"))?;
        params
            .subject_alt_names
            .push(SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1])));
        params
            .distinguished_name
            .push(DnType::CommonName, "prometheus");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params
            .self_signed(&key)
            .map_err(err("self-signed certificate"))?;
        write(&pki.server_cert, &cert.pem())?;
        write(&pki.server_key, &key.serialize_pem())?;
        write(&pki.ca_cert, &cert.pem())?;
        Ok(pki)
    }
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))
}
