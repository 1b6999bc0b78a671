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
    #[error("no matches for kind \"{kind}\" in version \"{api_version}\" (API discovery does not list it; is the apiVersion right, is its CRD installed?)")]
    NoKind { api_version: String, kind: String },
}

impl KubeError {
    /// The HTTP status of an API answer, if the error is one.
    pub fn status_code(&self) -> Option<u16> {
        match self {
            KubeError::Status { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// A failed request to `path`: the API server's `Status` answer, or what kept the request
    /// from being answered.
    pub fn request(path: &str, error: kube::Error) -> KubeError {
        match error {
            kube::Error::Api(status) => KubeError::Status {
                code: status.code,
                path: path.to_string(),
                message: status.message,
            },
            kube::Error::SerdeError(e) => KubeError::Decode {
                path: path.to_string(),
                message: e.to_string(),
            },
            other => KubeError::Transport {
                path: path.to_string(),
                message: error_chain(&other),
            },
        }
    }
}

/// An error and its sources, `: `-separated.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !out.ends_with(&next) {
            out.push_str(": ");
            out.push_str(&next);
        }
        source = s.source();
    }
    out
}
