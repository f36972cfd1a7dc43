//! kill -9 at random moments of numericalize: afterwards the output is the previous complete
//! shard set or the new complete one, never half of one. (The 50-trial version is
//! benches/kill.sh; this test runs fewer trials to keep the suite fast.)

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use integration_tests::*;
use shared::shards::ShardSet;

fn lcg(state: &mut u64) -> f64 {
    *state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
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
        c.current_dir(p).args([input, "--min-freq", "1", "--force", "-q", "-o", "out"]);
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
        std::thread::sleep(Duration::from_secs_f64(full.as_secs_f64() * 1.1 * lcg(&mut seed)));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let set = ShardSet::open(p.join("out"))
            .unwrap_or_else(|e| panic!("trial {trial}: output damaged after kill: {e:#}"));
        let t = set.manifest.tokens;
        assert!(t == old || t == new, "trial {trial}: {t} tokens is neither old ({old}) nor new ({new})");
        if t == old {
            saw_old += 1;
        } else {
            saw_new += 1;
            assert!(num("small.txt").status().unwrap().success());
        }
        // nothing visible besides inputs and the output; hidden temporaries are allowed
        let visible: Vec<String> = listing(p).into_iter().filter(|n| !n.starts_with('.')).collect();
        assert_eq!(visible, vec!["big.txt", "out", "small.txt"], "trial {trial}");
    }
    eprintln!("kill trials: {saw_old} left the old output, {saw_new} the new one (full run {full:?})");
    // the next successful run cleans up the temporaries of killed runs
    assert!(num("small.txt").status().unwrap().success());
    assert!(listing(p).iter().all(|n| !n.starts_with('.')), "{:?}", listing(p));
}
