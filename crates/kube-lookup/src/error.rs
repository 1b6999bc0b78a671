/// Errors talking to the Kubernetes API or reading its credentials.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum KubeError {
    #[error("kubernetes api answered {code} for {path}: {message}")]
    Status {
        code: u16,
        path: String,
        message: String,
    },
    #[error("request to the kubernetes api failed for {path}: {message}")]
    Transport { path: String, message: String },
    #[error("decoding the kubernetes api answer for {path}: {message}")]
    Decode { path: String, message: String },
    #[error("kubeconfig {path}: {message}")]
    Kubeconfig { path: String, message: String },
    #[error("in-cluster configuration: {0}")]
    InCluster(String),
    #[error("authentication settings: {0}")]
    Auth(String),
    #[error("watch of {0} expired (410 Gone)")]
    Gone(String),
    #[error("no matches for kind \"{kind}\" in version \"{api_version}\" (API discovery does not list it; is the apiVersion right, is its CRD installed?)")]
    NoKind { api_version: String, kind: String },
}

impl KubeError {
    /// The HTTP status of an API answer, if the error is one.
    pub fn status_code(&self) -> Option<u16> {
        match self {
            KubeError::Status { code, .. } => Some(*code),
            KubeError::Gone(_) => Some(410),
            _ => None,
        }
    }
}
