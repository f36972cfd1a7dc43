//! fastai's suggestion functions on fixed curves: tests/fixtures/suggestions.json holds
//! curves (the real one of fastai's lr_find on the tiny IMDb config, and synthetic ones for
//! the edge cases) and what fastai 2.8 / torch / numpy return for them, made by
//! tests/peer/make_suggestion_fixture.py.

use lr_find::schedule::{Schedule, ScheduleKind};
use lr_find::suggest::{suggest_all, Method};
use serde_json::Value;

fn fixture() -> Value {
    let p = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/suggestions.json"
    );
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// Equal within 2 units in the last place.
fn ulps(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 2.0 * f64::EPSILON * a.abs().max(b.abs())
}

fn floats(v: &Value) -> Vec<f64> {
    // NaN is stored as null
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap_or(f64::NAN))
        .collect()
}

#[test]
fn suggestions_match_fastai_on_every_fixture_curve() {
    let fx = fixture();
    let curves = fx["curves"].as_array().unwrap();
    assert!(curves.len() >= 8);
    let mut checked = 0;
    for c in curves {
        let name = c["name"].as_str().unwrap();
        let lrs = floats(&c["lrs"]);
        let losses = floats(&c["losses"]);
        let num_it = c["num_it"].as_u64().unwrap() as usize;
        for (m, got) in suggest_all(&lrs, &losses, num_it) {
            let want = &c["expected"][m.name()];
            match (got, want.is_null()) {
                (None, true) => {}
                (Some(g), false) => {
                    let lr = want["lr"].as_f64().unwrap();
                    let (px, py) = (
                        want["point"][0].as_f64().unwrap(),
                        want["point"][1].as_f64().unwrap(),
                    );
                    // the lrs are float32 values fastai hands back unchanged, and the losses the
                    // float32 curve's: equal up to the parsing of the fixture (serde_json's
                    // default float parser may be 1 ulp off)
                    assert!(
                        ulps(g.lr, lr),
                        "{name} {}: lr {} vs fastai {lr}",
                        m.name(),
                        g.lr
                    );
                    assert!(
                        ulps(g.point.0, px),
                        "{name} {}: point lr {} vs {px}",
                        m.name(),
                        g.point.0
                    );
                    // slide's marked loss is interpolated over numpy's float32 log10 of the lrs,
                    // which on AVX512 CPUs is Intel SVML's (not correctly rounded; we use a
                    // correctly rounded log10): close, not equal. Its lr is exact.
                    let ok = if m == Method::Slide {
                        (g.point.1 - py).abs() <= 1e-6 * py.abs()
                    } else {
                        ulps(g.point.1, py)
                    };
                    assert!(ok, "{name} {}: point loss {} vs {py}", m.name(), g.point.1);
                }
                (g, _) => panic!("{name} {}: got {g:?}, fastai {want}", m.name()),
            }
            checked += 1;
        }
    }
    assert_eq!(checked, curves.len() * 4);
}

#[test]
fn the_real_curve_gives_fastais_reported_suggestions() {
    let fx = fixture();
    let c = &fx["curves"][0];
    assert_eq!(c["name"], "fastai_lr_find_tiny");
    let s = suggest_all(&floats(&c["lrs"]), &floats(&c["losses"]), 100);
    for (m, got) in s {
        let (g, w) = (
            got.unwrap().lr,
            c["peer_suggestions"][m.name()].as_f64().unwrap(),
        );
        assert!(ulps(g, w), "{}: {g} vs fastai {w}", m.name());
    }
}

#[test]
fn the_schedule_gives_fastais_recorded_lrs() {
    let fx = fixture();
    let c = &fx["curves"][0];
    let lrs = floats(&c["lrs"]);
    let s = Schedule::new(ScheduleKind::Exp, 1e-7, 10.0, 100).unwrap();
    for (i, &want) in lrs.iter().enumerate() {
        let got = s.lr(i);
        assert!(
            (got - want).abs() <= 2.0 * f64::EPSILON * want,
            "iteration {i}: {got} vs fastai {want}"
        );
    }
}

/// Re-derives the fixture with fastai itself when the peer venv is there (skips otherwise).
#[test]
fn fixture_is_what_fastai_computes() {
    let py = std::path::PathBuf::from(std::env::var("HOME").unwrap_or_default())
        .join(".cache/peer-venv/bin/python");
    if !py.exists() {
        eprintln!("skipped: no peer venv at {}", py.display());
        return;
    }
    let dir = env!("CARGO_MANIFEST_DIR");
    let out = std::process::Command::new(&py)
        .arg(format!("{dir}/tests/peer/make_suggestion_fixture.py"))
        .arg("--check")
        .arg(format!("{dir}/tests/fixtures/suggestions.json"))
        .output()
        .unwrap();
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("ModuleNotFoundError") {
            eprintln!("skipped: fastai not importable in the peer venv");
            return;
        }
        panic!("fastai disagrees with the fixture:\n{err}");
    }
}
