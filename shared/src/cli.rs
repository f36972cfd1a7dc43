//! Command-line conventions shared by every tool.
//!
//! * Exit codes: 0 success, 1 a negative answer (a gate that failed), 2 an error or a usage
//!   error, 130 interrupted. [`EXIT_CODES_HELP`] is appended to every `--help`.
//! * Errors are printed as one line, `tool: what went wrong`, with the file named.
//! * A broken pipe (`tool | head -1`) is a quiet exit 0, as in ripgrep.
//! * Flags with the same meaning have the same name everywhere: [`CommonArgs`] is flattened
//!   into every tool's `Args`.
//! * `tool --generate KIND` prints shell completions or a man page made from the tool's clap
//!   definition (as ripgrep's `rg --generate`): [`main`] handles it before parsing, so the
//!   tool's required arguments are not needed.

use std::io;

use crate::progress::ProgressMode;

pub const EXIT_OK: i32 = 0;
pub const EXIT_NEGATIVE: i32 = 1;
pub const EXIT_ERROR: i32 = 2;
pub const EXIT_INTERRUPTED: i32 = 130;

/// Text for the end of every tool's `--help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0    success
  1    a negative answer (e.g. a --fail-if gate was violated)
  2    error: bad input, bad usage, I/O failure (one line on stderr names the file)
  130  interrupted (Ctrl-C)

Shell completions and a man page: --generate bash|zsh|fish|elvish|powershell|man (alone).";

/// Flags every tool accepts.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// Worker threads (0 = one per core).
    #[arg(
        long,
        short = 'j',
        default_value_t = 0,
        value_name = "N",
        global = true
    )]
    pub threads: usize,
    /// Print nothing on stderr except errors.
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
    /// Progress reporting on stderr: a bar on a terminal (auto), always a bar, JSON lines, or none.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto, value_name = "MODE", global = true)]
    pub progress: ProgressMode,
}

impl CommonArgs {
    /// Configures rayon's global pool with `--threads`.
    pub fn init_threads(&self) -> anyhow::Result<usize> {
        let n = if self.threads == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        } else {
            self.threads
        };
        // A second call (in tests that run several tools in one process) is harmless.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global();
        Ok(n)
    }
}

/// True when any error in the chain is a broken pipe: the reader went away, which is
/// how `| head` ends a pipeline, not a failure.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<io::Error>()
            .map(|e| e.kind() == io::ErrorKind::BrokenPipe)
            .unwrap_or(false)
    })
}

