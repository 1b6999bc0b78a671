//! Delegated authentication and authorization wired to a cluster: the `--authentication-*`,
//! `--authorization-*`, `--client-ca-file` and `--requestheader-*` flags turned into the
//! [`RequestAuth`] guard the API server puts in front of every request.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use promhpa_auth::authn::TokenReviewConfig;
use promhpa_auth::request::DEFAULT_ALWAYS_ALLOW_PATHS;
use promhpa_auth::{
    AuthError, AuthnFlags, DelegatingAuthenticator, DelegatingAuthorizer, RequestAuth,
    ReviewClient, SystemClock,
};
use promhpa_core::BoxFuture;
use tokio::task::JoinHandle;

use crate::authconfig::{follow_authentication_config, follow_ca_files, AuthnState};
use crate::client::ClusterAccess;
use crate::KubeError;

/// The flag values of delegated authentication and authorization, with Kubernetes' defaults.
#[derive(Debug, Clone)]
pub struct DelegatedAuthOptions {
    /// `--client-ca-file` and `--requestheader-*`.
    pub authn: AuthnFlags,
    /// `--authentication-kubeconfig`; in-cluster credentials when unset.
    pub authentication_kubeconfig: Option<PathBuf>,
    /// `--authorization-kubeconfig`; in-cluster credentials when unset.
    pub authorization_kubeconfig: Option<PathBuf>,
    /// `--authentication-token-webhook-cache-ttl` (10s).
    pub token_cache_ttl: Duration,
    /// `--authorization-webhook-cache-authorized-ttl` (10s).
    pub authorized_ttl: Duration,
    /// `--authorization-webhook-cache-unauthorized-ttl` (10s).
    pub unauthorized_ttl: Duration,
    /// `--authorization-always-allow-paths` (`/healthz`, `/readyz`, `/livez`).
    pub always_allow_paths: Vec<String>,
    /// `--authentication-skip-lookup`: do not read `extension-apiserver-authentication`.
    pub skip_lookup: bool,
    /// `--authentication-tolerate-lookup-failure`: start even if it cannot be read.
    pub tolerate_lookup_failure: bool,
    /// `--anonymous-auth` (true): authorize requests without credentials as
    /// `system:anonymous` instead of answering 401, as Kubernetes' delegated authentication
    /// does.
    pub anonymous: bool,
    /// Audiences bearer tokens are reviewed for; empty leaves the API server's default.
    pub token_audiences: Vec<String>,
    /// How often the `--client-ca-file` and `--requestheader-client-ca-file` files are
    /// looked at; a change is applied without a restart.
    pub ca_file_check_interval: Duration,
}

impl Default for DelegatedAuthOptions {
    fn default() -> Self {
        DelegatedAuthOptions {
            authn: AuthnFlags::default(),
            authentication_kubeconfig: None,
            authorization_kubeconfig: None,
            token_cache_ttl: Duration::from_secs(10),
            authorized_ttl: Duration::from_secs(10),
            unauthorized_ttl: Duration::from_secs(10),
            always_allow_paths: DEFAULT_ALWAYS_ALLOW_PATHS
                .iter()
                .map(|p| p.to_string())
                .collect(),
            skip_lookup: false,
            tolerate_lookup_failure: false,
            anonymous: true,
            ca_file_check_interval: Duration::from_secs(2),
            token_audiences: Vec::new(),
        }
    }
}

/// The guard and what keeps it current. Dropping it stops following the configmap.
pub struct DelegatedAuth {
    pub guard: Arc<RequestAuth>,
    pub authenticator: Arc<DelegatingAuthenticator>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for DelegatedAuth {
    fn drop(&mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
    }
}

/// Builds the guard against the cluster the kubeconfig flags (or the pod) point at.
pub async fn delegated_auth(options: &DelegatedAuthOptions) -> Result<DelegatedAuth, KubeError> {
    let authn = ClusterAccess::kubeconfig(options.authentication_kubeconfig.as_deref()).client()?;
    let authz = if options.authorization_kubeconfig == options.authentication_kubeconfig {
        authn.clone()
    } else {
        ClusterAccess::kubeconfig(options.authorization_kubeconfig.as_deref()).client()?
    };
    delegated_auth_with(options, authn, authz).await
}

/// TokenReviews and SubjectAccessReviews created through a kube client.
pub struct Reviews(pub kube::Client);

impl ReviewClient for Reviews {
    fn create<'a>(
        &'a self,
        path: &'a str,
        body: Vec<u8>,
    ) -> BoxFuture<'a, Result<Vec<u8>, AuthError>> {
        Box::pin(async move {
            let request = http::Request::post(path)
                .header(http::header::CONTENT_TYPE, "application/json")
                .header(http::header::ACCEPT, "application/json")
                .body(body)
                .map_err(|e| AuthError::Transport(e.to_string()))?;
            self.0
                .request_text(request)
                .await
                .map(String::into_bytes)
                .map_err(|e| AuthError::Transport(KubeError::request(path, e).to_string()))
        })
    }
}

/// [`delegated_auth`] over given API clients.
pub async fn delegated_auth_with(
    options: &DelegatedAuthOptions,
    authn_client: kube::Client,
    authz_client: kube::Client,
) -> Result<DelegatedAuth, KubeError> {
    let authn_api = Arc::new(Reviews(authn_client.clone()));
    let authz_api = Arc::new(Reviews(authz_client));
    let flag_sources = options
        .authn
        .load()
        .map_err(|e| KubeError::Auth(e.to_string()))?;
    let tokens = TokenReviewConfig {
        client: authn_api.clone(),
        ttl: options.token_cache_ttl,
        audiences: options.token_audiences.clone(),
    };
    let authenticator = Arc::new(DelegatingAuthenticator::new(
        flag_sources.clone(),
        Some(tokens),
        Arc::new(SystemClock),
    ));
    let mut tasks = Vec::new();
    let state = Arc::new(AuthnState::new(flag_sources));
    if !options.skip_lookup {
        let task = follow_authentication_config(
            authn_client,
            authenticator.clone(),
            state.clone(),
            options.tolerate_lookup_failure,
        )
        .await?;
        tasks.push(task);
    }
    tasks.extend(follow_ca_files(
        options.authn.clone(),
        state,
        authenticator.clone(),
        options.ca_file_check_interval,
    ));
    let authorizer = Arc::new(DelegatingAuthorizer::new(
        authz_api,
        options.authorized_ttl,
        options.unauthorized_ttl,
        Arc::new(SystemClock),
    ));
    let guard = RequestAuth::new(authenticator.clone(), authorizer)
        .with_always_allow_paths(options.always_allow_paths.clone())
        .with_anonymous(options.anonymous);
    Ok(DelegatedAuth {
        guard: Arc::new(guard),
        authenticator,
        tasks,
    })
}
