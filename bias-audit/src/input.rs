//! Reading predictions: CSV/TSV with a header, or JSON lines (one object per line, as
//! `clf-train predict` writes them with its passthrough fields).
//!
//! Only the columns the audit needs are kept. Every cell keeps its text (whitespace-stripped,
//! as `str(value).strip()` in pandas) and its numeric value when it has one, because labels and
//! groups are compared as numbers when both sides are numbers and as strings otherwise.

use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::args::InputFormat;

/// One field of one row.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// whitespace-stripped text (`1`, `1.5`, `Female`; `True`/`False` for JSON booleans)
    pub text: String,
    /// the value as a number, when the cell is one
    pub num: Option<f64>,
}

impl Cell {
    pub fn from_text(s: &str) -> Cell {
        let t = s.trim();
        Cell {
            text: t.to_string(),
            num: parse_number(t),
        }
    }
}

/// Numbers as Python's `float()` / `pd.to_numeric` read them (decimal, exponent, inf, nan).
pub fn parse_number(t: &str) -> Option<f64> {
    let t = t.trim();
    if t.is_empty() {
        return None;
    }
    t.parse::<f64>().ok()
}

/// The rows of the input, only the needed columns.
#[derive(Debug, Default)]
pub struct Table {
    /// the input's name in messages (`<stdin>` for `-`)
    pub name: String,
    /// 1-based line number of each row (for messages)
    pub lines: Vec<u64>,
    pub y_true: Vec<Cell>,
    pub y_pred: Vec<Cell>,
    /// present when a score column was asked for or found
    pub score: Option<Vec<Cell>>,
    pub score_col: Option<String>,
    /// one vector per protected column
    pub protected: Vec<Vec<Cell>>,
}

impl Table {
    pub fn len(&self) -> usize {
        self.y_true.len()
    }
    pub fn is_empty(&self) -> bool {
        self.y_true.is_empty()
    }
}

/// Which columns to read.
#[derive(Debug, Clone)]
pub struct Columns {
    pub y_true: String,
    pub y_pred: String,
    /// `Some(col)` when `--score` was given (then it must exist); `None`: `score` if present
    pub score: Option<String>,
    pub protected: Vec<String>,
}

/// Reads the whole input (a file or stdin) and parses it.
pub fn read(path: &Path, format: InputFormat, cols: &Columns) -> Result<Table> {
    let stdin = shared::cli::is_stdio(path);
    let name = shared::cli::input_name(path);
    let mut bytes = Vec::new();
    if stdin {
        std::io::stdin()
            .read_to_end(&mut bytes)
            .with_context(|| format!("{name}: read failed"))?;
    } else {
        if path.is_dir() {
            bail!("{name}: is a directory");
        }
        let mut f = std::fs::File::open(path).with_context(|| format!("{name}: cannot open"))?;
        f.read_to_end(&mut bytes)
            .with_context(|| format!("{name}: read failed"))?;
    }
    parse(&name, &bytes, format, cols)
}

/// Parses input bytes; `name` is used in messages.
pub fn parse(name: &str, bytes: &[u8], format: InputFormat, cols: &Columns) -> Result<Table> {
    if bytes.starts_with(b"\xff\xfe") || bytes.starts_with(b"\xfe\xff") {
        bail!("{name}: UTF-16 input is not supported; convert it first: iconv -f UTF-16 -t UTF-8");
    }
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    if let Some(p) = bytes.iter().position(|&b| b == 0) {
        let line = bytes[..p].iter().filter(|&&b| b == b'\n').count() + 1;
        bail!("{name}: line {line}: NUL byte (binary input?)");
    }
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    let Some(&first) = first else {
        bail!("{name}: empty input (no rows)")
    };
    let format = match format {
        InputFormat::Auto => {
            let lower = name.to_ascii_lowercase();
            if lower.ends_with(".jsonl") || lower.ends_with(".ndjson") || lower.ends_with(".json") {
                InputFormat::Jsonl
            } else if lower.ends_with(".tsv") || lower.ends_with(".tab") {
                InputFormat::Tsv
            } else if lower.ends_with(".csv") {
                InputFormat::Csv
            } else if first == b'{' {
                InputFormat::Jsonl
            } else {
                InputFormat::Csv
            }
        }
        f => f,
    };
    let mut t = match format {
        InputFormat::Jsonl => parse_jsonl(name, bytes, cols)?,
        InputFormat::Tsv => parse_csv(name, bytes, b'\t', cols)?,
        _ => parse_csv(name, bytes, b',', cols)?,
    };
    t.name = name.to_string();
    if t.is_empty() {
        bail!("{name}: no rows (only a header)");
    }
    Ok(t)
}

