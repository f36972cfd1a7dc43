//! Compares `fastai::Tokenizer` with reference token streams written by
//! `shared/peer/fastai_tokenize.py --out` (one `{"tokens": [...]}` line per row).
//!
//! usage: fastai_parity CSV JSONL [TEXT_COL] [MAX_SHOWN]
use std::io::BufRead;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: fastai_parity CSV JSONL [TEXT_COL] [MAX_SHOWN]");
        std::process::exit(2);
    }
    let col = args.get(3).map(String::as_str).unwrap_or("text");
    let max_shown: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(20);
    let mut rdr = csv::Reader::from_path(&args[1]).expect("csv");
    let idx = rdr
        .headers()
        .expect("header")
        .iter()
        .position(|h| h == col)
        .expect("text column");
    let refs = std::io::BufReader::new(std::fs::File::open(&args[2]).expect("jsonl"));
    let tk = tokenize::fastai::Tokenizer::new();
    let (mut docs, mut same, mut shown) = (0, 0, 0);
    for (rec, line) in rdr.records().zip(refs.lines()) {
        let rec = rec.expect("record");
        let v: serde_json::Value = serde_json::from_str(&line.expect("line")).expect("json");
        let exp: Vec<String> = v["tokens"]
            .as_array()
            .expect("tokens")
            .iter()
            .map(|t| t.as_str().unwrap_or("").to_string())
            .collect();
        let got = tk.tokenize(&rec[idx]);
        docs += 1;
        if got == exp {
            same += 1;
            continue;
        }
        if shown < max_shown {
            shown += 1;
            let p = got
                .iter()
                .zip(exp.iter())
                .position(|(a, b)| a != b)
                .unwrap_or(got.len().min(exp.len()));
            let lo = p.saturating_sub(4);
            println!("doc {}: first diff at token {p}", docs - 1);
            println!("  ours:   {:?}", &got[lo..(p + 6).min(got.len())]);
            println!("  fastai: {:?}", &exp[lo..(p + 6).min(exp.len())]);
        }
    }
    println!("{same}/{docs} documents identical");
}
