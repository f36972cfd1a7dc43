//! The example recipes (`examples/Makefile`): the lesson-4 pipeline and the Chaucer stages run
//! on a tiny configuration; a second run does nothing and touches no file; a changed input or
//! setting reruns exactly the stages downstream of it. Also: the awk script writes the same
//! tokens as `tokenize --lang enm` on the real Chaucer text.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use integration_tests::{bin, bin_dir, require_data};

fn have(tool: &str) -> bool {
    let ok = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
        || Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIP: {tool} is not installed");
    }
    ok
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .canonicalize()
        .unwrap()
}

/// Every file and directory under `dir` with its mtime.
fn mtimes(dir: &Path) -> BTreeMap<PathBuf, SystemTime> {
    let mut m = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let md = e.metadata().unwrap();
            m.insert(e.path(), md.modified().unwrap());
            if md.is_dir() {
                stack.push(e.path());
            }
        }
    }
    m
}

fn changed(
    a: &BTreeMap<PathBuf, SystemTime>,
    b: &BTreeMap<PathBuf, SystemTime>,
    root: &Path,
) -> Vec<String> {
    let mut v: Vec<String> = b
        .iter()
        .filter(|(p, t)| a.get(*p) != Some(t))
        .map(|(p, _)| p.strip_prefix(root).unwrap().display().to_string())
        .collect();
    v.sort();
    v
}

struct Recipe {
    vars: Vec<String>,
    out: PathBuf,
}

impl Recipe {
    fn make(&self, extra: &[&str]) -> Output {
        let o = Command::new("make")
            // Not the flags of a make this test may run under (`make test`).
            .env_remove("MAKEFLAGS")
            .env_remove("MFLAGS")
            .env_remove("MAKELEVEL")
            .arg("-C")
            .arg(examples())
            .arg("--no-print-directory")
            .args(&self.vars)
            .args(extra)
            .output()
            .unwrap();
        o
    }

