//! The backends rules read from: the default one (described by the command-line flags) and
//! those of the rule file's `backends` section, each a client of its own.
//!
//! A set is built with its rule set and swapped with it, so a request always queries the
//! backend its rule names in the rule file it was found with. On a reload, a backend whose
//! entry did not change keeps its client (and with it its connections and credentials
//! cache); a changed or new entry gets a new one; a removed one is dropped once no request
//! uses it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use promhpa_core::backend::{Backend, BackendError};
use promhpa_rules::{BackendSpec, Rule, DEFAULT_BACKEND};

/// Why the client of a `backends` entry cannot be made (a CA file that does not parse, a
/// header the HTTP stack refuses...).
pub type ConnectError = Box<dyn std::error::Error + Send + Sync>;

/// Makes the client of a `backends` entry.
pub type Connect =
    Arc<dyn Fn(&BackendSpec) -> Result<Arc<dyn Backend>, ConnectError> + Send + Sync>;

/// Why a rule file's backends cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum BackendsError {
    /// The client of an entry cannot be made.
    #[error("backend \"{name}\" ({url}): {cause}")]
    Connect {
        name: String,
        url: String,
        cause: ConnectError,
    },
    /// The entry names a backend, and this command (without a connector) reads only the
    /// default one.
    #[error("backend \"{name}\": this command reads only the default backend")]
    NotConnected { name: String },
}

/// A backend's client and a number no other client of this process has, so that the
/// same query sent to two backends is never shared or cached as one.
#[derive(Clone)]
pub struct BackendRef {
    pub id: u64,
    pub client: Arc<dyn Backend>,
}

impl BackendRef {
    pub fn new(client: Arc<dyn Backend>) -> BackendRef {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        BackendRef {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            client,
        }
    }
}

/// The default backend and the named ones.
#[derive(Clone)]
pub struct Backends {
    default: BackendRef,
    named: BTreeMap<String, (BackendSpec, BackendRef)>,
}

impl std::fmt::Debug for Backends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut m = f.debug_map();
        m.entry(&DEFAULT_BACKEND, &self.default.client.address());
        for (name, (_, b)) in &self.named {
            m.entry(name, &b.client.address());
        }
        m.finish()
    }
}

impl From<Arc<dyn Backend>> for Backends {
    fn from(default: Arc<dyn Backend>) -> Backends {
        Backends::single(default)
    }
}

impl<B: Backend + 'static> From<Arc<B>> for Backends {
    fn from(default: Arc<B>) -> Backends {
        Backends::single(default)
    }
}

/// Stands in before a set is given (an empty snapshot): every call fails.
struct Unset;

impl Backend for Unset {
    fn address(&self) -> String {
        "(none)".into()
    }
    fn query<'a>(
        &'a self,
        _: &'a str,
        _: i64,
    ) -> promhpa_core::backend::BoxFuture<'a, Result<promhpa_core::backend::QueryValue, BackendError>>
    {
        Box::pin(async { Err(unset()) })
    }
    fn query_range<'a>(
        &'a self,
        _: &'a str,
        _: i64,
        _: i64,
        _: i64,
    ) -> promhpa_core::backend::BoxFuture<'a, Result<promhpa_core::backend::QueryValue, BackendError>>
    {
        Box::pin(async { Err(unset()) })
    }
    fn series_names<'a>(
        &'a self,
        _: &'a str,
        _: i64,
    ) -> promhpa_core::backend::BoxFuture<
        'a,
        Result<Vec<promhpa_core::backend::SeriesInfo>, BackendError>,
    > {
        Box::pin(async { Err(unset()) })
    }
}

fn unset() -> BackendError {
    BackendError::Unavailable {
        address: "(none)".into(),
        message: "no backend is configured".into(),
    }
}

impl Default for Backends {
    fn default() -> Backends {
        Backends::single(Arc::new(Unset))
    }
}

impl Backends {
    /// Only the default backend.
    pub fn single(default: Arc<dyn Backend>) -> Backends {
        Backends {
            default: BackendRef::new(default),
            named: BTreeMap::new(),
        }
    }

    /// The default backend and a client for each of `specs`, reusing the clients of
    /// `previous` whose entry is unchanged. Without `connect`, `specs` must be empty.
    pub fn build(
        default: BackendRef,
        specs: &[BackendSpec],
        connect: Option<&Connect>,
        previous: Option<&Backends>,
    ) -> Result<Backends, BackendsError> {
        let mut named = BTreeMap::new();
        for spec in specs {
            let reused = previous
                .and_then(|p| p.named.get(&spec.name))
                .filter(|(old, _)| old.same_connection(spec))
                .map(|(_, b)| b.clone());
            let client = match (reused, connect) {
                (Some(b), _) => b,
                (None, Some(connect)) => {
                    BackendRef::new(connect(spec).map_err(|cause| BackendsError::Connect {
                        name: spec.name.clone(),
                        url: spec.url.clone(),
                        cause,
                    })?)
                }
                (None, None) => {
                    return Err(BackendsError::NotConnected {
                        name: spec.name.clone(),
                    })
                }
            };
            named.insert(spec.name.clone(), (spec.clone(), client));
        }
        Ok(Backends { default, named })
    }

    /// The default backend (the flags').
    pub fn default_backend(&self) -> &BackendRef {
        &self.default
    }

    /// The backend named `name` (`None` or `default` for the default one).
    pub fn get(&self, name: Option<&str>) -> Option<&BackendRef> {
        match name {
            None | Some(DEFAULT_BACKEND) => Some(&self.default),
            Some(n) => self.named.get(n).map(|(_, b)| b),
        }
    }

    /// The backend `rule` reads from. A rule only names backends of its own rule file,
    /// which the set was built from, so the error means the rule and this set do not
    /// belong together.
    pub fn for_rule(&self, rule: &Rule) -> Result<&BackendRef, BackendError> {
        self.get(rule.backend())
            .ok_or_else(|| BackendError::Unavailable {
                address: rule.backend().unwrap_or(DEFAULT_BACKEND).to_string(),
                message: format!(
                    "{} names a backend this server has no client for",
                    rule.path()
                ),
            })
    }

    /// Every backend as (name, address), the default first.
    pub fn list(&self) -> Vec<(String, String)> {
        std::iter::once((DEFAULT_BACKEND.to_string(), self.default.client.address()))
            .chain(
                self.named
                    .iter()
                    .map(|(n, (_, b))| (n.clone(), b.client.address())),
            )
            .collect()
    }

    /// A rule's backend for messages: `thanos (https://thanos:10902)`.
    pub fn describe(&self, rule: &Rule) -> String {
        let name = rule.backend().unwrap_or(DEFAULT_BACKEND);
        match self.get(rule.backend()) {
            Some(b) => format!("{name} ({})", b.client.address()),
            None => name.to_string(),
        }
    }
}
