//! Target `units`: `units::parse_size` and `units::parse_duration` (every size and
//! duration flag and config value) on arbitrary text, and their formatters.
//!
//! Input: the first 8 bytes are a size and the next 12 a duration for the round trips;
//! the rest, as UTF-8 (lossy), is parsed as a size and as a duration.
//!
//! Checked: no panic; `parse(format(x)) == x` for every size and every duration in range
//! (0 to 10⁹ s), and for every value a parse returned; a duration written with a decimal
//! point is the exact value rounded to the nanosecond (half up), as documented, and one
//! over 10⁹ s is refused.

use std::time::Duration;

use ringcast_proto::units::{format_duration, format_size, parse_duration, parse_size};

use crate::input::Input;

/// Longest duration `parse_duration` accepts, in seconds.
const MAX_SECS: u64 = 1_000_000_000;

/// Run the target on one input.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let n = u64::from_le_bytes(input.array());
    let secs = u64::from_le_bytes(input.array()) % (MAX_SECS + 1);
    let nanos = u32::from_le_bytes(input.array()) % 1_000_000_000;
    let d = if secs == MAX_SECS {
        Duration::from_secs(secs)
    } else {
        Duration::new(secs, nanos)
    };

    if let Ok(n) = usize::try_from(n) {
        assert_eq!(parse_size(&format_size(n)), Ok(n), "size {n}");
    }
    assert_eq!(parse_duration(&format_duration(d)), Ok(d), "duration {d:?}");
    let decimal = format!("{}.{:09}s", d.as_secs(), d.subsec_nanos());
    assert_eq!(parse_duration(&decimal), Ok(d), "{decimal}");

    let text = String::from_utf8_lossy(input.rest());
    if let Ok(n) = parse_size(&text) {
        assert_eq!(parse_size(&format_size(n)), Ok(n), "{text:?} → {n}");
    }
    let parsed = parse_duration(&text);
    if let Ok(d) = parsed {
        assert!(d <= Duration::from_secs(MAX_SECS), "{text:?} → {d:?}");
        assert_eq!(
            parse_duration(&format_duration(d)),
            Ok(d),
            "{text:?} → {d:?}"
        );
    }
    if let Some(want) = exact_decimal(&text) {
        match want {
            Some(ns) => assert_eq!(
                parsed.map(|d| d.as_nanos()),
                Ok(ns),
                "{text:?} is {ns} ns exactly"
            ),
            None => assert!(parsed.is_err(), "{text:?} is over 10⁹ s: {parsed:?}"),
        }
    }
}

/// For `<digits>.<digits><unit>` (after trimming; at most 24 significant fractional
/// digits): `Some(Some(ns))`, the exact value rounded half up to the nanosecond, or
/// `Some(None)` when over `MAX_SECS`; `None` for any other text (not checked here).
/// Plain `u128` division, independent of the parser's digit-by-digit multiplication.
fn exact_decimal(text: &str) -> Option<Option<u128>> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit() && c != '.')?;
    let (num, unit) = t.split_at(split);
    let unit_ns: u128 = match unit.trim() {
        "ns" => 1,
        "us" | "µs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" | "min" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    };
    let (int, frac) = num.split_once('.')?;
    if frac.contains('.') || (int.is_empty() && frac.is_empty()) {
        return None;
    }
    let max = u128::from(MAX_SECS) * 1_000_000_000;
    let int = int.trim_start_matches('0');
    if int.len() > 24 {
        return Some(None);
    }
    let int_ns = int.parse::<u128>().unwrap_or(0) * unit_ns;
    // Computed in u128 (10^24 × 3.6·10^12 fits): longer fractions are not checked here.
    let frac = frac.trim_end_matches('0');
    if frac.len() > 24 {
        return None;
    }
    let scale = 10u128.pow(frac.len() as u32);
    let f = frac.parse::<u128>().unwrap_or(0) * unit_ns;
    let (q, r) = (f / scale, f % scale);
    let ns = int_ns + q + u128::from(2 * r >= scale && scale > 1);
    Some((ns <= max).then_some(ns))
}
