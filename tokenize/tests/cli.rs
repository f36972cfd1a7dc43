//! CLI contract of tokenize: help, exit codes, broken pipes, empty input (an error).

use std::io::Write;
use std::process::{Command, Stdio};

fn tokenize() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tokenize"))
}

#[test]
fn help_lists_exit_codes_and_an_example() {
    let o = tokenize().arg("--help").output().unwrap();
    assert!(o.status.success());
    let s = String::from_utf8(o.stdout).unwrap();
    assert!(
        s.contains("Exit codes:") && s.contains("| numericalize -o shards/"),
        "{s}"
    );
}

#[test]
fn empty_input_is_an_error() {
    for fmt in ["csv", "jsonl", "lines"] {
        let o = tokenize()
            .args(["--format", fmt, "-q"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{fmt}");
        assert_eq!(
            String::from_utf8_lossy(&o.stderr),
            "tokenize: <stdin>: no documents (the input is empty or only whitespace)\n",
            "{fmt}"
        );
        assert!(o.stdout.is_empty(), "{fmt}");
        // --allow-empty: a valid empty token stream, as a filter would give
        let o = tokenize()
            .args(["--format", fmt, "-q", "--allow-empty"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{fmt}");
        assert!(o.stdout.is_empty() && o.stderr.is_empty(), "{fmt}");
    }
}

#[test]
fn closed_stdout_is_a_quiet_success() {
    // `tokenize big.csv | head -1`: the reader goes away; no panic text, exit 0.
    let mut child = tokenize()
        .args(["--format", "lines", "-q"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let line = "Some words to tokenize, again and again.\n".repeat(1000);
        for _ in 0..200 {
            if stdin.write_all(line.as_bytes()).is_err() {
                break;
            }
        }
    });
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 16];
    std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
    drop(stdout);
    let o = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn fields_pass_through_in_order() {
    let mut child = tokenize()
        .args(["--format", "csv", "--keep", "id", "--label-col", "y", "-q"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"id,text,y\n7,Hello World,pos\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8(o.stdout).unwrap(), "{\"tokens\":[\"xxbos\",\"xxmaj\",\"hello\",\"xxmaj\",\"world\"],\"y\":\"pos\",\"id\":\"7\"}\n");
}

/// A summary that cannot be written (a full disk) fails the run before the output is
/// published: exit 2, one line naming the metrics file, and no output file.
#[test]
fn a_failing_metrics_file_leaves_no_output() {
    let d = tempfile::tempdir().unwrap();
    let input = d.path().join("in.csv");
    std::fs::write(&input, "text\nHello world\nSecond doc\n").unwrap();
    let mut cmd = tokenize();
    cmd.arg(&input);
    testkit::check_metrics_failure_publishes_nothing("tokenize", cmd, &input, &d.path().join("o"));
}
