//! Single-thread throughput of `fastai::Tokenizer` on one CSV text column: the
//! `Vec<String>` API (`tokenize_into`) and the JSON writer the CLI uses
//! (`tokenize_json_into` with reused buffers).
//!
//! usage: cargo run -p tokenize --release --example fastai_bench [CSV] [TEXT_COL] [REPEAT]
//! (default CSV: ../shared/data/imdb_large/train.csv relative to the workspace root)
use std::time::Instant;

fn main() {
    let default = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/data/imdb_large/train.csv"
    );
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| default.to_string());
    let col = std::env::args()
        .nth(2)
        .unwrap_or_else(|| "text".to_string());
    let repeat: usize = std::env::args()
        .nth(3)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let mut rdr = csv::Reader::from_path(&path).expect("open csv");
    let idx = rdr
        .headers()
        .expect("header")
        .iter()
        .position(|h| h == col)
        .expect("text column");
    let texts: Vec<String> = rdr
        .records()
        .map(|r| r.expect("record")[idx].to_string())
        .collect();
    let bytes: usize = texts.iter().map(String::len).sum();
    let t0 = Instant::now();
    let tk = tokenize::fastai::Tokenizer::new();
    let init = t0.elapsed();
    let report = |what: &str, best: f64, ntok: usize| {
        println!(
            "{what}: {} docs, {:.2} MB, {} tokens; init {:.1} ms; best of {repeat}: {:.3} s = {:.1} MB/s, {:.2} M tokens/s (1 thread)",
            texts.len(),
            bytes as f64 / 1e6,
            ntok,
            init.as_secs_f64() * 1e3,
            best,
            bytes as f64 / 1e6 / best,
            ntok as f64 / 1e6 / best
        );
    };
    let (mut best, mut ntok) = (f64::INFINITY, 0);
    let mut out = Vec::new();
    for _ in 0..repeat {
        ntok = 0;
        let t = Instant::now();
        for s in &texts {
            out.clear();
            tk.tokenize_into(s, &mut out);
            ntok += out.len();
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    report("tokenize_into", best, ntok);
    let (mut best, mut ntok) = (f64::INFINITY, 0);
    let mut sc = tokenize::fastai::Scratch::default();
    let mut json = Vec::new();
    for _ in 0..repeat {
        ntok = 0;
        let t = Instant::now();
        for s in &texts {
            json.clear();
            ntok += tk.tokenize_json_into(s, &mut sc, &mut json);
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    report("tokenize_json_into", best, ntok);
}
