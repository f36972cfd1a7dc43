//! Conventions every tool shares: `--help` has runnable examples and the exit codes;
//! `--generate` prints shell completions and a man page made from the clap definition.

use std::process::Command;

use integration_tests::bin;

const TOOLS: [&str; 7] = [
    "tokenize",
    "numericalize",
    "lm-train",
    "clf-train",
    "lr-find",
    "bias-audit",
    "plot",
];

fn run(tool: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let o = Command::new(bin(tool)).args(args).output().unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn help_has_examples_and_exit_codes() {
    for t in TOOLS {
        let (code, out, _) = run(t, &["--help"]);
        assert_eq!(code, Some(0), "{t}");
        assert!(
            out.contains("Examples:") || out.contains("Example:"),
            "{t} --help has no examples"
        );
        assert!(out.contains(&format!("  {t} ")), "{t}: an example runs {t}");
        assert!(
            out.contains("Exit codes:") && out.contains("  2    error"),
            "{t} --help lists the exit codes"
        );
        assert!(out.contains("--generate"), "{t} --help mentions --generate");
    }
}

#[test]
fn generate_completions_and_man_pages() {
    for t in TOOLS {
        let (code, man, err) = run(t, &["--generate", "man"]);
        assert_eq!(code, Some(0), "{t}: {err}");
        assert!(man.contains(&format!(".TH {t} 1")), "{t} man page header");
        assert!(
            man.contains(".SH OPTIONS") || man.contains(".SH NAME"),
            "{t}"
        );
        let (code, bash, _) = run(t, &["--generate", "bash"]);
        assert_eq!(code, Some(0));
        assert!(
            bash.contains(&format!("complete -F _{}", t.replace('-', "__")))
                || bash.contains("complete -F"),
            "{t}: {}",
            &bash[..bash.len().min(200)]
        );
        let (_, zsh, _) = run(t, &["--generate=zsh"]);
        assert!(zsh.starts_with(&format!("#compdef {t}")), "{t}");
        let (_, fish, _) = run(t, &["--generate", "fish"]);
        assert!(fish.contains(&format!("complete -c {t}")), "{t}");
        for k in ["elvish", "powershell"] {
            let (code, s, _) = run(t, &["--generate", k]);
            assert!(code == Some(0) && !s.is_empty(), "{t} {k}");
        }
        // a kind that does not exist, or extra arguments: one line, exit 2
        let (code, out, err) = run(t, &["--generate", "tcsh"]);
        assert_eq!(code, Some(2), "{t}");
        assert!(out.is_empty());
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains("bash, zsh, fish, elvish, powershell, man"),
            "{err}"
        );
        let (code, _, err) = run(t, &["--generate", "man", "extra"]);
        assert_eq!(code, Some(2), "{t}: {err}");
    }
    // subcommands are in the completions
    let (_, bash, _) = run("lm-train", &["--generate", "bash"]);
    assert!(
        bash.contains("generate"),
        "lm-train generate in completions"
    );
    let (_, bash, _) = run("clf-train", &["--generate", "bash"]);
    assert!(bash.contains("predict"));
}

#[test]
fn usage_errors_are_one_line_and_exit_2() {
    for t in TOOLS {
        let (code, out, err) = run(t, &["--no-such-flag"]);
        assert_eq!(code, Some(2), "{t}: {err}");
        assert!(out.is_empty(), "{t}");
        assert_eq!(err.lines().count(), 1, "{t}: one line: {err}");
        assert!(
            err.starts_with(&format!("{t}: unexpected argument '--no-such-flag' found"))
                && err.trim_end().ends_with(&format!("(see {t} --help)")),
            "{err}"
        );
    }
    // a missing required argument names it on the same line
    let (code, _, err) = run("lm-train", &[]);
    assert_eq!(code, Some(2));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("<SHARDS>"), "{err}");
}