fn missing_column(name: &str, col: &str, flag: &str, have: &[String]) -> anyhow::Error {
    anyhow::anyhow!(
        "{name}: no column \"{col}\" ({flag}; columns: {})",
        have.join(", ")
    )
}

fn parse_csv(name: &str, bytes: &[u8], delim: u8, cols: &Columns) -> Result<Table> {
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(delim)
        .has_headers(true)
        .from_reader(bytes);
    let headers = rdr.headers().map_err(|e| csv_error(name, e))?.clone();
    let have: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for (i, h) in have.iter().enumerate() {
        if have[..i].contains(h) {
            bail!("{name}: the column name \"{h}\" appears twice in the header");
        }
    }
    let find = |col: &str, flag: &str| -> Result<usize> {
        have.iter()
            .position(|h| h == col)
            .ok_or_else(|| missing_column(name, col, flag, &have))
    };
    let iy = find(&cols.y_true, "--y-true")?;
    let ip = find(&cols.y_pred, "--y-pred")?;
    let is = match &cols.score {
        Some(c) => Some((find(c, "--score")?, c.clone())),
        None => have
            .iter()
            .position(|h| h == "score")
            .map(|i| (i, "score".to_string())),
    };
    let iprot: Vec<usize> = cols
        .protected
        .iter()
        .map(|c| find(c, "--protected"))
        .collect::<Result<_>>()?;
    let mut t = Table {
        score: is.as_ref().map(|_| Vec::new()),
        score_col: is.as_ref().map(|(_, c)| c.clone()),
        protected: vec![Vec::new(); iprot.len()],
        ..Default::default()
    };
    let mut rec = csv::StringRecord::new();
    let mut last_line = 1;
    loop {
        match rdr.read_record(&mut rec) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(csv_error(name, e)),
        }
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        last_line = line;
        if rec.len() == 1 && rec.get(0) == Some("") {
            continue; // a blank line
        }
        t.lines.push(line);
        t.y_true.push(Cell::from_text(&rec[iy]));
        t.y_pred.push(Cell::from_text(&rec[ip]));
        if let (Some(v), Some((i, _))) = (t.score.as_mut(), is.as_ref()) {
            v.push(Cell::from_text(&rec[*i]));
        }
        for (k, &i) in iprot.iter().enumerate() {
            t.protected[k].push(Cell::from_text(&rec[i]));
        }
    }
    if shared::csvquote::ends_in_quotes(bytes, delim) {
        bail!("{name}: line {last_line}: a quoted field is not closed before the end of the input");
    }
    Ok(t)
}

fn csv_error(name: &str, e: csv::Error) -> anyhow::Error {
    let line = e.position().map(|p| p.line());
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len,
            len,
            pos,
        } => {
            let line = pos.as_ref().map(|p| p.line()).or(line).unwrap_or(0);
            anyhow::anyhow!(
                "{name}: line {line}: ragged row: {len} fields where the header has {expected_len}"
            )
        }
        csv::ErrorKind::Utf8 { pos, err } => {
            let line = pos.as_ref().map(|p| p.line()).or(line).unwrap_or(0);
            anyhow::anyhow!(
                "{name}: line {line}: invalid UTF-8 in field {}",
                err.field() + 1
            )
        }
        _ => match line {
            Some(l) => anyhow::anyhow!("{name}: line {l}: malformed CSV: {e}"),
            None => anyhow::anyhow!("{name}: malformed CSV: {e}"),
        },
    }
}

fn json_cell(name: &str, line: u64, col: &str, v: &Value) -> Result<Cell> {
    Ok(match v {
        Value::String(s) => Cell::from_text(s),
        Value::Number(n) => Cell {
            text: n.to_string(),
            num: n.as_f64(),
        },
        Value::Bool(b) => Cell {
            text: if *b { "True" } else { "False" }.into(),
            num: Some(*b as u8 as f64),
        },
        Value::Null => bail!("{name}: line {line}: \"{col}\" is null"),
        _ => bail!("{name}: line {line}: \"{col}\" is not a string, number or boolean"),
    })
}

