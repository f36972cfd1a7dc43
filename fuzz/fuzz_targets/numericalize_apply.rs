//! numericalize end to end on an arbitrary token stream, differentially: building a vocab
//! (the spooled path) and applying that vocab to the same input (the one-pass path) must
//! both succeed or both fail, and when they succeed give byte-identical shard files.
//! Byte 0 picks the input form, the split rule and --lossy; the rest is the input file.
#![no_main]

use std::path::Path;

use clap::Parser;
use libfuzzer_sys::fuzz_target;

fn run(args: &[&str]) -> anyhow::Result<i32> {
    let mut argv = vec!["numericalize"];
    argv.extend_from_slice(args);
    numericalize::run(numericalize::Args::try_parse_from(argv).expect("valid arguments"))
}

fn read_dir(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let p = |name: &str| d.path().join(name).to_string_lossy().into_owned();
    let input = p(if sel & 1 == 0 { "t.jsonl" } else { "t.txt" });
    std::fs::write(&input, body).unwrap();
    let mut common: Vec<&str> = vec!["-q", "--threads", "2", "--min-freq", "1"];
    if sel & 2 != 0 {
        common.extend_from_slice(&["--split-col", "label"]);
    }
    if sel & 4 != 0 {
        common.push("--lossy");
    }
    let (built, applied, m) = (p("built"), p("applied"), p("m.jsonl"));
    let mut args = vec![
        input.as_str(),
        "-o",
        built.as_str(),
        "--metrics",
        m.as_str(),
    ];
    args.extend_from_slice(&common);
    let b = run(&args);
    let vocab = if b.is_ok() {
        built.clone()
    } else {
        p("v.json")
    };
    if b.is_err() {
        // Any vocab will do to check that applying fails too.
        let counts: Vec<(String, u64)> = vec![("a".into(), 5), ("b".into(), 4)];
        std::fs::write(
            &vocab,
            shared::vocab::Vocab::build(&counts, 100, 1).to_json(),
        )
        .unwrap();
    }
    let mut args = vec![
        input.as_str(),
        "--vocab",
        vocab.as_str(),
        "-o",
        applied.as_str(),
        "--metrics",
        m.as_str(),
    ];
    args.extend_from_slice(&common);
    let a = run(&args);
    match (&b, &a) {
        (Ok(_), Ok(_)) => {
            let (fb, fa) = (read_dir(Path::new(&built)), read_dir(Path::new(&applied)));
            assert_eq!(fb.len(), fa.len());
            for ((nb, bb), (na, ba)) in fb.iter().zip(&fa) {
                assert_eq!(nb, na);
                if nb == "manifest.json" {
                    let mut mb: serde_json::Value = serde_json::from_slice(bb).unwrap();
                    let mut ma: serde_json::Value = serde_json::from_slice(ba).unwrap();
                    mb["settings"]["vocab"] = serde_json::Value::Null;
                    ma["settings"]["vocab"] = serde_json::Value::Null;
                    assert_eq!(mb, ma);
                } else {
                    assert!(bb == ba, "{nb} differs");
                }
            }
        }
        (Err(_), Err(_)) => {}
        _ => panic!(
            "build {:?} vs apply {:?}",
            b.as_ref().map_err(|e| e.to_string()),
            a.as_ref().map_err(|e| e.to_string())
        ),
    }
});
