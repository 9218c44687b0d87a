//! The trail's head: its newest entry, which a later check must find again.

use serde::{Deserialize, Serialize};

use super::{Expected, GENESIS};

/// The newest entry: what a later check must find again in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Head {
    /// 0 for an empty trail.
    pub id: i64,
    /// Lowercase hex SHA-256; [`GENESIS`] for an empty trail.
    pub hash: String,
}

impl Head {
    pub fn empty() -> Head {
        Head {
            id: 0,
            hash: GENESIS.into(),
        }
    }

    pub fn expected(&self) -> Expected {
        Expected {
            id: Some(self.id),
            hash: self.hash.clone(),
        }
    }
}
