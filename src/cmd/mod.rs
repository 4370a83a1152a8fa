//! One module per subcommand. Each defines its clap `Args` and a `run` returning the exit code.

pub mod common;
pub mod convert;
#[cfg(feature = "emulator")]
pub mod demo;
pub mod handler;
pub mod load;
pub mod once;
pub mod run;
pub mod status;
pub mod validate;
