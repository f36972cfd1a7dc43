//! fastai v2's default text processing (rules + spaCy English word splitting).
//! Placeholder: replaced by the real implementation.

/// fastai's tokenizer: `defaults.text_proc_rules`, spaCy English splitting, `replace_space`.
#[derive(Debug, Default, Clone)]
pub struct Tokenizer {}

impl Tokenizer {
    pub fn new() -> Self {
        Tokenizer {}
    }

    /// Appends the tokens of `text` to `out` (starting with `xxbos`).
    pub fn tokenize_into(&self, text: &str, out: &mut Vec<String>) {
        out.push("xxbos".to_string());
        out.extend(text.split_whitespace().map(|s| s.to_lowercase()));
    }
}
