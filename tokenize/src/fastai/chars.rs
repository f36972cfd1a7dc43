//! Character classes with Python `re` / spaCy semantics.
//!
//! The non-ASCII parts come from tables extracted empirically from CPython 3.11's
//! `re` module and spaCy's `char_classes.py` (see `gen_tables.py`), so `\s`, `\w`
//! and spaCy's hand-written `ALPHA*` ranges match the originals code point for code
//! point. ASCII is answered without a table lookup (checked against the tables by a
//! unit test).

use super::tables;
use std::cmp::Ordering;

/// Binary search of a sorted, non-overlapping list of inclusive code point ranges.
#[inline]
pub(crate) fn in_ranges(table: &[(u32, u32)], c: char) -> bool {
    let c = c as u32;
    table
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                Ordering::Less
            } else if lo > c {
                Ordering::Greater
            } else {
                Ordering::Equal
            }
        })
        .is_ok()
}

/// Python `str.isspace()`, which is also `re`'s `\s` and what spaCy's tokenizer
/// (`uc.isspace()`) and `str.strip()` / `str.split()` use. Note it includes
/// U+001C..U+001F and U+0085, unlike Rust's `char::is_whitespace`.
#[inline]
pub fn is_py_space(c: char) -> bool {
    if c.is_ascii() {
        matches!(c as u8, 9..=13 | 28..=32)
    } else {
        in_ranges(tables::PY_SPACE, c)
    }
}

/// Python `re` `\w` for str patterns: `str.isalnum()` or `_`.
#[inline]
pub fn is_py_word(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphanumeric() || c == '_'
    } else {
        in_ranges(tables::PY_WORD, c)
    }
}

/// spaCy `ALPHA`.
#[inline]
pub fn is_alpha(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphabetic()
    } else {
        in_ranges(tables::ALPHA, c)
    }
}

/// spaCy `ALPHA_UPPER` (includes the uncased scripts, e.g. CJK).
#[inline]
pub fn is_alpha_upper(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_uppercase()
    } else {
        in_ranges(tables::ALPHA_UPPER, c)
    }
}

/// spaCy `LIST_ICONS` (symbols, emoji); contains no ASCII.
#[inline]
pub fn is_icon(c: char) -> bool {
    !c.is_ascii() && in_ranges(tables::ICONS, c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_fast_paths_agree_with_tables() {
        for b in 0u8..128 {
            let c = b as char;
            assert_eq!(is_py_space(c), in_ranges(tables::PY_SPACE, c), "space {b}");
            assert_eq!(is_py_word(c), in_ranges(tables::PY_WORD, c), "word {b}");
            assert_eq!(is_alpha(c), in_ranges(tables::ALPHA, c), "alpha {b}");
            assert_eq!(is_alpha_upper(c), in_ranges(tables::ALPHA_UPPER, c), "upper {b}");
            assert_eq!(is_icon(c), in_ranges(tables::ICONS, c), "icon {b}");
        }
    }

    #[test]
    fn python_whitespace_quirks() {
        assert!(is_py_space('\u{85}'));
        assert!(is_py_space('\u{1c}'));
        assert!(is_py_space('\u{a0}'));
        assert!(!is_py_space('\u{200b}'));
        assert!(is_py_word('é'));
        assert!(is_py_word('²')); // isalnum() via isnumeric()
        assert!(!is_py_word('\u{301}')); // combining marks are not \w in Python
    }
}
