//! One module per subcommand. Each defines its clap `Args` and a `run` returning the exit code.

pub mod convert;
pub mod emulator;
pub mod handler;
pub mod load;
pub mod status;
pub mod validate;