/// Formats an error chain as a single line.
///
/// A cause whose text already ends its parent's message (an error that prints its source,
/// as `FormatError::Io` does) is not repeated.
pub fn one_line(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for e in err.chain() {
        let msg = e.to_string();
        if parts.last().is_some_and(|p| p.ends_with(&msg)) {
            continue;
        }
        parts.push(msg);
    }
    let s = parts.join(": ");
    s.split(['\n', '\r'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs a tool's `run` and turns the result into the process exit code.
///
/// `run` returns the exit code on success (normally [`EXIT_OK`], [`EXIT_NEGATIVE`] for a gate).
pub fn main_with(tool: &str, run: impl FnOnce() -> anyhow::Result<i32>) -> ! {
    let code = match run() {
        Ok(code) => code,
        Err(err) if is_broken_pipe(&err) => EXIT_OK,
        Err(err) => {
            if let Some(Interrupted) = err.downcast_ref::<Interrupted>() {
                eprintln!("{tool}: interrupted");
                EXIT_INTERRUPTED
            } else {
                eprintln!("{tool}: {}", one_line(&err));
                EXIT_ERROR
            }
        }
    };
    std::process::exit(code)
}

/// What `--generate` can print.
pub const GENERATE_KINDS: [&str; 6] = ["bash", "zsh", "fish", "elvish", "powershell", "man"];

/// A binary's `main`: `--generate KIND` (see [`generate`]), else parse the arguments with
/// clap (help and version as clap prints them; a usage error as one line, exit 2) and run the
/// tool through [`main_with`].
pub fn main<A: clap::Parser>(tool: &str, run: impl FnOnce(A) -> anyhow::Result<i32>) -> ! {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let kind = match argv.get(1).and_then(|a| a.to_str()) {
        Some("--generate") => Some(
            argv.get(2)
                .and_then(|k| k.to_str())
                .unwrap_or("")
                .to_string(),
        ),
        Some(a) if a.starts_with("--generate=") => Some(a["--generate=".len()..].to_string()),
        _ => None,
    };
    if let Some(kind) = kind {
        main_with(tool, || {
            if argv.len() > 2 + usize::from(!argv[1].to_string_lossy().contains('=')) {
                anyhow::bail!("--generate takes no other arguments");
            }
            let mut out = io::stdout().lock();
            generate(&mut A::command(), tool, &kind, &mut out)?;
            io::Write::flush(&mut out)?;
            Ok(EXIT_OK)
        })
    }
    // --help / --version print as clap prints them (exit 0); a usage error is one line naming
    // the problem, with the pointer to --help, and exit 2
    let args = match parse_from::<A, _, _>(argv) {
        Ok(Some(a)) => a,
        Ok(None) => std::process::exit(EXIT_OK),
        Err(e) => {
            eprintln!("{tool}: {e} (see {tool} --help)");
            std::process::exit(EXIT_ERROR)
        }
    };
    main_with(tool, || run(args))
}

/// Writes shell completions (`bash`, `zsh`, `fish`, `elvish`, `powershell`) or a roff man
/// page (`man`, with subcommands listed) for `cmd` to `out`.
pub fn generate(
    cmd: &mut clap::Command,
    tool: &str,
    kind: &str,
    out: &mut dyn io::Write,
) -> anyhow::Result<()> {
    use clap_complete::Shell;
    let shell = match kind {
        "bash" => Shell::Bash,
        "zsh" => Shell::Zsh,
        "fish" => Shell::Fish,
        "elvish" => Shell::Elvish,
        "powershell" => Shell::PowerShell,
        "man" => {
            clap_mangen::Man::new(cmd.clone()).render(out)?;
            return Ok(());
        }
        _ => anyhow::bail!("--generate {kind:?}: one of {}", GENERATE_KINDS.join(", ")),
    };
    clap_complete::generate(shell, cmd, tool, out);
    Ok(())
}

/// Returned by a tool that stopped because of Ctrl-C; maps to exit code 130.
#[derive(Debug, thiserror::Error)]
#[error("interrupted")]
pub struct Interrupted;

/// Parses `argv` as the binaries do, for tools run in-process (tests, other tools):
/// `--help`/`--version` print and give `Ok(None)` (exit 0); a usage error becomes a one-line
/// error (exit 2 through [`main_with`]).
pub fn parse_from<A, I, T>(argv: I) -> anyhow::Result<Option<A>>
where
    A: clap::Parser,
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    match A::try_parse_from(argv) {
        Ok(a) => Ok(Some(a)),
        Err(e) if !e.use_stderr() => {
            e.print()?;
            Ok(None)
        }
        Err(e) => {
            // clap's first paragraph, on one line ("the following required arguments were
            // not provided: <SHARDS>"); its tips and usage are left out
            let text = e.to_string();
            let first: Vec<&str> = text
                .lines()
                .map(str::trim)
                .take_while(|l| !l.is_empty())
                .collect();
            let msg = first.join(" ");
            let msg = msg.trim_start_matches("error: ");
            Err(anyhow::anyhow!(
                "{}",
                if msg.is_empty() {
                    "invalid arguments"
                } else {
                    msg
                }
            ))
        }
    }
}

/// `-` or no path means standard input/output.
pub fn is_stdio(path: &std::path::Path) -> bool {
    path.as_os_str() == "-"
}

/// How messages name an input: `<stdin>` for `-`, else the path.
pub fn input_name(path: &std::path::Path) -> String {
    if is_stdio(path) {
        "<stdin>".to_string()
    } else {
        path.display().to_string()
    }
}

/// [`input_name`] of each input joined with ", "; no inputs means standard input.
pub fn input_names(paths: &[std::path::PathBuf]) -> String {
    if paths.is_empty() {
        return "<stdin>".to_string();
    }
    paths
        .iter()
        .map(|p| input_name(p))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn broken_pipe_is_found_in_chain() {
        let e: anyhow::Error = io::Error::new(io::ErrorKind::BrokenPipe, "pipe").into();
        let e = e.context("writing stdout");
        assert!(is_broken_pipe(&e));
        let e2: anyhow::Error = io::Error::new(io::ErrorKind::NotFound, "x").into();
        assert!(!is_broken_pipe(&e2));
    }

    #[test]
    fn one_line_joins_chain() {
        let r: Result<(), io::Error> =
            Err(io::Error::new(io::ErrorKind::NotFound, "no such\nfile"));
        let e = r.context("reading a.csv").unwrap_err();
        assert_eq!(one_line(&e), "reading a.csv: no such file");
    }

    #[test]
    fn one_line_does_not_repeat_a_cause_the_message_already_shows() {
        let io = io::Error::new(
            io::ErrorKind::NotFound,
            "No such file or directory (os error 2)",
        );
        let e: anyhow::Error = crate::FormatError::io("x/manifest.json", io).into();
        assert_eq!(
            one_line(&e),
            "x/manifest.json: No such file or directory (os error 2)"
        );
        let e = e.context("opening x");
        assert_eq!(
            one_line(&e),
            "opening x: x/manifest.json: No such file or directory (os error 2)"
        );
    }
}
