//! Sizes on the command line: `512` (MiB), `512M`, `5G`, `1T`, `1.5G`.
//!
//! Units are binary (`G` is GiB). The wire speaks whole MiB, so a size
//! that is not a whole number of MiB is refused here, with the reason,
//! rather than rounded behind the user's back.

/// KiB in one of each unit the parser knows.
const UNITS: &[(&str, u128)] = &[
    ("k", 1),
    ("kib", 1),
    ("m", 1 << 10),
    ("mib", 1 << 10),
    ("g", 1 << 20),
    ("gib", 1 << 20),
    ("t", 1 << 30),
    ("tib", 1 << 30),
];

/// The largest size accepted, in MiB (the wire's `size_mib` is a u64, but
/// no pool holds more than an exbibyte).
const MAX_MIB: u128 = 1 << 40;

/// Parses a size given on the command line into MiB.
///
/// A bare number is MiB; a suffix `K`, `M`, `G`, `T` (or `KiB`, `MiB`,
/// `GiB`, `TiB`, any case) picks the unit. A decimal fraction is allowed
/// when the result is a whole number of MiB (`1.5G` is 1536 MiB, `0.1M`
/// is refused). Zero, negative numbers and anything else are refused with
/// a message saying why.
pub fn parse_size_mib(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("a size is needed, such as 512M or 5G".into());
    }
    if trimmed.starts_with('-') {
        return Err(format!(
            "size {text:?} is negative; sizes are positive, such as 512M or 5G"
        ));
    }

    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, suffix) = trimmed.split_at(split);
    let suffix = suffix.trim().to_ascii_lowercase();
    let kib_per_unit = if suffix.is_empty() {
        1 << 10
    } else {
        match UNITS.iter().find(|(name, _)| *name == suffix) {
            Some((_, kib)) => *kib,
            None => {
                return Err(format!(
                    "size {text:?} has an unknown unit {suffix:?}; use M, G or T (binary units), or a bare number of MiB"
                ))
            }
        }
    };

    let (whole, fraction) = match number.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (number, ""),
    };
    let is_digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !is_digits(whole) || !is_digits(fraction) {
        return Err(format!(
            "size {text:?} is not a number; use e.g. 512, 512M, 5G or 1.5G"
        ));
    }
    // More digits than this cannot describe a size kiln accepts.
    if whole.len() + fraction.len() > 30 {
        return Err(format!("size {text:?} is too large"));
    }

    // Exact arithmetic: value = digits / 10^scale units.
    let digits: u128 = format!("{whole}{fraction}")
        .parse()
        .map_err(|_| format!("size {text:?} is not a number"))?;
    let scale = 10u128.pow(fraction.len() as u32);
    let kib_times_scale = digits * kib_per_unit;
    if kib_times_scale % (scale << 10) != 0 {
        return Err(format!(
            "size {text:?} is not a whole number of MiB; kiln sizes volumes in MiB"
        ));
    }
    let mib = kib_times_scale / (scale << 10);
    if mib == 0 {
        return Err(format!(
            "size {text:?} is zero; a volume needs at least 1 MiB"
        ));
    }
    if mib > MAX_MIB {
        return Err(format!("size {text:?} is too large"));
    }
    Ok(mib as u64)
}

#[cfg(test)]
mod tests {
    use super::parse_size_mib;

    #[test]
    fn bare_numbers_are_mib() {
        assert_eq!(parse_size_mib("512"), Ok(512));
        assert_eq!(parse_size_mib("1"), Ok(1));
    }

    #[test]
    fn suffixes_are_binary_units() {
        assert_eq!(parse_size_mib("512M"), Ok(512));
        assert_eq!(parse_size_mib("512MiB"), Ok(512));
        assert_eq!(parse_size_mib("5G"), Ok(5 * 1024));
        assert_eq!(parse_size_mib("5g"), Ok(5 * 1024));
        assert_eq!(parse_size_mib("5 GiB"), Ok(5 * 1024));
        assert_eq!(parse_size_mib("1T"), Ok(1024 * 1024));
        assert_eq!(parse_size_mib("2048K"), Ok(2));
    }

    #[test]
    fn fractions_that_make_whole_mib_are_accepted() {
        assert_eq!(parse_size_mib("1.5G"), Ok(1536));
        assert_eq!(parse_size_mib("0.5G"), Ok(512));
        assert_eq!(parse_size_mib(".5G"), Ok(512));
        assert_eq!(parse_size_mib("2.0M"), Ok(2));
    }

    #[test]
    fn fractions_of_a_mib_are_refused() {
        let err = parse_size_mib("1.5M").expect_err("1.5M is not whole MiB");
        assert!(err.contains("whole number of MiB"), "{err}");
        assert!(parse_size_mib("0.1G").is_err());
        assert!(parse_size_mib("1536K").is_err());
    }

    #[test]
    fn zero_is_refused() {
        for zero in ["0", "0M", "0.0G", "000"] {
            let err = parse_size_mib(zero).expect_err("zero is not a size");
            assert!(err.contains("zero"), "{zero}: {err}");
        }
    }

    #[test]
    fn negative_sizes_are_refused() {
        let err = parse_size_mib("-5G").expect_err("negative");
        assert!(err.contains("negative"), "{err}");
    }

    #[test]
    fn garbage_is_refused() {
        for bad in [
            "", "abc", "5X", "G", "1.2.3G", "5GG", "1e3", "0x10", " ", "1,5G", ".",
        ] {
            assert!(parse_size_mib(bad).is_err(), "{bad:?} was accepted");
        }
        let err = parse_size_mib("5X").expect_err("unknown unit");
        assert!(err.contains("unknown unit"), "{err}");
    }

    #[test]
    fn absurd_sizes_are_refused() {
        assert!(parse_size_mib("99999999999999999999999999999999999T").is_err());
        assert!(parse_size_mib("2000000T").is_err());
    }
}
