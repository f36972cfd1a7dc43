//! CLI contract of numericalize: help, exit codes, stdout summary.

use std::process::Command;

fn numericalize() -> Command {
    Command::new(env!("CARGO_BIN_EXE_numericalize"))
}

#[test]
fn help_lists_exit_codes_and_an_example() {
    let o = numericalize().arg("--help").output().unwrap();
    assert!(o.status.success());
    let s = String::from_utf8(o.stdout).unwrap();
    assert!(
        s.contains("Exit codes:") && s.contains("130") && s.contains("numericalize -o shards/"),
        "{s}"
    );
}

#[test]
fn usage_errors_exit_2() {
    let o = numericalize().arg("--no-such-flag").output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let o = numericalize()
        .args(["--valid-pct", "0.1", "--split-col", "x", "-o", "/tmp/x"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn empty_input_is_an_error_and_writes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("s");
    let o = numericalize()
        .arg("-o")
        .arg(&out)
        .arg("-q")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "numericalize: <stdin>: no tokens (0 documents; the input is empty or only whitespace)\n"
    );
    assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
    // --allow-empty: a valid empty shard set (one empty train split), with or without a
    // split column
    for extra in [&[][..], &["--split-col", "is_valid"][..]] {
        let o = numericalize()
            .arg("-o")
            .arg(&out)
            .args(["-q", "--force", "--allow-empty"])
            .args(extra)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let set = shared::shards::ShardSet::open(&out).unwrap();
        assert_eq!(set.manifest.docs, 0);
        assert_eq!(set.split_names().collect::<Vec<_>>(), vec!["train"]);
        assert_eq!(set.split("train").unwrap().docs(), 0);
    }
}

/// Found by the numericalize_apply fuzz target: an empty input with --split-col made the
/// vocab-building path panic (the split column was never seen); it is an empty set, as without
/// --split-col, and applying a vocab gives the same.
#[test]
fn empty_input_with_a_split_column_is_an_error_not_a_panic() {
    // found by the numericalize_apply fuzz target: this used to panic (exit 101)
    let d = tempfile::tempdir().unwrap();
    let vocab_src = d.path().join("v");
    let toks = d.path().join("t.jsonl");
    std::fs::write(&toks, "{\"tokens\":[\"a\"],\"is_valid\":\"False\"}\n").unwrap();
    let o = numericalize()
        .arg(&toks)
        .arg("-o")
        .arg(&vocab_src)
        .arg("-q")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = d.path().join("out");
    for vocab in [None, Some(&vocab_src)] {
        let mut c = numericalize();
        c.arg("-o")
            .arg(&out)
            .args(["-q", "--split-col", "is_valid"]);
        if let Some(v) = vocab {
            c.arg("--vocab").arg(v);
        }
        let o = c.stdin(std::process::Stdio::null()).output().unwrap();
        assert_eq!(
            o.status.code(),
            Some(2),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&o.stderr),
            "numericalize: <stdin>: no tokens (0 documents; the input is empty or only whitespace)\n"
        );
        assert!(!out.exists());
    }
}

/// A summary that cannot be written (a full disk) fails the run before the shard set is
/// published: exit 2, one line naming the metrics file, and no shard directory.
#[test]
fn a_failing_metrics_file_leaves_no_shards() {
    let d = tempfile::tempdir().unwrap();
    let input = d.path().join("t.txt");
    std::fs::write(&input, "a b c a\nb c a b\n").unwrap();
    for extra in [
        &["--min-freq", "1"][..],
        &["--valid-pct", "0.5", "--min-freq", "1"],
    ] {
        let mut cmd = numericalize();
        cmd.arg(&input).args(extra);
        let out = d.path().join("shards");
        testkit::check_metrics_failure_publishes_nothing("numericalize", cmd, &input, &out);
    }
}
