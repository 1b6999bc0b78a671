//! What the TLS layer learned about a connection, handed to the layers above it.

/// The client certificate chain a connection presented (leaf first, DER bytes), as offered
/// during the TLS handshake. The TLS layer only checks that the client holds the leaf's key;
/// whether the chain is trusted (request-header CA, client CA) is decided by authentication.
/// Inserted into every request's extensions on a connection that presented one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PeerCertificates(pub Vec<Vec<u8>>);
