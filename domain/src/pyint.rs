//! Parsing integers exactly like Python's `int(value)` for a `str` in base 10.
//!
//! Accepted, as in CPython 3.13: surrounding whitespace (ASCII space, `\t`,
//! `\n`, `\r`, `\x0b`, `\x0c` and Unicode whitespace), one optional sign
//! `+`/`-`, then decimal digits with single underscores allowed only between
//! digits. Digits may be any Unicode decimal digit (category Nd, e.g. `"١٢"`
//! is 12), as Python maps them to ASCII first; the table follows Unicode 15.1
//! (Python 3.13). Leading zeros are fine (`"007"` is 7).
//!
//! Differences from Python: no limit on the number of digits (Python 3.11+
//! refuses more than 4300 by default with a different message; callers
//! enforce their own limits), and in error messages unassigned code points
//! outside a few well-known blocks are shown as-is where Python would escape
//! them.

use std::fmt;

use num_bigint::{BigInt, BigUint, Sign};

use crate::math::mul::mul;

/// Python's `repr` of the input is cut to this many characters (`%.200R`).
const REPR_MAX_CHARS: usize = 200;

/// Digit strings up to this length are converted by num-bigint directly;
/// longer ones by divide and conquer (num-bigint's conversion is quadratic).
const DIRECT_DIGITS: usize = 2_000;

/// Code points of the digit zero of every run of Unicode decimal digits
/// (general category Nd, ten consecutive code points each), Unicode 15.1.
const DIGIT_ZEROS: [u32; 68] = [
    0x30, 0x660, 0x6f0, 0x7c0, 0x966, 0x9e6, 0xa66, 0xae6, 0xb66, 0xbe6, 0xc66, 0xce6, 0xd66,
    0xde6, 0xe50, 0xed0, 0xf20, 0x1040, 0x1090, 0x17e0, 0x1810, 0x1946, 0x19d0, 0x1a80, 0x1a90,
    0x1b50, 0x1bb0, 0x1c40, 0x1c50, 0xa620, 0xa8d0, 0xa900, 0xa9d0, 0xa9f0, 0xaa50, 0xabf0, 0xff10,
    0x104a0, 0x10d30, 0x11066, 0x110f0, 0x11136, 0x111d0, 0x112f0, 0x11450, 0x114d0, 0x11650,
    0x116c0, 0x11730, 0x118e0, 0x11950, 0x11c50, 0x11d50, 0x11da0, 0x11f50, 0x16a60, 0x16ac0,
    0x16b50, 0x1d7ce, 0x1d7d8, 0x1d7e2, 0x1d7ec, 0x1d7f6, 0x1e140, 0x1e2f0, 0x1e4f0, 0x1e950,
    0x1fbf0,
];

/// Non-ASCII code points that Python's `repr` escapes (not printable):
/// controls, separators, format characters, private use, surrogates,
/// noncharacters and the large unassigned blocks. Sorted, inclusive.
const NOT_PRINTABLE: [(u32, u32); 29] = [
    (0x80, 0xa0),
    (0xad, 0xad),
    (0x600, 0x605),
    (0x61c, 0x61c),
    (0x6dd, 0x6dd),
    (0x70f, 0x70f),
    (0x890, 0x891),
    (0x8e2, 0x8e2),
    (0x1680, 0x1680),
    (0x180e, 0x180e),
    (0x2000, 0x200f),
    (0x2028, 0x202f),
    (0x205f, 0x206f),
    (0x3000, 0x3000),
    (0xd800, 0xf8ff),
    (0xfdd0, 0xfdef),
    (0xfeff, 0xfeff),
    (0xfff0, 0xfffb),
    (0xfffe, 0xffff),
    (0x110bd, 0x110bd),
    (0x110cd, 0x110cd),
    (0x13430, 0x1343f),
    (0x1bca0, 0x1bca3),
    (0x1d173, 0x1d17a),
    (0x1fffe, 0x1ffff),
    (0x2fffe, 0x2ffff),
    (0x3fffe, 0x3ffff),
    (0x40000, 0xe00ff),
    (0xe01f0, 0x10ffff),
];

/// The error of Python's `int()` for a string it cannot parse.
///
/// Its `Display` is Python's message, e.g.
/// `invalid literal for int() with base 10: 'abc'`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PyIntError {
    message: String,
}

impl PyIntError {
    fn new(raw: &str) -> Self {
        Self {
            message: format!(
                "invalid literal for int() with base 10: {}",
                py_repr_truncated(raw, REPR_MAX_CHARS)
            ),
        }
    }
}

impl fmt::Display for PyIntError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PyIntError {}

