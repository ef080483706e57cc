//! The human units every flag of `ringcast` and `loadgen` accepts, parsed in one place:
//! sizes (`65536`, `64KiB`, `1MiB`; `K`/`M`/`G` alone are binary like `KiB`, `KB`/`MB`/`GB`
//! decimal) and durations (`500ms`, `5s`, `1.5s`, `2m`; a unit is required except for `0`).
//! Used by clap's `value_parser`, so a bad value becomes clap's usage error naming the flag
//! (exit code 2).

use std::time::Duration;

/// `1234`, `64KiB`, `1MiB`, `2GiB`, `10KB` (×1000), `1MB`, `1GB`; case-insensitive suffix,
/// optional space.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(format!(
            "'{s}' is not a size (examples: 65536, 64KiB, 1MiB)"
        ));
    }
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is too large a number"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "k" => 1 << 10,
        "mib" | "m" => 1 << 20,
        "gib" | "g" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        other => {
            return Err(format!(
                "unknown size unit '{other}' in '{s}' (use B, KiB, MiB, GiB, KB, MB, GB)"
            ));
        }
    };
    n.checked_mul(mult)
        .and_then(|v| usize::try_from(v).ok())
        .ok_or_else(|| format!("'{s}' is too large"))
}

/// `500ms`, `5s`, `1.5s`, `2m`, `1h`, `250us`, `100ns`; `0` alone means zero (used for
/// "disabled"). Exact: decimals are rounded half up to the nanosecond.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    /// Longest duration accepted, in seconds (about 31 years).
    const MAX_SECS: u64 = 1_000_000_000;
    let t = s.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let not_a_duration = || format!("'{s}' is not a duration (examples: 500ms, 5s, 2m)");
    if num.is_empty() {
        return Err(not_a_duration());
    }
    let unit_ns: u64 = match unit.trim() {
        "ns" => 1,
        "us" | "µs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" | "min" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        "" => return Err(format!("'{s}' needs a unit (examples: 500ms, 5s, 2m)")),
        other => {
            return Err(format!(
                "unknown duration unit '{other}' in '{s}' (use ns, us, ms, s, m, h)"
            ));
        }
    };
    let out_of_range = || format!("'{s}' is out of range");
    let nanos: u128 = match num.split_once('.') {
        None => {
            let n: u128 = num.parse().map_err(|_| out_of_range())?;
            n.checked_mul(u128::from(unit_ns))
                .ok_or_else(out_of_range)?
        }
        Some((int, frac)) => {
            if frac.contains('.') || (int.is_empty() && frac.is_empty()) {
                return Err(not_a_duration());
            }
            decimal_nanos(int, frac, unit_ns).ok_or_else(out_of_range)?
        }
    };
    if nanos > u128::from(MAX_SECS) * 1_000_000_000 {
        return Err(out_of_range());
    }
    let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| out_of_range())?;
    let sub = u32::try_from(nanos % 1_000_000_000).map_err(|_| out_of_range())?;
    Ok(Duration::new(secs, sub))
}

/// `int.frac` × `unit_ns` (both digit strings, either may be empty), rounded half up to
/// whole nanoseconds, exactly: `f64` is off by up to ~100 ns from 10⁷ s on, which breaks
/// "rounded to the nanosecond". `None` when it does not fit in `u128`.
fn decimal_nanos(int: &str, frac: &str, unit_ns: u64) -> Option<u128> {
    let unit = u128::from(unit_ns);
    let int = int.trim_start_matches('0');
    let whole = if int.is_empty() {
        0
    } else {
        int.parse::<u128>().ok()?.checked_mul(unit)?
    };
    // Long multiplication of the fraction's digits by the unit, from the last digit: the
    // carry out of the first digit is the whole nanoseconds, and the digit left there is
    // the product's first digit below a nanosecond, which alone decides half-up rounding.
    let (mut carry, mut tenths) = (0u128, 0u128);
    for d in frac.bytes().rev() {
        let v = u128::from(d.wrapping_sub(b'0')) * unit + carry;
        (carry, tenths) = (v / 10, v % 10);
    }
    whole.checked_add(carry + u128::from(tenths >= 5))
}

/// Render a size the way the flags accept it (for `--print-config` and logs).
pub fn format_size(n: usize) -> String {
    const UNITS: [(usize, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (m, u) in UNITS {
        if n >= m && n.is_multiple_of(m) {
            return format!("{}{u}", n / m);
        }
    }
    n.to_string()
}

/// Render a duration the way the flags accept it, exactly: the largest of `s`, `ms`, `us`,
/// `ns` that divides it (`"10s"`, `"500ms"`, `"0"`), so `parse_duration` gives it back.
pub fn format_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0".into();
    }
    for (unit_ns, unit) in [(1_000_000_000, "s"), (1_000_000, "ms"), (1_000, "us")] {
        if ns.is_multiple_of(unit_ns) {
            return format!("{}{unit}", ns / unit_ns);
        }
    }
    format!("{ns}ns")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("1 mib"), Ok(1 << 20));
        assert_eq!(parse_size("10KB"), Ok(10_000));
        assert!(parse_size("").is_err());
        assert!(parse_size("KiB").is_err());
        assert!(parse_size("12XB").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("99999999999999999999").is_err());
        assert_eq!(format_size(1 << 20), "1MiB");
        assert_eq!(format_size(1000), "1000");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("5parsecs").is_err());
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(Duration::from_secs(5)), "5s");
    }

    #[test]
    fn exact_durations_round_trip() {
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("100ns"), Ok(Duration::from_nanos(100)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0.001s"), Ok(Duration::from_millis(1)));
        assert!(parse_duration("1000000001s").is_err());
        assert!(parse_duration("99999999999999999999999999999999999999999h").is_err());
        assert!(parse_duration("1.2.3s").is_err());
        assert!(parse_duration(".s").is_err());
        assert!(parse_duration("s").is_err());
        assert_eq!(format_duration(Duration::ZERO), "0");
        assert_eq!(format_duration(Duration::from_secs(120)), "120s");
        assert_eq!(format_duration(Duration::from_micros(250)), "250us");
        assert_eq!(format_duration(Duration::new(1, 1)), "1000000001ns");
        for d in [
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::from_micros(1500),
            Duration::from_millis(1500),
            Duration::from_secs(1_000_000_000),
            Duration::new(7, 123_456_789),
        ] {
            assert_eq!(parse_duration(&format_duration(d)), Ok(d), "{d:?}");
        }
        for n in [0, 1, 1000, 1 << 10, 65536, 3 << 20, 5 << 30, 1_000_001] {
            assert_eq!(parse_size(&format_size(n)), Ok(n), "{n}");
        }
    }
}
