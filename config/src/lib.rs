//! # akv-sync-config
//!
//! The settings of akv-sync: the same JSON as the KeyVaultForLinux extension's public
//! settings (schemas 1.x/2.x and 3.x), found bare, inside an ARM extension resource, or inside
//! a VM-agent `config/<seq>.settings` handler file. [`parse`] turns text into the validated
//! [`Settings`] model or into every [`ConfigError`] found, each naming the JSON path, what was
//! found and what was expected.
//!
//! Pure: text in, model or errors out. No I/O, no logging (warnings are returned).

mod decode;
mod dupes;
mod error;
mod json_path;
pub mod layout;
mod model;
mod names;
mod parse;
mod relax;
mod url;

pub use decode::decode;
pub use error::{ConfigError, ErrorKind, Parsed, Warning};
pub use json_path::{ROOT_PATH, certificate_entry};
pub use model::*;
pub use parse::{DEFAULT_HOOK_TIMEOUT, Detected, detect, parse};
