//! kill -9 at random moments of numericalize: afterwards the output is the previous complete
//! shard set or the new complete one, never half of one; and kill -9 of lm-train and clf-train
//! after a checkpoint, then --resume: bit-identical to an uninterrupted run. (The 50-trial
//! version is benches/crash.sh; this test runs fewer trials to keep the suite fast.)

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use integration_tests::*;
use serde_json::Value;
use shared::shards::ShardSet;
use testkit::{read_jsonl, words, CPU, TINY_ARCH};

fn lcg(state: &mut u64) -> f64 {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (*state >> 11) as f64 / (1u64 << 53) as f64
}

#[test]
fn killed_numericalize_leaves_old_or_new_output() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    // ~2.4M tokens: long enough that kills land in every phase (read, spool, write, publish).
    let mut text = String::new();
    for i in 0..60_000u64 {
        text.push_str("xxbos");
        for j in 0..40u64 {
            text.push_str(&format!(" w{}", (i * 7 + j * 13) % 5000));
        }
        text.push('\n');
    }
    std::fs::write(p.join("big.txt"), &text).unwrap();
    std::fs::write(p.join("small.txt"), "xxbos old output\n").unwrap();
    let num = |input: &str| {
        let mut c = Command::new(bin("numericalize"));
        c.current_dir(p)
            .args([input, "--min-freq", "1", "--force", "-q", "-o", "out"]);
        c.stdout(Stdio::null()).stderr(Stdio::null());
        c
    };
    assert!(num("small.txt").status().unwrap().success());
    let old = ShardSet::open(p.join("out")).unwrap().manifest.tokens;
    let t0 = Instant::now();
    assert!(num("big.txt").status().unwrap().success());
    let full = t0.elapsed();
    let new = ShardSet::open(p.join("out")).unwrap().manifest.tokens;
    assert!(num("small.txt").status().unwrap().success());

    let mut seed = 0x5eed;
    let (mut saw_old, mut saw_new) = (0, 0);
    for trial in 0..12 {
        let mut child = num("big.txt").spawn().unwrap();
        std::thread::sleep(Duration::from_secs_f64(
            full.as_secs_f64() * 1.1 * lcg(&mut seed),
        ));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let set = ShardSet::open(p.join("out"))
            .unwrap_or_else(|e| panic!("trial {trial}: output damaged after kill: {e:#}"));
        let t = set.manifest.tokens;
        assert!(
            t == old || t == new,
            "trial {trial}: {t} tokens is neither old ({old}) nor new ({new})"
        );
        if t == old {
            saw_old += 1;
        } else {
            saw_new += 1;
            assert!(num("small.txt").status().unwrap().success());
        }
        // nothing visible besides inputs and the output; hidden temporaries are allowed
        let visible: Vec<String> = listing(p)
            .into_iter()
            .filter(|n| !n.starts_with('.'))
            .collect();
        assert_eq!(
            visible,
            vec!["big.txt", "out", "small.txt"],
            "trial {trial}"
        );
    }
    eprintln!(
        "kill trials: {saw_old} left the old output, {saw_new} the new one (full run {full:?})"
    );
    // the next successful run cleans up the temporaries of killed runs
    assert!(num("small.txt").status().unwrap().success());
    assert!(
        listing(p).iter().all(|n| !n.starts_with('.')),
        "{:?}",
        listing(p)
    );
}

// ---------------------------------------------------------------------------------------------
// kill -9 a trainer after its first checkpoint, --resume: the end is bit-identical to a run
// that was never interrupted (CPU, same seed). benches/crash.sh does this at 50 random moments.

fn metric_lines(path: &Path, ty: &str) -> Vec<Value> {
    let mut v: Vec<Value> = read_jsonl(path)
        .into_iter()
        .filter(|r| r["type"] == ty)
        .collect();
    for r in &mut v {
        // timings differ between runs; everything else must not
        let o = r.as_object_mut().unwrap();
        o.retain(|k, _| !k.ends_with("_s") && !k.ends_with("_per_s"));
    }
    v
}