    fn run(&self, extra: &[&str]) -> String {
        let o = self.make(extra);
        let s = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(
            o.status.success(),
            "make {extra:?} failed: {s}\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        s
    }

    /// `make -n`: the commands a run would execute.
    fn dry(&self, extra: &[&str]) -> String {
        let mut args = vec!["-n"];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    /// `make -q`: exit 0 when everything is up to date.
    fn up_to_date(&self, extra: &[&str]) -> bool {
        let mut args = vec!["-q"];
        args.extend_from_slice(extra);
        match self.make(&args).status.code() {
            Some(0) => true,
            Some(1) => false,
            c => panic!("make -q {extra:?}: exit {c:?}"),
        }
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.out.join(rel)
    }
}

fn set_mtime_future(p: &Path) {
    let f = std::fs::File::options().append(true).open(p).unwrap();
    f.set_modified(SystemTime::now() + Duration::from_secs(5))
        .unwrap();
}

/// The stages a dry run would execute, as "tool [subcommand] output" (outputs relative to `out`).
fn stages(dry: &str, out: &Path) -> Vec<String> {
    const TOOLS: [&str; 6] = [
        "tokenize",
        "numericalize",
        "lm-train",
        "clf-train",
        "bias-audit",
        "awk",
    ];
    let o = out.display().to_string();
    let mut v: Vec<String> = dry
        .lines()
        .filter_map(|l| {
            let tool = l.split_whitespace().next()?.rsplit('/').next()?;
            if !TOOLS.contains(&tool) {
                return None;
            }
            let sub = l
                .split_whitespace()
                .nth(1)
                .filter(|s| ["predict", "generate"].contains(s));
            let target = [" -o ", " --model-out ", " --json-out ", " > "]
                .iter()
                .find_map(|flag| l.split(flag).nth(1))
                .map(|t| {
                    t.split_whitespace()
                        .next()
                        .unwrap_or("")
                        .replace(&o, "")
                        .trim_start_matches('/')
                        .to_string()
                })
                .unwrap_or_default();
            Some(format!(
                "{tool}{} {target}",
                sub.map(|s| format!(" {s}")).unwrap_or_default()
            ))
        })
        .collect();
    v.sort();
    v
}

#[test]
fn examples_makefile_reruns_only_what_changed() {
    let Some(data) = require_data("examples_makefile_reruns_only_what_changed") else {
        return;
    };
    if !have("make") || !have("awk") {
        return;
    }
    for t in [
        "tokenize",
        "numericalize",
        "lm-train",
        "clf-train",
        "bias-audit",
    ] {
        bin(t);
    }
    let dir = tempfile::tempdir().unwrap();
    // A tiny subset of the IMDb sample: 30 training and 12 validation reviews.
    let csv = std::fs::read_to_string(data.join("imdb_sample/texts.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    let tiny = [&lines[..31], &lines[lines.len() - 12..]]
        .concat()
        .join("\n")
        + "\n";
    let texts = dir.path().join("tiny.csv");
    std::fs::write(&texts, tiny).unwrap();
    let out = dir.path().join("out");
    let r = Recipe {
        vars: vec![
            format!("BIN={}", bin_dir().display()),
            format!("DATA={}", data.display()),
            format!("TEXTS={}", texts.display()),
            format!("OUT={}", out.display()),
            "MODEL=--emb-sz 8 --n-hid 16 --n-layers 1 --bs 4 --bptt 16".into(),
            "LM_ARGS=--epochs 1 --steps 6 --seed 42".into(),
            "CLF_COMMON=--bs 4 --bptt 16 --seed 42".into(),
            "CLF_a=--unfreeze 1:2e-2".into(),
            "CLF_b=--unfreeze 1:1e-2 --lin-ftrs 10".into(),
            "AUDIT=--y-true label --y-pred pred --favorable positive --protected mentions_women --privileged no".into(),
            "CHAUCER_LM_ARGS=--epochs 1 --steps 2 --seed 42".into(),
        ],
        out: out.clone(),
    };
    // 1. Everything from scratch (and the GNU parallel map-reduce when parallel is installed:
    //    its tokens must equal the one-pass tokens).
    let mut goals = vec!["all", "chaucer"];
    if have("parallel") {
        goals.push("parallel");
    }
    let first = r.run(&goals);
    assert!(
        first.contains("experiment a: valid accuracy")
            && first.contains("experiment b: valid accuracy"),
        "{first}"
    );
    for f in [
        "tokens.jsonl",
        "lm_shards/vocab.json",
        "clf_shards/vocab.json",
        "lm",
        "clf-a",
        "clf-b",
        "predictions-a.jsonl",
        "audit-b.json",
        "chaucer/tokens.enm.jsonl",
        "chaucer/tokens.awk.txt",
        "chaucer/sp.json",
        "chaucer/tokens.sub.jsonl",
        "chaucer/shards.enm",
        "chaucer/shards.awk",
        "chaucer/shards.sub",
        "chaucer/lm.enm",
        "chaucer/sample.txt",
    ] {
        assert!(r.p(f).exists(), "{f} missing; stdout: {first}");
    }
    if goals.contains(&"parallel") {
        assert!(
            first.contains("parallel: tokens identical to the one-pass run"),
            "{first}"
        );
        assert!(r.p("par/shards/vocab.json").exists());
    }
    let before = mtimes(&out);

    // 2. Nothing changed: nothing to do, nothing touched.
    assert!(
        r.up_to_date(&goals),
        "make -q says something is out of date"
    );
    let dry = r.dry(&goals);
    assert!(
        stages(&dry, &out).is_empty(),
        "a dry run would rerun: {dry}"
    );
    let again = r.run(&goals);
    assert!(again.contains("Nothing to be done"), "{again}");
    assert_eq!(
        changed(&before, &mtimes(&out), &out),
        Vec::<String>::new(),
        "a rerun changed files"
    );

    // 3. A new setting for experiment b: only b's classifier, predictions and audit rerun;
    //    a dry run says so and writes nothing.
    let b2 = "CLF_b=--unfreeze 1:5e-3 --lin-ftrs 10";
    assert!(!r.up_to_date(&["all", b2]));
    let dry = r.dry(&["all", b2]);
    assert_eq!(
        stages(&dry, &out),
        [
            "bias-audit audit-b.json",
            "clf-train clf-b",
            "clf-train predict predictions-b.jsonl"
        ],
        "{dry}"
    );
    assert_eq!(
        changed(&before, &mtimes(&out), &out),
        Vec::<String>::new(),
        "a dry run changed files"
    );
    r.run(&["all", b2]);
    let after_b = mtimes(&out);
    let ch = changed(&before, &after_b, &out);
    for f in [
        "clf-b",
        "predictions-b.jsonl",
        "audit-b.json",
        "summary.txt",
        "clf-b.args",
    ] {
        assert!(ch.contains(&f.to_string()), "{f} not rebuilt: {ch:?}");
    }
    for f in ch.iter() {
        assert!(
            f.starts_with("clf-b")
                || f.starts_with("predictions-b")
                || f.starts_with("audit-b")
                || f.starts_with("summary"),
            "{f} was rebuilt although its inputs did not change: {ch:?}"
        );
    }
    assert!(r.up_to_date(&["all", "chaucer", b2]));

    // 4. A changed stage script: only the stages downstream of it rerun.
    set_mtime_future(&examples().join("middle-english/enm_tokenize.awk"));
    let dry = r.dry(&["all", "chaucer", b2]);
    assert_eq!(
        stages(&dry, &out),
        [
            "awk chaucer/tokens.awk.txt.tmp",
            "numericalize chaucer/shards.awk"
        ],
        "{dry}"
    );

    // 5. A changed input: everything from it on reruns (tokenize, both shard sets, the LM, both
    //    classifiers, the Chaucer fine-tune), but not the Chaucer stages that do not read it.
    set_mtime_future(&texts);
    let dry = r.dry(&["all", "chaucer", b2]);
    let s = stages(&dry, &out);
    for want in [
        "tokenize tokens.jsonl",
        "numericalize lm_shards",
        "numericalize clf_shards",
        "lm-train lm",
        "clf-train clf-a",
        "clf-train clf-b",
        "lm-train chaucer/lm.enm",
    ] {
        assert!(s.contains(&want.to_string()), "{want} not in {s:?}");
    }
    assert!(
        !s.iter()
            .any(|x| x.contains("tokens.enm") || x.contains("sp.json") || x.contains("shards.sub")),
        "{s:?}"
    );
}

#[test]
fn awk_script_matches_tokenize_enm_on_chaucer() {
    let Some(data) = require_data("awk_script_matches_tokenize_enm_on_chaucer") else {
        return;
    };
    if !have("awk") {
        return;
    }
    let text = data.join("chaucer-ellesmere/ellesmere_canterbury_tales.txt");
    let rust = Command::new(bin("tokenize"))
        .arg(&text)
        .args(["--format", "paragraphs", "--lang", "enm", "-q"])
        .output()
        .unwrap();
    assert!(rust.status.success());
    let awk = Command::new("awk")
        .arg("-f")
        .arg(examples().join("middle-english/enm_tokenize.awk"))
        .arg(&text)
        .output()
        .unwrap();
    assert!(
        awk.status.success(),
        "{}",
        String::from_utf8_lossy(&awk.stderr)
    );
    let rust: Vec<Vec<String>> = String::from_utf8(rust.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["tokens"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap().to_owned())
                .collect()
        })
        .collect();
    let awk: Vec<Vec<String>> = String::from_utf8(awk.stdout)
        .unwrap()
        .lines()
        .map(|l| l.split(' ').map(String::from).collect())
        .collect();
    assert_eq!(rust.len(), awk.len(), "one document per stanza in both");
    let same = rust.iter().zip(&awk).filter(|(a, b)| a == b).count();
    // 906 of 909 stanzas are token-identical (the rest: spaCy's number/dash infixes).
    assert!(
        same >= 900,
        "only {same} of {} stanzas identical",
        rust.len()
    );
}

#[test]
fn examples_justfile_reruns_nothing_when_nothing_changed() {
    let Some(data) = require_data("examples_justfile_reruns_nothing_when_nothing_changed") else {
        return;
    };
    if !have("just") || !have("awk") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let csv = std::fs::read_to_string(data.join("imdb_sample/texts.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    let tiny = [&lines[..31], &lines[lines.len() - 12..]]
        .concat()
        .join("\n")
        + "\n";
    let texts = dir.path().join("tiny.csv");
    std::fs::write(&texts, tiny).unwrap();
    let out = dir.path().join("out");
    let vars = [
        format!("bin={}", bin_dir().display()),
        format!("texts={}", texts.display()),
        format!("out={}", out.display()),
        "model=--emb-sz 8 --n-hid 16 --n-layers 1 --bs 4 --bptt 16".into(),
        "lm_args=--epochs 1 --steps 6 --seed 42".into(),
        "clf_common=--bs 4 --bptt 16 --seed 42".into(),
        "clf_a=--unfreeze 1:2e-2".into(),
        "clf_b=--unfreeze 1:1e-2 --lin-ftrs 10".into(),
        "audit=--y-true label --y-pred pred --favorable positive --protected mentions_women --privileged no".into(),
    ];
    let just = |extra: &[String]| {
        let o = Command::new("just")
            .arg("-f")
            .arg(examples().join("justfile"))
            .args(&vars)
            .args(extra)
            .output()
            .unwrap();
        let s = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(
            o.status.success(),
            "just failed: {s}\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        s
    };
    let first = just(&["lesson4".into()]);
    assert!(
        first.contains("experiment a: valid accuracy")
            && first.contains("experiment b: valid accuracy"),
        "{first}"
    );
    let before = mtimes(&out);
    just(&["lesson4".into()]);
    assert_eq!(
        changed(&before, &mtimes(&out), &out),
        Vec::<String>::new(),
        "a rerun changed files"
    );
    // A third experiment reuses the shard sets and the LM.
    just(&["exp".into(), "c".into(), "--unfreeze 1:5e-3".into()]);
    let ch = changed(&before, &mtimes(&out), &out);
    assert!(ch.iter().all(|f| f.contains("-c")), "{ch:?}");
    assert!(
        ch.contains(&"clf-c".to_string()) && ch.contains(&"audit-c.json".to_string()),
        "{ch:?}"
    );
}
