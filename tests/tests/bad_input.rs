//! Bad input of every kind: a one-line error naming the file and the problem, exit 2, and no
//! partial output. One table, one row per case.

use std::path::Path;
use std::process::Command;

use integration_tests::*;

struct Case {
    name: &'static str,
    /// files to create in the temp dir before running
    files: &'static [(&'static str, &'static [u8])],
    tool: &'static str,
    args: &'static [&'static str],
    stdin: &'static [u8],
    /// substrings the one error line must contain
    expect: &'static [&'static str],
    /// `prepare` runs before the tool (e.g. to build and then damage a shard set)
    prepare: Option<fn(&Path)>,
}

fn make_shards(dir: &Path, name: &str) {
    let mut c = Command::new(bin("numericalize"));
    c.current_dir(dir)
        .args(["--min-freq", "1", "-q", "-o", name]);
    let o = run_with_stdin(c, b"xxbos a b c\nxxbos a b\n");
    assert!(o.status.success(), "{}", stderr(&o));
}

fn patch(path: &Path, f: impl FnOnce(&mut Vec<u8>)) {
    let mut b = std::fs::read(path).unwrap();
    f(&mut b);
    std::fs::write(path, b).unwrap();
}

const CSV_HEAD: &[u8] = b"label,text\n";

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "missing column",
            files: &[("in.csv", b"label,body\npos,hi\n")],
            tool: "tokenize",
            args: &["in.csv", "-o", "out.jsonl"],
            stdin: b"",
            expect: &["in.csv", "no column \"text\"", "columns: label, body"],
            prepare: None,
        },
        Case {
            name: "invalid UTF-8 in CSV",
            files: &[("in.csv", b"label,text\npos,ok\nneg,\"bad \xff byte\"\n")],
            tool: "tokenize",
            args: &["in.csv", "-o", "out.jsonl"],
            stdin: b"",
            expect: &["in.csv", "line 3", "invalid UTF-8 at byte 4", "--lossy"],
            prepare: None,
        },
        Case {
            name: "ragged CSV row",
            files: &[("in.csv", b"label,text\npos,a\nneg\n")],
            tool: "tokenize",
            args: &["in.csv", "-o", "out.jsonl"],
            stdin: b"",
            expect: &["in.csv", "line 3", "ragged row"],
            prepare: None,
        },
        Case {
            name: "NUL byte",
            files: &[("in.txt", b"fine line\nbad \0 line\n")],
            tool: "tokenize",
            args: &["in.txt", "-o", "out.jsonl"],
            stdin: b"",
            expect: &["in.txt", "line 2", "NUL byte"],
            prepare: None,
        },
        Case {
            name: "UTF-16 with BOM",
            files: &[("in.csv", b"\xff\xfel\0a\0b\0")],
            tool: "tokenize",
            args: &["in.csv", "-o", "out.jsonl"],
            stdin: b"",
            expect: &["in.csv", "UTF-16", "iconv"],
            prepare: None,
        },
        Case {
            name: "duplicated column name",
            files: &[("in.csv", b"text,text\na,b\n")],
            tool: "tokenize",
            args: &["in.csv", "-o", "out.jsonl"],
            stdin: b"",
            expect: &["in.csv", "twice"],
            prepare: None,
        },
        Case {
            name: "invalid JSON line",
            files: &[("in.jsonl", b"{\"text\":\"a\"}\n{\"text\": oops}\n")],
            tool: "tokenize",
            args: &["in.jsonl", "-o", "out.jsonl"],
            stdin: b"",
            expect: &["in.jsonl", "line 2", "invalid JSON"],
            prepare: None,
        },
        Case {
            name: "missing input file",
            files: &[],
            tool: "tokenize",
            args: &["nope.csv", "-o", "out.jsonl"],
            stdin: b"",
            expect: &["nope.csv", "cannot open"],
            prepare: None,
        },
        Case {
            name: "tokenize output exists",
            files: &[("in.csv", CSV_HEAD), ("out.jsonl", b"old")],
            tool: "tokenize",
            args: &["in.csv", "-o", "out.jsonl"],
            stdin: b"",
            expect: &["out.jsonl", "already exists", "--force"],
            prepare: None,
        },
        Case {
            name: "token stream: bad JSON",
            files: &[("t.jsonl", b"{\"tokens\":[\"a\"]}\n{\"tokens\":[\"a\",]}\n")],
            tool: "numericalize",
            args: &["t.jsonl", "-o", "out"],
            stdin: b"",
            expect: &["t.jsonl", "line 2", "invalid token-stream JSON"],
            prepare: None,
        },
        Case {
            name: "token stream: no tokens field",
            files: &[("t.jsonl", b"{\"text\":\"a\"}\n")],
            tool: "numericalize",
            args: &["t.jsonl", "-o", "out"],
            stdin: b"",
            expect: &["t.jsonl", "line 1", "missing field `tokens`"],
            prepare: None,
        },
        Case {
            name: "token stream: invalid UTF-8",
            files: &[("t.txt", b"a b\nc \xc3\x28 d\n")],
            tool: "numericalize",
            args: &["t.txt", "-o", "out"],
            stdin: b"",
            expect: &["t.txt", "line 2", "invalid UTF-8 at byte 2"],
            prepare: None,
        },
        Case {
            name: "split column absent",
            files: &[("t.jsonl", b"{\"tokens\":[\"a\"],\"label\":\"x\"}\n")],
            tool: "numericalize",
            args: &["t.jsonl", "-o", "out", "--split-col", "is_valid"],
            stdin: b"",
            expect: &[
                "t.jsonl",
                "line 1",
                "split column \"is_valid\"",
                "fields: label",
            ],
            prepare: None,
        },
        Case {
            name: "valid pct out of range",
            files: &[],
            tool: "numericalize",
            args: &["-o", "out", "--valid-pct", "1.5"],
            stdin: b"",
            expect: &["--valid-pct 1.5"],
            prepare: None,
        },
        Case {
            name: "numericalize output exists",
            files: &[("t.txt", b"a\n")],
            tool: "numericalize",
            args: &["t.txt", "-o", "old"],
            stdin: b"",
            expect: &["old", "already exists"],
            prepare: Some(|d| make_shards(d, "old")),
        },
        Case {
            name: "output parent missing",
            files: &[("t.txt", b"a\n")],
            tool: "numericalize",
            args: &["t.txt", "-o", "no/such/dir/out"],
            stdin: b"",
            expect: &["no/such/dir", "does not exist"],
            prepare: None,
        },
        Case {
            name: "vocab file corrupt",
            files: &[("t.txt", b"a\n"), ("vocab.json", b"{\"format\":")],
            tool: "numericalize",
            args: &["t.txt", "--vocab", "vocab.json", "-o", "out"],
            stdin: b"",
            expect: &["vocab.json", "invalid JSON"],
            prepare: None,
        },
        Case {
            name: "shards: truncated tokens",
            files: &[],
            tool: "numericalize",
            args: &["verify", "s"],
            stdin: b"",
            expect: &["train.tokens", "truncated"],
            prepare: Some(|d| {
                make_shards(d, "s");
                patch(&d.join("s/train.tokens"), |b| {
                    b.pop();
                })
            }),
        },
        Case {
            name: "shards: truncated offsets",
            files: &[],
            tool: "numericalize",
            args: &["verify", "s"],
            stdin: b"",
            expect: &["train.offsets", "truncated"],
            prepare: Some(|d| {
                make_shards(d, "s");
                patch(&d.join("s/train.offsets"), |b| b.truncate(b.len() - 8))
            }),
        },
        Case {
            name: "shards: truncated header",
            files: &[],
            tool: "numericalize",
            args: &["verify", "s"],
            stdin: b"",
            expect: &["train.fields"],
            prepare: Some(|d| {
                make_shards(d, "s");
                patch(&d.join("s/train.fields"), |b| b.truncate(20))
            }),
        },
        Case {
            name: "shards: flipped header byte",
            files: &[],
            tool: "numericalize",
            args: &["verify", "s"],
            stdin: b"",
            expect: &["train.tokens", "header checksum"],
            prepare: Some(|d| {
                make_shards(d, "s");
                patch(&d.join("s/train.tokens"), |b| b[30] ^= 0x40)
            }),
        },
        Case {
            name: "shards: corrupt payload",
            files: &[],
            tool: "numericalize",
            args: &["verify", "s"],
            stdin: b"",
            expect: &["train.tokens", "checksum mismatch"],
            prepare: Some(|d| {
                make_shards(d, "s");
                patch(&d.join("s/train.tokens"), |b| b[64] ^= 1)
            }),
        },
        Case {
            name: "shards: future version",
            files: &[],
            tool: "numericalize",
            args: &["verify", "s"],
            stdin: b"",
            expect: &["manifest.json", "version 2 is not supported"],
            prepare: Some(|d| {
                make_shards(d, "s");
                patch(&d.join("s/manifest.json"), |b| {
                    *b = String::from_utf8(b.clone())
                        .unwrap()
                        .replace("\"version\": 1", "\"version\": 2")
                        .into_bytes()
                })
            }),
        },
        Case {
            name: "shards: manifest disagrees with files",
            files: &[],
            tool: "numericalize",
            args: &["verify", "s"],
            stdin: b"",
            expect: &["manifest.json", "do not add up"],
            prepare: Some(|d| {
                make_shards(d, "s");
                patch(&d.join("s/manifest.json"), |b| {
                    *b = String::from_utf8(b.clone())
                        .unwrap()
                        .replacen("\"docs\": 2", "\"docs\": 3", 1)
                        .into_bytes()
                })
            }),
        },
        Case {
            name: "shards: vocab replaced",
            files: &[],
            tool: "numericalize",
            args: &["verify", "s"],
            stdin: b"",
            expect: &["vocab.json", "does not match"],
            prepare: Some(|d| {
                make_shards(d, "s");
                make_shards(d, "t");
                let mut c = Command::new(bin("numericalize"));
                c.current_dir(d).args(["--min-freq", "1", "-q", "-o", "u"]);
                run_with_stdin(c, b"xxbos z\n");
                std::fs::copy(d.join("u/vocab.json"), d.join("s/vocab.json")).unwrap();
            }),
        },
        Case {
            name: "cat: mismatched vocabs",
            files: &[],
            tool: "numericalize",
            args: &["cat", "s", "u", "-o", "out"],
            stdin: b"",
            expect: &["u", "vocab hash", "numericalize --vocab"],
            prepare: Some(|d| {
                make_shards(d, "s");
                let mut c = Command::new(bin("numericalize"));
                c.current_dir(d).args(["--min-freq", "1", "-q", "-o", "u"]);
                run_with_stdin(c, b"xxbos z\n");
            }),
        },
        Case {
            name: "unpack: not an archive",
            files: &[("x.tar.zst", b"definitely not zstd")],
            tool: "numericalize",
            args: &["unpack", "x.tar.zst", "-o", "out"],
            stdin: b"",
            expect: &["x.tar.zst"],
            prepare: None,
        },
        Case {
            name: "merge-counts: not a counts file",
            files: &[("c.json", b"{\"a\":1}")],
            tool: "numericalize",
            args: &["merge-counts", "c.json", "-o", "vocab.json"],
            stdin: b"",
            expect: &["c.json", "not a counts file"],
            prepare: None,
        },
    ]
}