/// Starts `cmd`, waits until `ckpt` has a checkpoint (train_state.json), lets it run `extra`
/// longer and kills it with SIGKILL. Returns whether it was still running when killed.
fn kill_after_first_checkpoint(mut cmd: Command, ckpt: &Path, extra: Duration) -> bool {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !ckpt.join("train_state.json").exists() {
        if child.try_wait().unwrap().is_some() || t0.elapsed() > Duration::from_secs(120) {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(extra);
    let running = child.try_wait().unwrap().is_none();
    let _ = child.kill(); // SIGKILL
    let _ = child.wait();
    running
}

fn trainer_corpus(p: &Path) {
    // 1,500 docs of 30 tokens; label: does the doc have more w1 than w2
    let mut s = 0x1234u64;
    let mut text = String::new();
    for _ in 0..1500 {
        let toks: Vec<String> = (0..30)
            .map(|_| format!("w{}", (lcg(&mut s) * lcg(&mut s) * 300.0) as u32))
            .collect();
        let (a, b) = (
            toks.iter().filter(|t| *t == "w1").count(),
            toks.iter().filter(|t| *t == "w2").count(),
        );
        let tokens = [&["xxbos".to_string()][..], &toks[..]].concat();
        let label = if a > b { "yes" } else { "no" };
        text.push_str(&serde_json::json!({"tokens": tokens, "label": label}).to_string());
        text.push('\n');
    }
    std::fs::write(p.join("docs.jsonl"), text).unwrap();
    let mut c = Command::new(bin("numericalize"));
    c.current_dir(p).args(words(
        "docs.jsonl --valid-pct 0.2 --seed 1 --min-freq 1 -q -o shards --metrics /dev/null",
    ));
    assert!(run(c).status.success());
}

/// A trainer run that is killed and resumed, and the run it must end up equal to.
struct KillResume<'a> {
    tool: &'a str,
    /// Its flags (besides `shards -o OUT -q --metrics OUT.jsonl` on one CPU thread).
    args: Vec<&'a str>,
    /// The uninterrupted run's output (its metrics are `<reference>.jsonl`).
    reference: &'a str,
    /// The killed run's output, resumed in place.
    cut: &'a str,
    /// How long the killed run goes on after its first checkpoint.
    extra: Duration,
    /// The files of the output that must be byte-identical at the end.
    same: [&'a str; 3],
    /// The metrics record of an epoch.
    epoch: &'a str,
}

impl KillResume<'_> {
    /// `tool shards -o OUT -q --metrics OUT.jsonl` on one CPU thread with `args`, in `p`.
    fn command(&self, p: &Path, out: &str) -> Command {
        let mut c = Command::new(bin(self.tool));
        c.current_dir(p).args(["shards", "-o", out, "-q"]);
        c.args(["--metrics", &format!("{out}.jsonl")]);
        c.args(CPU).args(&self.args);
        c
    }

    /// Runs `reference`, then `cut` killed with SIGKILL after its first checkpoint, then
    /// `--resume`s it: the outputs and the last epoch's metrics are the same.
    fn check(&self, p: &Path) {
        let (tool, cut) = (self.tool, self.cut);
        let make = |out: &str| self.command(p, out);
        let o = run(make(self.reference));
        assert!(o.status.success(), "{tool}: {}", stderr(&o));
        let running = kill_after_first_checkpoint(make(cut), &p.join(cut), self.extra);
        let st: Value =
            serde_json::from_slice(&std::fs::read(p.join(cut).join("train_state.json")).unwrap())
                .unwrap();
        eprintln!(
            "{tool} killed (still running: {running}) with a checkpoint at step {}",
            st["step"]
        );
        let resumed = format!("{cut}_resumed.jsonl");
        let mut c = Command::new(bin(tool));
        c.current_dir(p)
            .args(["shards", "-o", cut, "--resume", "-q"]);
        c.args(CPU).args(["--metrics", &resumed]);
        let o = run(c);
        assert!(o.status.success(), "{}", stderr(&o));
        for f in self.same {
            assert!(
                std::fs::read(p.join(self.reference).join(f)).unwrap()
                    == std::fs::read(p.join(cut).join(f)).unwrap(),
                "{tool}: {f} differs after kill -9 and --resume"
            );
        }
        let (a, b) = (
            metric_lines(&p.join(format!("{}.jsonl", self.reference)), self.epoch),
            metric_lines(&p.join(resumed), self.epoch),
        );
        assert!(!a.is_empty());
        if b.is_empty() {
            // the kill came after the last epoch's checkpoint (the run was only finishing):
            // --resume had nothing left to train, and the weights above are the whole check
            assert_eq!(
                Some(&st["step"]),
                a.last().map(|m| &m["step"]),
                "{tool}: --resume trained nothing although the checkpoint was not the last"
            );
            eprintln!("{tool}: killed after its last epoch; --resume had nothing to do");
        } else {
            assert_eq!(
                a.last(),
                b.last(),
                "{tool}: the last epoch's metrics differ"
            );
        }
    }
}

#[test]
fn lm_and_clf_train_resume_after_kill_9_bit_identical() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    trainer_corpus(p);
    // lm-train: 240 steps, a checkpoint every 20
    KillResume {
        tool: "lm-train",
        args: [
            &TINY_ARCH[..],
            &words("--bs 8 --bptt 16 --seed 7 --lr 1e-2 --steps 240 --save-every 20"),
        ]
        .concat(),
        reference: "lm_ref",
        cut: "lm_cut",
        extra: Duration::from_millis(300),
        same: ["model.safetensors", "optimizer.safetensors", "vocab.json"],
        epoch: "lm_epoch",
    }
    .check(p);
    // clf-train: three unfreezing phases, a checkpoint every 10 steps
    KillResume {
        tool: "clf-train",
        args: words(
            "--encoder lm_ref --bs 16 --bptt 16 --max-len 32 --seed 7 \
             --unfreeze 1:2e-2,2:1e-2,all:5e-3 --save-every 10",
        ),
        reference: "clf_ref",
        cut: "clf_cut",
        extra: Duration::from_millis(500),
        same: ["model.safetensors", "optimizer.safetensors", "config.json"],
        epoch: "clf_epoch",
    }
    .check(p);
}

#[test]
fn a_spool_file_left_by_a_kill_is_removed_by_the_next_run() {
    // A kill between creating numericalize's spool file and unlinking it leaves it behind
    // (benches/crash.sh found such files); it is named like the output's temporaries, so the
    // next run removes it. 0x7ffffff0 is above Linux's pid_max: that process is gone.
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    let stale = format!(".out.tmp.{}.spool42", 0x7fff_fff0u32);
    std::fs::write(p.join(&stale), b"ids").unwrap();
    std::fs::write(p.join("t.txt"), "xxbos a b c\n").unwrap();
    let mut c = Command::new(bin("numericalize"));
    c.current_dir(p)
        .args(words("t.txt --min-freq 1 -q -o out --metrics /dev/null"));
    assert!(run(c).status.success());
    assert_eq!(listing(p), vec!["out", "t.txt"]);
}
