//! What `serve` needs from a live cluster: delegated authentication and authorization in front
//! of every request, and the MetricRule objects' watch and status.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use promhpa_apiserver::api::RequestGuard;
use promhpa_apiserver::rule_objects::StatusWriteError;
use promhpa_kube::client::ClusterAccess;
use promhpa_kube::delegated::{delegated_auth, DelegatedAuth, DelegatedAuthOptions};

/// Start delegated authentication and authorization against the cluster's API server. The
/// returned handle keeps the CA watch running; drop it to stop.
pub async fn guard(
    options: &DelegatedAuthOptions,
) -> anyhow::Result<(Arc<dyn RequestGuard>, DelegatedAuth)> {
    let auth = delegated_auth(options).await.context(
        "setting up delegated authentication and authorization (TokenReview, \
         SubjectAccessReview, extension-apiserver-authentication); run in a cluster, pass \
         --authentication-kubeconfig/--authorization-kubeconfig, or for local use only \
         --insecure-skip-delegated-auth",
    )?;
    let guard: Arc<dyn RequestGuard> = auth.guard.clone();
    Ok((guard, auth))
}

/// Status writes of MetricRule objects through the cluster's API server.
struct KubeStatusWriter {
    client: promhpa_kube::Client,
}

impl promhpa_apiserver::rule_objects::StatusWriter for KubeStatusWriter {
    fn write_status<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        status: &'a serde_json::Value,
    ) -> promhpa_core::backend::BoxFuture<'a, Result<(), StatusWriteError>> {
        Box::pin(async move {
            promhpa_kube::metric_rules::write_status(
                &self.client,
                namespace,
                name,
                status,
                Duration::from_secs(10),
            )
            .await?;
            Ok(())
        })
    }
}

/// Serve the cluster's MetricRule objects beside the rule file: watch them, hand the valid
/// ones to the registry, write every object's status (refreshed every `refresh`, as
/// discovery finds their series).
pub fn serve_metric_rules(
    kubeconfig: Option<&Path>,
    registry: Arc<promhpa_apiserver::Registry>,
    refresh: Duration,
) -> anyhow::Result<()> {
    let client = ClusterAccess::kubeconfig(kubeconfig).client().context(
        "loading Kubernetes credentials to watch MetricRule objects (--metric-rules); run in a \
         cluster or pass --lister-kubeconfig / --kubeconfig",
    )?;
    let lists = promhpa_kube::metric_rules::watch(client.clone());
    let controller = promhpa_apiserver::rule_objects::RuleObjects::new(
        registry,
        Arc::new(KubeStatusWriter { client }),
    );
    tokio::spawn(controller.run(lists, refresh));
    Ok(())
}