fn parse_jsonl(name: &str, bytes: &[u8], cols: &Columns) -> Result<Table> {
    let mut t = Table {
        protected: vec![Vec::new(); cols.protected.len()],
        ..Default::default()
    };
    let mut score_col: Option<String> = None;
    let mut first = true;
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = i as u64 + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        let text = std::str::from_utf8(raw).map_err(|e| {
            anyhow::anyhow!(
                "{name}: line {line}: invalid UTF-8 at byte {}",
                e.valid_up_to() + 1
            )
        })?;
        let obj: serde_json::Map<String, Value> = match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(m)) => m,
            Ok(_) => bail!("{name}: line {line}: not a JSON object"),
            Err(e) => bail!("{name}: line {line}: invalid JSON: {e}"),
        };
        if first {
            // Column checks against the first record: name the fields that exist.
            let have: Vec<String> = obj.keys().cloned().collect();
            for (col, flag) in [(&cols.y_true, "--y-true"), (&cols.y_pred, "--y-pred")] {
                if !obj.contains_key(col) {
                    return Err(missing_column(name, col, flag, &have));
                }
            }
            for col in &cols.protected {
                if !obj.contains_key(col) {
                    return Err(missing_column(name, col, "--protected", &have));
                }
            }
            score_col = match &cols.score {
                Some(c) if !obj.contains_key(c) => {
                    return Err(missing_column(name, c, "--score", &have))
                }
                Some(c) => Some(c.clone()),
                None => obj.contains_key("score").then(|| "score".to_string()),
            };
            if score_col.is_some() {
                t.score = Some(Vec::new());
            }
            first = false;
        }
        let get = |col: &str| -> Result<Cell> {
            match obj.get(col) {
                Some(v) => json_cell(name, line, col, v),
                None => bail!("{name}: line {line}: no field \"{col}\""),
            }
        };
        t.lines.push(line);
        t.y_true.push(get(&cols.y_true)?);
        t.y_pred.push(get(&cols.y_pred)?);
        if let (Some(v), Some(c)) = (t.score.as_mut(), score_col.as_ref()) {
            v.push(get(c)?);
        }
        for (k, col) in cols.protected.iter().enumerate() {
            t.protected[k].push(get(col)?);
        }
    }
    t.score_col = score_col;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols() -> Columns {
        Columns {
            y_true: "y".into(),
            y_pred: "p".into(),
            score: None,
            protected: vec!["g".into()],
        }
    }

    #[test]
    fn csv_and_jsonl_give_the_same_cells() {
        let c = parse(
            "a.csv",
            b"y,p,g,score\n1,0, A ,0.5\n",
            InputFormat::Auto,
            &cols(),
        )
        .unwrap();
        let j = parse(
            "a.jsonl",
            b"{\"y\":1,\"p\":0,\"g\":\"A\",\"score\":0.5}\n",
            InputFormat::Auto,
            &cols(),
        )
        .unwrap();
        assert_eq!(c.y_true, j.y_true);
        assert_eq!(c.protected, j.protected);
        assert_eq!(c.protected[0][0].text, "A");
        assert_eq!(c.score_col.as_deref(), Some("score"));
        assert_eq!(j.score.unwrap()[0].num, Some(0.5));
    }

    #[test]
    fn messages_name_line_and_columns() {
        let e = parse("a.csv", b"y,p,h\n1,0,x\n", InputFormat::Auto, &cols()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "a.csv: no column \"g\" (--protected; columns: y, p, h)"
        );
        let e = parse("a.csv", b"y,p,g\n1,0,x\n1,0\n", InputFormat::Auto, &cols()).unwrap_err();
        assert!(
            e.to_string().starts_with("a.csv: line 3: ragged row"),
            "{e}"
        );
        let e = parse(
            "a.jsonl",
            b"{\"y\":1,\"p\":0,\"g\":\"A\"}\n{oops\n",
            InputFormat::Auto,
            &cols(),
        )
        .unwrap_err();
        assert!(
            e.to_string().starts_with("a.jsonl: line 2: invalid JSON"),
            "{e}"
        );
        let e = parse("a.csv", b"", InputFormat::Auto, &cols()).unwrap_err();
        assert!(e.to_string().contains("empty input"), "{e}");
    }
}
