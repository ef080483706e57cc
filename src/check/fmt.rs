//! Numbers as the report prints them: `100,000`, `1.6 GiB`, `1.25 Gbit/s`.

/// `1234567` → `1,234,567`.
pub fn count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A float count, rounded: `2500000.0` → `2,500,000`; below 10, one decimal (`0.5`).
pub fn countf(v: f64) -> String {
    if v < 10.0 && v.fract() != 0.0 {
        format!("{v:.1}")
    } else {
        count(v.round().max(0.0) as u64)
    }
}

/// Bytes in binary units: `512 B`, `16 KiB`, `1.6 GiB`.
pub fn bytes(v: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = v.max(0.0);
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 || v >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0} {}", UNITS[unit])
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Bits per second in decimal units, as NICs are rated: `850 Mbit/s`, `1.25 Gbit/s`.
pub fn bits(v: f64) -> String {
    const UNITS: [&str; 4] = ["bit/s", "kbit/s", "Mbit/s", "Gbit/s"];
    let mut v = v.max(0.0);
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if v >= 100.0 || unit == 0 {
        format!("{v:.0} {}", UNITS[unit])
    } else {
        format!("{v:.2} {}", UNITS[unit])
    }
}

/// Cores with two decimals (`0.90`), or more below 0.01 (`0.0014`).
pub fn cores(v: f64) -> String {
    if v > 0.0 && v < 0.01 {
        format!("{v:.4}")
    } else {
        format!("{v:.2}")
    }
}

/// A ratio as a percentage: `0.68` → `68%`.
pub fn pct(v: f64) -> String {
    if v > 0.0 && v < 0.01 {
        format!("{:.2}%", v * 100.0)
    } else {
        format!("{:.0}%", v * 100.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(countf(2_500_000.4), "2,500,000");
        assert_eq!(countf(0.5), "0.5");
        assert_eq!(bytes(512.0), "512 B");
        assert_eq!(bytes(16_384.0), "16 KiB");
        assert_eq!(bytes(1.5 * 1024.0 * 1024.0 * 1024.0), "1.5 GiB");
        assert_eq!(bits(12_480_000.0), "12.48 Mbit/s");
        assert_eq!(bits(850e6), "850 Mbit/s");
        assert_eq!(cores(0.0013), "0.0013");
        assert_eq!(cores(1.2213), "1.22");
        assert_eq!(pct(0.675), "68%");
        assert_eq!(pct(0.0005), "0.05%");
    }
}
