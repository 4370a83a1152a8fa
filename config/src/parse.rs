//! Text → [`Parsed`] or every error found. (Filled by the Foundation issue.)

use crate::{ConfigError, Parsed};

/// Parse settings text in any of the three wrappers and either schema.
pub fn parse(_text: &str) -> Result<Parsed, Vec<ConfigError>> {
    todo!("settings parser")
}
