/// Why authentication or authorization could not be decided, or decided against a request.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("invalid certificate authority bundle {name}: {message}")]
    InvalidCaBundle { name: String, message: String },
    #[error("x509: certificate is not valid for client authentication against {ca}: {message}")]
    CertificateInvalid { ca: String, message: String },
    #[error("x509: subject with cn={0} is not in the allowed list")]
    CommonNameNotAllowed(String),
    #[error("invalid bearer token")]
    InvalidBearerToken,
    #[error("token review failed: {0}")]
    TokenReview(String),
    #[error("subject access review failed: {0}")]
    SubjectAccessReview(String),
    #[error("request to the kubernetes api failed: {0}")]
    Transport(String),
    #[error("invalid configmap kube-system/extension-apiserver-authentication: {0}")]
    ConfigMap(String),
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))]
    Multiple(Vec<AuthError>),
}
