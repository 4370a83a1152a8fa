//! Which emulated service a request reached: a leaf, so that the state, its faults and its
//! counters can all name it.

use serde::{Deserialize, Serialize};

/// Which emulated service a request reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Server {
    Vault,
    Imds,
    Arc,
    Admin,
}
