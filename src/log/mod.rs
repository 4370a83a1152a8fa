//! Logging: human lines (or JSON) on stderr for journald, a size-rotated file log in
//! `/var/log/azure/Microsoft.Azure.KeyVault.KeyVaultForLinux/` (as the original), and Fluentd
//! when `loggingSettings` asks. Never a secret value, key or token in a log line: the types
//! that hold them redact their `Debug`, and no code logs them.

pub mod fluentd;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use akv_sync_config::LoggingSettings;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// The original extension's log folder.
pub const DEFAULT_LOG_DIR: &str = "/var/log/azure/Microsoft.Azure.KeyVault.KeyVaultForLinux";
/// The file log's name in that folder.
pub const LOG_FILE: &str = "akv-sync.log";
/// Rotate the file log past this size; keep this many old files.
pub const LOG_MAX_BYTES: u64 = 10 * 1024 * 1024;
pub const LOG_KEEP: usize = 5;

/// `--log-format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human line per event.
    #[default]
    Text,
    /// One JSON object per event.
    Json,
}

/// Logging options shared by the long-running commands.
#[derive(Debug, Clone, clap::Args)]
pub struct LogArgs {
    /// Log line format (stderr and file).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "AKV_SYNC_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Log filter (tracing's EnvFilter syntax), e.g. `info`, `debug`, `akv_sync=debug`.
    #[arg(long, default_value = "info", env = "AKV_SYNC_LOG")]
    pub log: String,
}

/// A file that rotates by size: `akv-sync.log` → `.1` → … → `.KEEP`, oldest dropped.
/// (Hand-written: the crates for this pull in a date library for time-based names we don't use.)
pub struct RotatingFile {
    path: PathBuf,
    file: File,
    size: u64,
    max_bytes: u64,
    keep: usize,
}

fn open_log(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
}

impl RotatingFile {
    pub fn open(path: PathBuf, max_bytes: u64, keep: usize) -> std::io::Result<Self> {
        let file = open_log(&path)?;
        let size = file.metadata()?.len();
        Ok(RotatingFile {
            path,
            file,
            size,
            max_bytes,
            keep,
        })
    }

    fn numbered(&self, n: usize) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(format!(".{n}"));
        p.into()
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        for n in (1..self.keep).rev() {
            let _ = std::fs::rename(self.numbered(n), self.numbered(n + 1));
        }
        if self.keep > 0 {
            std::fs::rename(&self.path, self.numbered(1))?;
        }
        self.file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o640)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.size > 0 && self.size + buf.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        let n = self.file.write(buf)?;
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// What logging set up, for metrics.
#[derive(Default, Clone)]
pub struct LogHandle {
    /// Fluentd's queue, when shipping.
    pub fluentd: Option<Arc<fluentd::Queue>>,
    /// Why the file log could not be opened, if it could not.
    pub file_error: Option<String>,
}

type Boxed = Box<dyn Layer<Registry> + Send + Sync>;

fn fmt_layer<W>(format: LogFormat, writer: W, ansi: bool) -> Boxed
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    let base = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_target(false)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => base.boxed(),
        LogFormat::Json => base.json().flatten_event(true).boxed(),
    }
}

/// Where the human-facing log lines go: stderr by default. A command drawing a progress bar
/// passes a writer that prints above the bar, and may show only warnings and errors there
/// (the file log and Fluentd keep `--log`'s level).
pub struct Console {
    writer: BoxMakeWriter,
    at_least: Option<LevelFilter>,
}

impl Console {
    /// Plain stderr, at `--log`'s level.
    pub fn stderr() -> Self {
        Console {
            writer: BoxMakeWriter::new(std::io::stderr),
            at_least: None,
        }
    }

    /// `writer` (which writes to stderr its own way), showing only events at `at_least` or
    /// more severe when given.
    pub fn new<W>(writer: W, at_least: Option<LevelFilter>) -> Self
    where
        W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
    {
        Console {
            writer: BoxMakeWriter::new(writer),
            at_least,
        }
    }
}

/// Install the global subscriber: stderr, plus the file log in `file_dir` (if given and
/// writable), plus Fluentd (if `fluentd` is given). Later calls do nothing.
pub fn init(
    args: &LogArgs,
    file_dir: Option<&Path>,
    fluentd_settings: Option<&LoggingSettings>,
) -> LogHandle {
    init_with(args, Console::stderr(), file_dir, fluentd_settings)
}

/// [`init`] with the console lines going to `console`.
pub fn init_with(
    args: &LogArgs,
    console: Console,
    file_dir: Option<&Path>,
    fluentd_settings: Option<&LoggingSettings>,
) -> LogHandle {
    let mut handle = LogHandle::default();
    let console_layer = fmt_layer(args.log_format, console.writer, false);
    let console_layer = match console.at_least {
        Some(level) => console_layer.with_filter(level).boxed(),
        None => console_layer,
    };
    let mut layers: Vec<Boxed> = vec![console_layer];
    if let Some(dir) = file_dir {
        let opened = std::fs::create_dir_all(dir)
            .and_then(|_| RotatingFile::open(dir.join(LOG_FILE), LOG_MAX_BYTES, LOG_KEEP));
        match opened {
            Ok(file) => layers.push(fmt_layer(args.log_format, Mutex::new(file), false)),
            Err(e) => {
                handle.file_error = Some(format!(
                    "cannot open the log file in {}: {e}",
                    dir.display()
                ))
            }
        }
    }
    if let Some(l) = fluentd_settings {
        let (layer, queue) = fluentd::start(&l.host, l.port, &l.service_name);
        layers.push(layer.boxed());
        handle.fluentd = Some(queue);
    }
    let filter = EnvFilter::try_new(&args.log).unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::registry()
        .with(layers)
        .with(filter)
        .try_init();
    if let Some(e) = &handle.file_error {
        tracing::warn!("{e}; logging to stderr only");
    }
    handle
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_log_rotates_by_size_and_keeps_a_bounded_number() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let mut f = RotatingFile::open(path.clone(), 100, 2).unwrap();
        for _ in 0..10 {
            f.write_all(&[b'x'; 60]).unwrap();
        }
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["a.log", "a.log.1", "a.log.2"]);
        assert!(std::fs::metadata(&path).unwrap().len() <= 100);
    }
}
