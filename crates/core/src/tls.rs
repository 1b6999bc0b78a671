//! What the TLS layer learned about a connection, handed to the layers above it.

/// The client certificate chain a connection presented (leaf first, DER bytes), as offered
/// during the TLS handshake. The TLS layer only checks that the client holds the leaf's key;
/// whether the chain is trusted (request-header CA, client CA) is decided by authentication.
/// Inserted into every request's extensions on a connection that presented one; the chain
/// is shared, not copied, between the requests of a connection.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PeerCertificates(std::sync::Arc<[Vec<u8>]>);

impl PeerCertificates {
    /// The chain `certs`, leaf first.
    pub fn new(certs: Vec<Vec<u8>>) -> PeerCertificates {
        PeerCertificates(certs.into())
    }

    /// The certificates, leaf first.
    pub fn chain(&self) -> &[Vec<u8>] {
        &self.0
    }
}
