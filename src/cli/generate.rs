//! `akv-sync generate`: the man pages and shell completions the .deb ships (`scripts/package`
//! runs it). Hidden from `--help`, the man pages and the completions: a packaging step, not
//! something an operator runs.
//!
//! Both are generated from the command line as clap knows it, so they cannot drift from
//! `--help`. The caller passes that command *without* `generate` (it is added to the parser
//! only at run time): clap_complete writes hidden subcommands into its scripts, so leaving
//! it out is the one sure way to keep it out of them.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

/// Write the man pages or a shell's completions (for packaging).
#[derive(Debug, clap::Parser)]
#[command(name = "generate", hide = true)]
pub struct Args {
    #[command(subcommand)]
    pub what: What,
}

#[derive(Debug, clap::Subcommand)]
pub enum What {
    /// One man page per command and subcommand: akv-sync.1, akv-sync-run.1, akv-sync-handler-install.1, …
    Man {
        /// Folder to write the pages to (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
    /// The completion script for a shell: akv-sync.bash, or _akv-sync for zsh.
    Completions {
        shell: Shell,
        /// Folder to write the script to (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
}

/// The shells whose completions the package ships.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
}

/// Write what `args` asks for, from `cmd` (the documented command line), printing each
/// file's path.
pub fn run(args: Args, cmd: clap::Command) -> anyhow::Result<ExitCode> {
    let written = match args.what {
        What::Man { out } => man_pages(cmd, &out)?,
        What::Completions { shell, out } => vec![completions(cmd, shell, &out)?],
    };
    for path in written {
        println!("{}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// One page per visible command, depth first; returns the files written.
pub fn man_pages(cmd: clap::Command, out: &Path) -> anyhow::Result<Vec<PathBuf>> {
    fn pages(cmd: clap::Command, out: &Path, written: &mut Vec<PathBuf>) -> anyhow::Result<()> {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned() {
            pages(sub, out, written)?;
        }
        let man = clap_mangen::Man::new(cmd);
        let path = out.join(man.get_filename());
        let mut roff = Vec::new();
        man.render(&mut roff)?;
        let roff = ascii_roff(&String::from_utf8(roff)?);
        std::fs::write(&path, roff).with_context(|| format!("cannot write {}", path.display()))?;
        written.push(path);
        Ok(())
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    // Built once at the top, so that each subcommand knows its full name (`akv-sync-run`).
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let mut written = Vec::new();
    pages(cmd, out, &mut written)?;
    Ok(written)
}

/// Roff source in ASCII: each other character (the help's `…`, `—`, `→`) as groff's `\[uXXXX]`
/// escape, so that the page renders without warnings whatever the reader's locale and
/// whether or not `man` runs it through `preconv`.
pub fn ascii_roff(roff: &str) -> String {
    let mut out = String::with_capacity(roff.len());
    for c in roff.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            out.push_str(&format!("\\[u{:04X}]", u32::from(c)));
        }
    }
    out
}

/// The completion script for `shell`; returns the file written (clap_complete's name for it:
/// `akv-sync.bash`, `_akv-sync`).
pub fn completions(cmd: clap::Command, shell: Shell, out: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let bin = cmd.get_name().to_owned();
    let (generator, file) = match shell {
        Shell::Bash => (clap_complete::Shell::Bash, format!("{bin}.bash")),
        Shell::Zsh => (clap_complete::Shell::Zsh, format!("_{bin}")),
    };
    let mut cmd = without_hidden(cmd);
    let mut script = Vec::new();
    clap_complete::generate(generator, &mut cmd, &bin, &mut script);
    let mut script = String::from_utf8(script)?;
    if shell == Shell::Bash {
        script = fix_hyphenated_bash(&script, &bin);
    }
    let path = out.join(file);
    std::fs::write(&path, script).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// `cmd` without its hidden subcommands (`handler supervise`), at every level: clap_complete
/// writes hidden subcommands into its scripts (clap_mangen leaves them out itself), and clap
/// cannot remove a subcommand. A level that has one is rebuilt from what a completion script
/// uses: name, texts, version, arguments and the visible subcommands. `cmd` must not be built
/// yet (a built one holds `--help`, which the rebuilt level adds again).
pub fn without_hidden(cmd: clap::Command) -> clap::Command {
    if !cmd.get_subcommands().any(clap::Command::is_hide_set) {
        return cmd.mut_subcommands(without_hidden);
    }
    let mut level = clap::Command::new(cmd.get_name().to_owned())
        .subcommand_required(cmd.is_subcommand_required_set())
        .args(cmd.get_arguments().cloned())
        .subcommands(
            cmd.get_subcommands()
                .filter(|s| !s.is_hide_set())
                .cloned()
                .map(without_hidden),
        );
    if let Some(about) = cmd.get_about() {
        level = level.about(about.clone());
    }
    if let Some(about) = cmd.get_long_about() {
        level = level.long_about(about.clone());
    }
    if let Some(version) = cmd.get_version() {
        level = level.version(version.to_owned());
    }
    level
}

/// clap_complete's bash script, for a binary whose name has a hyphen, names a subcommand's
/// state `akv__sync__subcmd__once` where it is set and `akv__subcmd__sync__subcmd__once` where
/// it is matched, so nothing after a subcommand completes (clap issue #6421, open in
/// clap_complete 4.6.12). Spelling the matches as the state is set fixes it; a script
/// without the mistake is left as it is.
pub fn fix_hyphenated_bash(script: &str, bin: &str) -> String {
    let matched = bin.replace('-', "__subcmd__");
    let set = bin.replace('-', "__");
    if matched == set {
        return script.to_owned();
    }
    script.replace(&matched, &set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_subcommands_are_left_out_at_every_level_and_the_rest_kept() {
        use clap::{Arg, Command};
        let cmd = Command::new("tool")
            .version("1.2")
            .subcommand(Command::new("secret").hide(true))
            .subcommand(
                Command::new("group")
                    .about("A group")
                    .arg(Arg::new("dir").long("dir"))
                    .subcommand(Command::new("open").arg(Arg::new("flag").long("flag")))
                    .subcommand(Command::new("internal").hide(true)),
            );
        let pruned = without_hidden(cmd);
        let names = |c: &Command| -> Vec<String> {
            c.get_subcommands()
                .map(|s| s.get_name().to_owned())
                .collect()
        };
        assert_eq!(names(&pruned), ["group"]);
        assert_eq!(pruned.get_version(), Some("1.2"));
        let group = pruned.find_subcommand("group").unwrap();
        assert_eq!(names(group), ["open"]);
        assert_eq!(
            group.get_about().map(ToString::to_string).as_deref(),
            Some("A group")
        );
        assert!(group.get_arguments().any(|a| a.get_id() == "dir"));
        let open = group.find_subcommand("open").unwrap();
        assert!(open.get_arguments().any(|a| a.get_id() == "flag"));
    }

    #[test]
    fn the_bash_states_of_a_hyphenated_binary_are_matched_as_they_are_set() {
        let broken = "cmd=\"akv__sync__subcmd__once\"\n        akv__subcmd__sync__subcmd__once)\n";
        assert_eq!(
            fix_hyphenated_bash(broken, "akv-sync"),
            "cmd=\"akv__sync__subcmd__once\"\n        akv__sync__subcmd__once)\n"
        );
        assert_eq!(fix_hyphenated_bash(broken, "akvsync"), broken);
    }

    #[test]
    fn roff_outside_ascii_becomes_groff_unicode_escapes() {
        assert_eq!(
            ascii_roff("a \\- b … c — d → e"),
            "a \\- b \\[u2026] c \\[u2014] d \\[u2192] e"
        );
    }
}
