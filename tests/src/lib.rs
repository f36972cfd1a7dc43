//! Helpers for the cross-tool tests in `tests/tests/`: locating the workspace's binaries and
//! the shared data folder, and running tools with assertions on their contract
//! (exit code, one-line stderr naming the file, no partial output).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The directory holding the workspace's binaries for the profile these tests were built with
/// (`target/<profile>/`; test executables live in its `deps/`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let deps = exe.parent().expect("deps dir");
    deps.parent().expect("profile dir").to_path_buf()
}

/// Path of a workspace binary; panics with a hint when it has not been built.
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} not built: run `cargo test --workspace` (or `make test`)",
        p.display()
    );
    p
}

/// `../shared/data` beside the workspace, if present.
pub fn shared_data() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
    p.is_dir()
        .then(|| p.canonicalize().expect("canonical path"))
}

/// `../shared` (data, peer scripts, fixtures), if present.
pub fn shared_dir() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared");
    p.is_dir()
        .then(|| p.canonicalize().expect("canonical path"))
}

/// Returns the shared data dir or prints why the test is skipped.
pub fn require_data(test: &str) -> Option<PathBuf> {
    let d = shared_data();
    if d.is_none() {
        eprintln!("SKIP {test}: ../shared/data is absent");
    }
    d
}

/// Runs `cmd` with `stdin` bytes and returns its output.
pub fn run_with_stdin(mut cmd: Command, stdin: &[u8]) -> Output {
    use std::io::Write;
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    {
        let mut si = child.stdin.take().expect("stdin");
        // The tool may exit before reading everything (that is what some tests check).
        let _ = si.write_all(stdin);
    }
    child.wait_with_output().expect("wait")
}

pub fn run(mut cmd: Command) -> Output {
    cmd.stdin(Stdio::null()).output().expect("spawn")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts the error contract: exit 2, exactly one stderr line starting with `tool: `,
/// containing every one of `needles`.
pub fn assert_error(o: &Output, tool: &str, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(
        o.status.code(),
        Some(2),
        "expected exit 2, got {:?}; stderr: {err}",
        o.status.code()
    );
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one stderr line, got: {err}");
    assert!(
        lines[0].starts_with(&format!("{tool}: ")),
        "stderr not prefixed by the tool name: {err}"
    );
    for n in needles {
        assert!(lines[0].contains(n), "stderr {:?} lacks {n:?}", lines[0]);
    }
}

/// Names in `dir` (sorted), to check that nothing partial was left behind.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}