#[test]
fn every_bad_input_gets_one_line_exit_2_and_no_output() {
    let cases = cases();
    assert!(cases.len() >= 25);
    for case in cases {
        let d = tempfile::tempdir().unwrap();
        for (name, bytes) in case.files {
            std::fs::write(d.path().join(name), bytes).unwrap();
        }
        if let Some(p) = case.prepare {
            p(d.path());
        }
        let before = listing(d.path());
        let mut c = Command::new(bin(case.tool));
        c.current_dir(d.path()).args(case.args);
        let o = run_with_stdin(c, case.stdin);
        eprintln!("case {:?}: {}", case.name, stderr(&o).trim());
        assert_error(&o, case.tool, case.expect);
        // nothing new appeared (no partial output, no temporaries left behind)
        assert_eq!(
            listing(d.path()),
            before,
            "case {:?} left files behind",
            case.name
        );
    }
}

#[test]
fn lossy_replaces_invalid_utf8() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("in.csv"), b"text\n\"bad \xff byte\"\n").unwrap();
    let mut c = Command::new(bin("tokenize"));
    c.current_dir(d.path()).args(["in.csv", "--lossy", "-q"]);
    let o = run(c);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8(o.stdout).unwrap().contains('\u{fffd}'));
}

#[test]
fn a_100_mb_line_is_handled() {
    // One 100 MB document of plain tokens, streamed through numericalize.
    let d = tempfile::tempdir().unwrap();
    let mut line = "xxbos ".to_string();
    let words = ["alpha ", "beta ", "gamma ", "delta "];
    let mut i = 0;
    while line.len() < 100 << 20 {
        line.push_str(words[i % 4]);
        i += 1;
    }
    line.push('\n');
    line.push_str("xxbos alpha\n");
    let mut c = Command::new(bin("numericalize"));
    c.current_dir(d.path()).args(["-q", "-o", "s"]);
    let o = run_with_stdin(c, line.as_bytes());
    assert!(o.status.success(), "{}", stderr(&o));
    let set = shared::shards::ShardSet::open(d.path().join("s")).unwrap();
    assert_eq!(set.manifest.docs, 2);
    assert_eq!(set.manifest.tokens as usize, i + 1 + 2);
}

#[test]
fn force_replaces_existing_output() {
    let d = tempfile::tempdir().unwrap();
    make_shards(d.path(), "s");
    let mut c = Command::new(bin("numericalize"));
    c.current_dir(d.path())
        .args(["--min-freq", "1", "-q", "--force", "-o", "s"]);
    let o = run_with_stdin(c, b"xxbos new doc\n");
    assert!(o.status.success(), "{}", stderr(&o));
    let set = shared::shards::ShardSet::open(d.path().join("s")).unwrap();
    assert_eq!(set.manifest.docs, 1);
    assert_eq!(listing(d.path()), vec!["s"]);
}
