//! Character classes with Python `re` / spaCy semantics.
//!
//! The non-ASCII parts come from tables extracted empirically from CPython 3.11's
//! `re` module and spaCy's `char_classes.py` (see `tests/peer/gen_tables.py`), so `\s`, `\w`
//! and spaCy's hand-written `ALPHA*` ranges match the originals code point for code
//! point. ASCII is answered without a table lookup (checked against the tables by a
//! unit test).

use super::tables;
use std::cmp::Ordering;

/// Bit in [`ASCII_CLASS`]: Python whitespace.
pub const C_SPACE: u8 = 1;
/// Bit in [`ASCII_CLASS`]: Python `\w`.
pub const C_WORD: u8 = 2;

/// Classes of the ASCII bytes (a table lookup beats the range tests in hot loops).
pub static ASCII_CLASS: [u8; 128] = {
    let mut t = [0u8; 128];
    let mut i = 0;
    while i < 128 {
        let b = i as u8;
        if matches!(b, 9..=13 | 28..=32) {
            t[i] |= C_SPACE;
        }
        if b.is_ascii_alphanumeric() || b == b'_' {
            t[i] |= C_WORD;
        }
        i += 1;
    }
    t
};

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
            assert_eq!(
                is_alpha_upper(c),
                in_ranges(tables::ALPHA_UPPER, c),
                "upper {b}"
            );
            assert_eq!(is_icon(c), in_ranges(tables::ICONS, c), "icon {b}");
            assert_eq!(ASCII_CLASS[b as usize] & C_SPACE != 0, is_py_space(c));
            assert_eq!(ASCII_CLASS[b as usize] & C_WORD != 0, is_py_word(c));
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
