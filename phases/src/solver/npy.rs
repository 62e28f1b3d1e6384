//! The numpy `.npy` format, as far as the trajectory mesh needs it: writing a version 1.0
//! header for a C-ordered little-endian float64 array, and reading one back (versions 1, 2 and 3)
//! to find the shape and where the data start.
//!
//! Header layout: the magic `\x93NUMPY`, the version bytes, the header length (u16 LE for 1.0,
//! u32 LE for 2.0/3.0), then a Python dict literal
//! `{'descr': '<f8', 'fortran_order': False, 'shape': (a, b, c, d), }` padded with spaces and a
//! final newline so that the data start at a multiple of 64 bytes, byte for byte what numpy 2
//! writes (including the spare room it leaves for the first axis to grow).

use std::io::Read;

const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// Data alignment numpy uses for new files.
const ALIGN: usize = 64;
/// Digits numpy reserves for the first axis.
const GROWTH_AXIS_MAX_DIGITS: usize = 21;

/// Why a `.npy` header could not be read.
#[derive(Debug, thiserror::Error)]
pub enum NpyError {
    /// Reading failed.
    #[error("cannot read the .npy header: {0}")]
    Io(#[from] std::io::Error),
    /// Not a `.npy` file, or a header this reader does not understand.
    #[error("not a supported .npy file: {0}")]
    Format(String),
}

/// A parsed `.npy` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpyHeader {
    /// The dtype descriptor, e.g. `<f8`.
    pub descr: String,
    /// Whether the data are in Fortran order.
    pub fortran_order: bool,
    /// The shape.
    pub shape: Vec<u64>,
    /// Bytes before the data (magic, version, length and dict).
    pub data_offset: u64,
}

impl NpyHeader {
    /// Number of elements.
    pub fn len(&self) -> u64 {
        self.shape.iter().product()
    }
    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The version 1.0 header of a C-ordered little-endian float64 array of `shape`.
pub fn f64_header(shape: &[u64]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let tuple = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut dict = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': {tuple}, }}");
    // numpy leaves room for the first axis to grow to GROWTH_AXIS_MAX_DIGITS digits (so a file
    // can be appended to in place), then aligns; doing the same makes the header identical.
    if let Some(first) = dims.first() {
        dict.extend(std::iter::repeat_n(
            ' ',
            GROWTH_AXIS_MAX_DIGITS.saturating_sub(first.len()),
        ));
    }
    // magic (6) + version (2) + length (2) + dict + '\n' must be a multiple of ALIGN.
    let unpadded = 10 + dict.len() + 1;
    let pad = (ALIGN - unpadded % ALIGN) % ALIGN;
    dict.extend(std::iter::repeat_n(' ', pad));
    dict.push('\n');
    let mut out = Vec::with_capacity(10 + dict.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    // The dict is short (a few dozen bytes plus < 64 of padding): it fits a u16.
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out
}

/// Reads and parses a `.npy` header from the start of `r`; `r` is left at the first data byte.
pub fn read_header(r: &mut dyn Read) -> Result<NpyHeader, NpyError> {
    let mut pre = [0u8; 8];
    r.read_exact(&mut pre)?;
    if &pre[..6] != MAGIC {
        return Err(NpyError::Format("missing the \\x93NUMPY magic".into()));
    }
    let (len, prefix) = match pre[6] {
        1 => {
            let mut b = [0u8; 2];
            r.read_exact(&mut b)?;
            (u64::from(u16::from_le_bytes(b)), 10u64)
        }
        2 | 3 => {
            let mut b = [0u8; 4];
            r.read_exact(&mut b)?;
            (u64::from(u32::from_le_bytes(b)), 12u64)
        }
        v => return Err(NpyError::Format(format!("unknown format version {v}"))),
    };
    if len > 1 << 20 {
        return Err(NpyError::Format(format!(
            "header of {len} bytes is too long"
        )));
    }
    let mut dict = Vec::new();
    r.take(len).read_to_end(&mut dict)?;
    if dict.len() as u64 != len {
        return Err(NpyError::Format("the header is truncated".into()));
    }
    let text =
        String::from_utf8(dict).map_err(|_| NpyError::Format("header is not text".into()))?;
    let descr = dict_value(&text, "descr")
        .and_then(|v| {
            let v = v.trim();
            v.strip_prefix('\'')
                .and_then(|s| s.strip_suffix('\''))
                .map(str::to_string)
        })
        .ok_or_else(|| NpyError::Format(format!("no 'descr' string in {text:?}")))?;
    let fortran_order = match dict_value(&text, "fortran_order").map(str::trim) {
        Some("False") => false,
        Some("True") => true,
        _ => return Err(NpyError::Format(format!("no 'fortran_order' in {text:?}"))),
    };
    let shape_text = dict_value(&text, "shape")
        .ok_or_else(|| NpyError::Format(format!("no 'shape' in {text:?}")))?;
    let inner = shape_text
        .trim()
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| NpyError::Format(format!("bad shape {shape_text:?}")))?;
    let shape = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.trim_end_matches('L')
                .parse::<u64>()
                .map_err(|_| NpyError::Format(format!("bad shape {shape_text:?}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(NpyHeader {
        descr,
        fortran_order,
        shape,
        data_offset: prefix + len,
    })
}

/// The text of the value of `key` in a Python dict literal with simple values (strings without
/// commas, booleans and tuples).
fn dict_value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("'{key}':");
    let start = text.find(&pat)? + pat.len();
    let rest = &text[start..];
    let rest_trim = rest.trim_start();
    let end = if rest_trim.starts_with('(') {
        let open = rest.find('(')?;
        rest[open..].find(')')? + open + 1
    } else {
        rest.find([',', '}'])?
    };
    Some(&rest[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_alignment() {
        for shape in [vec![5u64], vec![1000, 3, 350, 166], vec![2, 3]] {
            let h = f64_header(&shape);
            assert_eq!(h.len() % 64, 0);
            assert_eq!(*h.last().unwrap(), b'\n');
            let parsed = read_header(&mut h.as_slice()).unwrap();
            assert_eq!(parsed.shape, shape);
            assert_eq!(parsed.descr, "<f8");
            assert!(!parsed.fortran_order);
            assert_eq!(parsed.data_offset, h.len() as u64);
        }
        let h = f64_header(&[5]);
        assert!(String::from_utf8_lossy(&h).contains("'shape': (5,), }"));
    }

    #[test]
    fn rejects_garbage() {
        assert!(read_header(&mut &b"hello world, not numpy"[..]).is_err());
        assert!(read_header(&mut &b"\x93NUMPY"[..]).is_err());
    }
}
