//! One module per subcommand. Each defines its clap `Args` and a `run` returning the exit code.

pub mod convert;
pub mod emulator;
pub mod validate;