/// Parses `raw` exactly like Python's `int(raw)` (base 10); see the module
/// documentation for the accepted syntax. Sub-quadratic in the input length.
pub fn parse_int(raw: &str) -> Result<BigInt, PyIntError> {
    let err = || PyIntError::new(raw);
    // Like CPython: map Unicode whitespace to ' ' and Unicode digits to ASCII;
    // any other non-ASCII character (and DEL) makes the literal invalid.
    let mut buf = Vec::with_capacity(raw.len());
    for c in raw.chars() {
        if (c as u32) < 0x7f {
            buf.push(c as u8);
        } else if c.is_whitespace() {
            buf.push(b' ');
        } else if let Some(d) = decimal_value(c) {
            buf.push(b'0' + d);
        } else {
            return Err(err());
        }
    }
    let is_space = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
    let start = buf.iter().position(|b| !is_space(b)).unwrap_or(buf.len());
    let end = buf
        .iter()
        .rposition(|b| !is_space(b))
        .map_or(start, |i| i + 1);
    let mut body = &buf[start..end];
    let sign = match body.first() {
        Some(b'-') => {
            body = &body[1..];
            Sign::Minus
        }
        Some(b'+') => {
            body = &body[1..];
            Sign::Plus
        }
        _ => Sign::Plus,
    };
    // Digits, with single underscores only between digits.
    let mut digits = Vec::with_capacity(body.len());
    let mut prev_underscore = true; // no underscore at the start
    for &b in body {
        match b {
            b'0'..=b'9' => {
                digits.push(b);
                prev_underscore = false;
            }
            b'_' if !prev_underscore => prev_underscore = true,
            _ => return Err(err()),
        }
    }
    if digits.is_empty() || prev_underscore {
        return Err(err());
    }
    Ok(BigInt::from_biguint(sign, parse_digits(&digits)))
}

/// Value of a Unicode decimal digit (category Nd), if `c` is one.
fn decimal_value(c: char) -> Option<u8> {
    let cp = c as u32;
    let i = DIGIT_ZEROS.partition_point(|&z| z <= cp);
    let zero = DIGIT_ZEROS[i.checked_sub(1)?];
    (cp - zero < 10).then_some((cp - zero) as u8)
}

/// Value of a non-empty string of ASCII digits, by divide and conquer over
/// blocks of `DIRECT_DIGITS * 2^k` digits.
fn parse_digits(digits: &[u8]) -> BigUint {
    let mut pows = vec![BigUint::from(10u32).pow(DIRECT_DIGITS as u32)];
    while (DIRECT_DIGITS << pows.len()) < digits.len() {
        let last = pows.last().expect("non-empty");
        let next = mul(last, last);
        pows.push(next);
    }
    parse_rec(digits, &pows)
}

/// `digits` has at most `DIRECT_DIGITS * 2^pows.len()` digits.
fn parse_rec(digits: &[u8], pows: &[BigUint]) -> BigUint {
    if digits.len() <= DIRECT_DIGITS {
        return BigUint::parse_bytes(digits, 10).expect("ASCII digits");
    }
    // The largest block size below the length: the low part has exactly
    // `DIRECT_DIGITS * 2^k` digits, the high part at most as many.
    let k = pows
        .iter()
        .enumerate()
        .rev()
        .find(|(k, _)| (DIRECT_DIGITS << k) < digits.len())
        .map_or(0, |(k, _)| k);
    let split = digits.len() - (DIRECT_DIGITS << k);
    let hi = parse_rec(&digits[..split], &pows[..k]);
    let lo = parse_rec(&digits[split..], &pows[..k]);
    mul(&hi, &pows[k]) + lo
}

/// Python's `repr` of a `str`, cut to its first `max_chars` characters.
fn py_repr_truncated(s: &str, max_chars: usize) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::new();
    out.push(quote);
    for c in s.chars() {
        // Every character adds at least one to the repr.
        if out.len() > 4 * max_chars {
            break;
        }
        let cp = c as u32;
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            _ if c == quote => {
                out.push('\\');
                out.push(c);
            }
            _ if cp < 0x20 || cp == 0x7f => out.push_str(&format!("\\x{cp:02x}")),
            _ if cp < 0x7f || is_printable(cp) => out.push(c),
            _ if cp <= 0xff => out.push_str(&format!("\\x{cp:02x}")),
            _ if cp <= 0xffff => out.push_str(&format!("\\u{cp:04x}")),
            _ => out.push_str(&format!("\\U{cp:08x}")),
        }
    }
    out.push(quote);
    out.chars().take(max_chars).collect()
}

