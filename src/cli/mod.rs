//! One module per subcommand. Each defines its clap `Args` and a `run` returning the exit code.

pub mod convert;
#[cfg(feature = "emulator")]
pub mod demo;
pub mod generate;
pub mod handler;
pub mod handler_env;
pub mod once;
pub mod ports;
pub mod run;
pub mod service;
pub mod settings_file;
pub mod status;
pub mod validate;
