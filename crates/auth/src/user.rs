//! The identity a request was authenticated as.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The user name of unauthenticated requests.
pub const ANONYMOUS_USER: &str = "system:anonymous";
/// The group of unauthenticated requests.
pub const UNAUTHENTICATED_GROUP: &str = "system:unauthenticated";
/// The group every authenticated user is placed in.
pub const AUTHENTICATED_GROUP: &str = "system:authenticated";
/// Members of this group are allowed everything without asking the API server.
pub const MASTERS_GROUP: &str = "system:masters";

/// A user as Kubernetes' `user.Info`: name, uid, groups and extra attributes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserInfo {
    #[serde(rename = "username", default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// A user with a name and groups, no uid or extra.
    pub fn new(name: impl Into<String>, groups: Vec<String>) -> Self {
        UserInfo {
            name: name.into(),
            groups,
            ..UserInfo::default()
        }
    }

    /// The user of requests that presented no credentials.
    pub fn anonymous() -> Self {
        UserInfo::new(ANONYMOUS_USER, vec![UNAUTHENTICATED_GROUP.to_string()])
    }

    /// Adds `system:authenticated` unless the user is anonymous or already is in
    /// `system:authenticated` or `system:unauthenticated`, as Kubernetes does for every
    /// authenticated request.
    pub(crate) fn with_authenticated_group(mut self) -> Self {
        if self.name != ANONYMOUS_USER
            && !self
                .groups
                .iter()
                .any(|g| g == AUTHENTICATED_GROUP || g == UNAUTHENTICATED_GROUP)
        {
            self.groups.push(AUTHENTICATED_GROUP.to_string());
        }
        self
    }
}