/// Whether Python's `str.isprintable` holds for a non-ASCII code point
/// (approximation: see [`NOT_PRINTABLE`]).
fn is_printable(cp: u32) -> bool {
    !NOT_PRINTABLE
        .iter()
        .any(|&(lo, hi)| (lo..=hi).contains(&cp))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> String {
        parse_int(raw).expect("valid").to_string()
    }

    fn msg(raw: &str) -> String {
        parse_int(raw).expect_err("invalid").to_string()
    }

    /// Expected results generated with CPython 3.13.0 (`int(s)` / `str(e)`).
    const CASES: &[(&str, Result<&str, &str>)] = &[
        ("0", Ok("0")),
        ("7", Ok("7")),
        ("-0", Ok("0")),
        ("+0", Ok("0")),
        ("+5", Ok("5")),
        ("-5", Ok("-5")),
        (" 42 ", Ok("42")),
        ("\t\n42\r\u{b}\u{c}", Ok("42")),
        ("007", Ok("7")),
        ("-007", Ok("-7")),
        ("1_000", Ok("1000")),
        ("1_2_3", Ok("123")),
        (
            "1__0",
            Err("invalid literal for int() with base 10: '1__0'"),
        ),
        ("_1", Err("invalid literal for int() with base 10: '_1'")),
        ("1_", Err("invalid literal for int() with base 10: '1_'")),
        ("+_1", Err("invalid literal for int() with base 10: '+_1'")),
        ("-_1", Err("invalid literal for int() with base 10: '-_1'")),
        ("_", Err("invalid literal for int() with base 10: '_'")),
        ("", Err("invalid literal for int() with base 10: ''")),
        ("  ", Err("invalid literal for int() with base 10: '  '")),
        ("+", Err("invalid literal for int() with base 10: '+'")),
        ("-", Err("invalid literal for int() with base 10: '-'")),
        ("+-1", Err("invalid literal for int() with base 10: '+-1'")),
        ("--1", Err("invalid literal for int() with base 10: '--1'")),
        ("- 5", Err("invalid literal for int() with base 10: '- 5'")),
        ("5 -", Err("invalid literal for int() with base 10: '5 -'")),
        ("1.5", Err("invalid literal for int() with base 10: '1.5'")),
        ("1e3", Err("invalid literal for int() with base 10: '1e3'")),
        ("abc", Err("invalid literal for int() with base 10: 'abc'")),
        (
            "0x10",
            Err("invalid literal for int() with base 10: '0x10'"),
        ),
        ("12a", Err("invalid literal for int() with base 10: '12a'")),
        ("a12", Err("invalid literal for int() with base 10: 'a12'")),
        ("1 2", Err("invalid literal for int() with base 10: '1 2'")),
        ("١٢٣", Ok("123")),
        ("١_٢", Ok("12")),
        ("\u{a0} 12\u{3000}", Ok("12")),
        (
            "\u{3000}",
            Err("invalid literal for int() with base 10: '\\u3000'"),
        ),
        (
            "\u{200b}1",
            Err("invalid literal for int() with base 10: '\\u200b1'"),
        ),
        (
            "1\u{0}",
            Err("invalid literal for int() with base 10: '1\\x00'"),
        ),
        (
            "\u{1c}5",
            Err("invalid literal for int() with base 10: '\\x1c5'"),
        ),
        (
            "5\u{1f}",
            Err("invalid literal for int() with base 10: '5\\x1f'"),
        ),
        (
            "it's",
            Err("invalid literal for int() with base 10: \"it's\""),
        ),
        (
            "a\"b'c",
            Err("invalid literal for int() with base 10: 'a\"b\\'c'"),
        ),
        (
            "\"q\"",
            Err("invalid literal for int() with base 10: '\"q\"'"),
        ),
        (
            "\\x",
            Err("invalid literal for int() with base 10: '\\\\x'"),
        ),
        (
            "\u{0}",
            Err("invalid literal for int() with base 10: '\\x00'"),
        ),
        (
            "\u{7f}",
            Err("invalid literal for int() with base 10: '\\x7f'"),
        ),
        ("é", Err("invalid literal for int() with base 10: 'é'")),
        (
            "\u{ad}",
            Err("invalid literal for int() with base 10: '\\xad'"),
        ),
        ("😀", Err("invalid literal for int() with base 10: '😀'")),
        (
            "\u{e000}",
            Err("invalid literal for int() with base 10: '\\ue000'"),
        ),
        (
            "\u{e0001}",
            Err("invalid literal for int() with base 10: '\\U000e0001'"),
        ),
        (
            "\u{fffe}",
            Err("invalid literal for int() with base 10: '\\ufffe'"),
        ),
        (
            "\u{2028}",
            Err("invalid literal for int() with base 10: '\\u2028'"),
        ),
        (
            "\u{85}",
            Err("invalid literal for int() with base 10: '\\x85'"),
        ),
        (
            "ab\n\t\r",
            Err("invalid literal for int() with base 10: 'ab\\n\\t\\r'"),
        ),
        (
            "999999999999999999999999999999",
            Ok("999999999999999999999999999999"),
        ),
        (
            "-999999999999999999999999999999",
            Ok("-999999999999999999999999999999"),
        ),
        ("٣٣٣٣٣", Ok("33333")),
        ("𝟘𝟙𝟚", Ok("12")),
        ("𑽐𑽑", Ok("1")),
        ("1_٠", Ok("10")),
        ("𞓵", Ok("5")),
        ("Ⅻ", Err("invalid literal for int() with base 10: 'Ⅻ'")),
        ("²", Err("invalid literal for int() with base 10: '²'")),
        ("½", Err("invalid literal for int() with base 10: '½'")),
        ("𐄇", Err("invalid literal for int() with base 10: '𐄇'")),
        (
            "\u{200a}-\u{2009}7\u{2028}",
            Err("invalid literal for int() with base 10: '\\u200a-\\u20097\\u2028'"),
        ),
        ("+١", Ok("1")),
        ("12٣٤", Ok("1234")),
        ("1٫5", Err("invalid literal for int() with base 10: '1٫5'")),
        ("∞", Err("invalid literal for int() with base 10: '∞'")),
        ("inf", Err("invalid literal for int() with base 10: 'inf'")),
        ("nan", Err("invalid literal for int() with base 10: 'nan'")),
        (
            "None",
            Err("invalid literal for int() with base 10: 'None'"),
        ),
        (
            "True",
            Err("invalid literal for int() with base 10: 'True'"),
        ),
    ];

    #[test]
    fn matches_cpython() {
        for &(raw, expect) in CASES {
            match expect {
                Ok(v) => assert_eq!(ok(raw), v, "int({raw:?})"),
                Err(m) => assert_eq!(msg(raw), m, "int({raw:?})"),
            }
        }
    }

    #[test]
    fn brief_examples() {
        assert_eq!(msg("abc"), "invalid literal for int() with base 10: 'abc'");
        assert_eq!(msg("1.5"), "invalid literal for int() with base 10: '1.5'");
        assert_eq!(ok(" 42 "), "42");
        assert_eq!(ok("-0"), "0");
        assert_eq!(ok("+5"), "5");
        assert_eq!(ok("1_000"), "1000");
        assert_eq!(
            msg("1__0"),
            "invalid literal for int() with base 10: '1__0'"
        );
        assert_eq!(msg(""), "invalid literal for int() with base 10: ''");
        assert_eq!(msg("  "), "invalid literal for int() with base 10: '  '");
    }

    #[test]
    fn long_reprs_are_cut_at_200_chars() {
        // CPython formats with %.200R: the quote plus 199 characters.
        let m = msg(&"a".repeat(300));
        assert_eq!(
            m,
            format!(
                "invalid literal for int() with base 10: '{}",
                "a".repeat(199)
            )
        );
        let m = msg(&"'".repeat(250));
        assert_eq!(
            m,
            format!(
                "invalid literal for int() with base 10: \"{}",
                "'".repeat(199)
            )
        );
        // Escapes are cut in the middle, as in CPython.
        let m = msg(&"\u{1}".repeat(120));
        let expect: String = format!("'{}", "\\x01".repeat(120))
            .chars()
            .take(200)
            .collect();
        assert_eq!(
            m,
            format!("invalid literal for int() with base 10: {expect}")
        );
    }

    #[test]
    fn long_digit_strings() {
        let mut s = String::new();
        for i in 0..25_000u32 {
            s.push(char::from(b'0' + (i * 7 % 10) as u8));
        }
        let expect = BigUint::parse_bytes(s.as_bytes(), 10).expect("digits");
        assert_eq!(parse_int(&s).expect("valid"), BigInt::from(expect.clone()));
        let neg = format!("  -{s}\n");
        assert_eq!(parse_int(&neg).expect("valid"), -BigInt::from(expect));
        let with_underscores: String = s
            .chars()
            .enumerate()
            .flat_map(|(i, c)| {
                if i > 0 && i % 3 == 0 {
                    vec!['_', c]
                } else {
                    vec![c]
                }
            })
            .collect();
        assert_eq!(parse_int(&with_underscores), parse_int(&s));
        for len in [1usize, 1999, 2000, 2001, 4000, 4001, 8001, 16_003] {
            let digits = "9".repeat(len);
            let expect = BigUint::from(10u32).pow(len as u32) - 1u32;
            assert_eq!(
                parse_int(&digits).expect("valid"),
                BigInt::from(expect),
                "{len}"
            );
        }
    }

    #[test]
    fn unicode_digit_table() {
        for &z in &DIGIT_ZEROS {
            for d in 0..10u32 {
                let c = char::from_u32(z + d).expect("valid code point");
                assert_eq!(decimal_value(c), Some(d as u8));
            }
            let before = char::from_u32(z - 1).expect("valid code point");
            assert!(decimal_value(before).is_none() || DIGIT_ZEROS.contains(&(z - 10)));
        }
        assert_eq!(decimal_value('a'), None);
        assert_eq!(decimal_value('\u{2f}'), None);
    }
}
