//! The `[gateway]` section as written: how `/v1/authz` maps a gateway's
//! request to a feature.

use serde::Deserialize;

/// What `/v1/authz` answers when no route matches, or no user is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// 200: the gateway forwards the request.
    Allow,
    /// 403: the gateway refuses it.
    Deny,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewaySection {
    /// The header the gateway sets with the authenticated user's id.
    pub user_header: String,
    /// A request no route matches.
    pub unmatched: Verdict,
    /// A request of a governed route without the user header (anonymous).
    pub missing_user: Verdict,
    /// First match wins.
    pub routes: Vec<RouteDef>,
}

impl Default for GatewaySection {
    fn default() -> Self {
        GatewaySection {
            user_header: "X-User-Id".into(),
            unmatched: Verdict::Allow,
            missing_user: Verdict::Allow,
            routes: Vec::new(),
        }
    }
}

/// One `[[gateway.routes]]` entry, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteDef {
    /// Any method when absent.
    #[serde(default)]
    pub method: Option<String>,
    /// A prefix of the original request's path.
    pub path: String,
    pub feature: String,
}
