//! Kubernetes resource quantities (`500m`, `2`, `1Gi`, `10500m`, `2k`, `1e3`).
//!
//! A [`Quantity`] is held exactly, in nano-units, so values survive a parse/print round trip
//! and milli-value arithmetic matches Kubernetes' (`MilliValue` rounds away from zero). `Display`
//! prints the canonical form a Go API server sends: decimal quantities with the largest SI
//! suffix that keeps the number whole (`3000m` → `3`, `2000` → `2k`, `1500` stays `1500`),
//! binary quantities with the largest power-of-1024 suffix that does.
//!
//! ```
//! use promhpa_core::quantity::Quantity;
//! assert_eq!(Quantity::from_milli(120).to_string(), "120m");
//! assert_eq!(Quantity::from_milli(3000).to_string(), "3");
//! assert_eq!(Quantity::from_milli(2_000_000).to_string(), "2k");
//! let q: Quantity = "1Gi".parse().unwrap();
//! assert_eq!(q.milli_value(), 1_073_741_824_000);
//! assert_eq!(q.to_string(), "1Gi");
//! ```

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// How a quantity is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// `m`, ``, `k`, `M`... suffixes.
    DecimalSi,
    /// `Ki`, `Mi`, `Gi`... suffixes.
    BinarySi,
    /// `e3`, `e6`... exponents.
    DecimalExponent,
}

/// An exact Kubernetes quantity.
#[derive(Debug, Clone, Copy)]
pub struct Quantity {
    nanos: i128,
    format: Format,
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.nanos == other.nanos
    }
}
impl Eq for Quantity {}
impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.nanos.cmp(&other.nanos)
    }
}

/// Why a quantity string could not be parsed: not a quantity's form (Kubernetes' words), or
/// a magnitude beyond what is held here (about ±1.7e29).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': \"{0}\"")]
    Form(String),
    #[error("quantity \"{0}\" is too large: at most about 1.7e29 is held")]
    TooLarge(String),
}

const NANO: i128 = 1_000_000_000;

impl Quantity {
    pub fn zero() -> Self {
        Quantity {
            nanos: 0,
            format: Format::DecimalSi,
        }
    }

    /// `NewMilliQuantity(milli, DecimalSI)`.
    pub fn from_milli(milli: i64) -> Self {
        Quantity {
            nanos: i128::from(milli) * 1_000_000,
            format: Format::DecimalSi,
        }
    }

    /// A whole number, printed in decimal SI.
    pub fn from_i64(value: i64) -> Self {
        Quantity {
            nanos: i128::from(value) * NANO,
            format: Format::DecimalSi,
        }
    }

    /// A float rounded to the nearest milli-unit; `None` for NaN, ±Inf and magnitudes of
    /// [`Quantity::MAX_F64`] or more, whose milli-units do not fit an int64 (Kubernetes'
    /// `MilliValue` would read them as garbage or 0). (prometheus-adapter truncates toward
    /// zero and turns NaN, like any value beyond that range, into -9223372036854775808m;
    /// promhpa rounds and refuses.)
    pub fn from_f64_milli(value: f64) -> Option<Self> {
        if !value.is_finite() || value.abs() >= Self::MAX_F64 {
            return None;
        }
        Some(Self::from_milli((value * 1000.0).round() as i64))
    }

    /// The magnitude from which [`Quantity::from_f64_milli`] refuses a float: its
    /// milli-units would not fit an int64.
    pub const MAX_F64: f64 = 9.2e15;

    pub fn format(&self) -> Format {
        self.format
    }

    /// The same amount, printed in `format` (`BinarySi` for bytes: `128Mi`).
    pub fn with_format(mut self, format: Format) -> Self {
        self.format = format;
        self
    }

    /// The value in milli-units, rounded away from zero as Kubernetes' `MilliValue` does
    /// (`1n` is 1m, `-1500u` is -2m).
    pub fn milli_value(&self) -> i64 {
        let m = div_away_from_zero(self.nanos, 1_000_000);
        m.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }

    /// The value in whole units, rounded away from zero as Kubernetes' `Value` does.
    pub fn value(&self) -> i64 {
        let v = div_away_from_zero(self.nanos, NANO);
        v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }

    /// The value as a float (`AsApproximateFloat64`).
    pub fn as_f64(&self) -> f64 {
        self.nanos as f64 / 1e9
    }

    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    /// The sum, as Kubernetes' `Add` makes it (in `self`'s format); `None` beyond what a
    /// quantity holds here.
    pub fn checked_add(&self, other: &Quantity) -> Option<Quantity> {
        Some(Quantity {
            nanos: self.nanos.checked_add(other.nanos)?,
            format: self.format,
        })
    }
}

/// `a / b` (`b` > 0), a remainder rounding the quotient away from zero.
fn div_away_from_zero(a: i128, b: i128) -> i128 {
    let q = a / b;
    match a % b {
        0 => q,
        r if r > 0 => q + 1,
        _ => q - 1,
    }
}

fn div_ceil(a: i128, b: i128) -> i128 {
    let q = a / b;
    if a % b != 0 && a > 0 {
        q + 1
    } else {
        q
    }
}

impl FromStr for Quantity {
    type Err = QuantityError;
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = || QuantityError::Form(input.to_string());
        let too_large = || QuantityError::TooLarge(input.to_string());
        let s = input;
        if s.is_empty() {
            return Err(err());
        }
        let (negative, rest) = match s.as_bytes()[0] {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, suffix) = rest.split_at(num_end);
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return Err(err());
        }
        let (int_part, frac_part) = num.split_once('.').unwrap_or((num, ""));
        let digits = format!("{int_part}{frac_part}");
        let mut mantissa: i128 = 0;
        let mut scale: i32 = -(frac_part.len() as i32);
        for (i, d) in digits.bytes().enumerate() {
            if mantissa > i128::MAX / 100 {
                // Keep precision bounded: drop further digits, rounding up below.
                let dropped = &digits[i..];
                scale += dropped.len() as i32;
                if dropped.bytes().any(|b| b != b'0') {
                    mantissa += 1;
                }
                break;
            }
            mantissa = mantissa * 10 + i128::from(d - b'0');
        }
        let (format, dec_exp, bin_exp): (Format, i32, u32) = match suffix {
            "" => (Format::DecimalSi, 0, 0),
            "n" => (Format::DecimalSi, -9, 0),
            "u" => (Format::DecimalSi, -6, 0),
            "m" => (Format::DecimalSi, -3, 0),
            "k" => (Format::DecimalSi, 3, 0),
            "M" => (Format::DecimalSi, 6, 0),
            "G" => (Format::DecimalSi, 9, 0),
            "T" => (Format::DecimalSi, 12, 0),
            "P" => (Format::DecimalSi, 15, 0),
            "E" => (Format::DecimalSi, 18, 0),
            "Ki" => (Format::BinarySi, 0, 10),
            "Mi" => (Format::BinarySi, 0, 20),
            "Gi" => (Format::BinarySi, 0, 30),
            "Ti" => (Format::BinarySi, 0, 40),
            "Pi" => (Format::BinarySi, 0, 50),
            "Ei" => (Format::BinarySi, 0, 60),
            e if e.starts_with(['e', 'E']) => {
                let exp: i32 = e[1..].parse().map_err(|_| err())?;
                if exp > 40 {
                    return Err(too_large());
                }
                if exp < -40 {
                    return Err(err());
                }
                (Format::DecimalExponent, exp, 0)
            }
            _ => return Err(err()),
        };
        // nanos = mantissa * 10^(scale + dec_exp + 9) * 2^bin_exp, rounded up.
        let mut nanos = mantissa
            .checked_mul(1i128 << bin_exp)
            .ok_or_else(too_large)?;
        let p = scale + dec_exp + 9;
        if p >= 0 {
            nanos = nanos
                .checked_mul(10i128.checked_pow(p as u32).ok_or_else(too_large)?)
                .ok_or_else(too_large)?;
        } else {
            let div = 10i128.checked_pow((-p) as u32).unwrap_or(i128::MAX);
            nanos = div_ceil(nanos, div);
        }
        Ok(Quantity {
            nanos: if negative { -nanos } else { nanos },
            format,
        })
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nanos == 0 {
            return f.write_str("0");
        }
        let sign = if self.nanos < 0 { "-" } else { "" };
        let abs = self.nanos.unsigned_abs();
        if self.format == Format::BinarySi && abs % (NANO as u128) == 0 {
            let whole = abs / NANO as u128;
            // Kubernetes prints binary quantities below 1024 in decimal form.
            if whole >= 1024 {
                let mut v = whole;
                let mut i = 0;
                while v % 1024 == 0 && i < 6 {
                    v /= 1024;
                    i += 1;
                }
                let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][i];
                return write!(f, "{sign}{v}{suffix}");
            }
        }
        // Decimal: the largest exponent (multiple of 3, from -9 up) keeping the mantissa whole.
        let mut mantissa = abs;
        let mut exp: i32 = -9;
        while mantissa % 1000 == 0 && exp < 18 {
            mantissa /= 1000;
            exp += 3;
        }
        if self.format == Format::DecimalExponent {
            return if exp == 0 {
                write!(f, "{sign}{mantissa}")
            } else {
                write!(f, "{sign}{mantissa}e{exp}")
            };
        }
        let suffix = match exp {
            -9 => "n",
            -6 => "u",
            -3 => "m",
            0 => "",
            3 => "k",
            6 => "M",
            9 => "G",
            12 => "T",
            15 => "P",
            _ => "E",
        };
        write!(f, "{sign}{mantissa}{suffix}")
    }
}

impl serde::Serialize for Quantity {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Quantity {
    /// Accepts a string (`"500m"`) or a plain number (`5`, `0.5`), as YAML users write both.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Quantity;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a Kubernetes quantity such as \"500m\" or 2")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Quantity, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Quantity, E> {
                Ok(Quantity::from_i64(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Quantity, E> {
                i64::try_from(v)
                    .map(Quantity::from_i64)
                    .map_err(|_| E::custom("quantity out of range"))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Quantity, E> {
                format!("{v}").parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        match s.parse() {
            Ok(q) => q,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn canonical_forms() {
        for (input, want) in [
            ("120m", "120m"),
            ("3000m", "3"),
            ("10500m", "10500m"),
            ("2000", "2k"),
            ("1500", "1500"),
            ("0.5", "500m"),
            ("1.5k", "1500"),
            ("0", "0"),
            ("-120m", "-120m"),
            ("1Gi", "1Gi"),
            ("1024Mi", "1Gi"),
            ("1536Mi", "1536Mi"),
            ("512", "512"),
            ("1e3", "1e3"),
            ("100n", "100n"),
            ("1u", "1u"),
            ("5", "5"),
        ] {
            assert_eq!(q(input).to_string(), want, "{input}");
        }
        assert_eq!(Quantity::from_milli(4958).to_string(), "4958m");
    }

    #[test]
    fn milli_value_rounds_away_from_zero() {
        assert_eq!(q("1n").milli_value(), 1);
        assert_eq!(q("500m").milli_value(), 500);
        assert_eq!(q("2").milli_value(), 2000);
        assert_eq!(q("1Ki").value(), 1024);
        assert_eq!(q("-1n").milli_value(), -1);
        assert_eq!(q("-1500u").milli_value(), -2);
        assert_eq!(q("-1500m").value(), -2);
        assert_eq!(q("-2").milli_value(), -2000);
        assert_eq!(
            q("1500u")
                .checked_add(&q("-1500u"))
                .map(|q| q.milli_value()),
            Some(0)
        );
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "m", "1x", "1.2.3", "--1", "1 m", "abc", "1e", "1Kb"] {
            assert!(
                matches!(bad.parse::<Quantity>(), Err(QuantityError::Form(_))),
                "{bad}"
            );
        }
        // Well-formed but beyond what is held: said so, not blamed on the form.
        for big in ["1e30", "1e41", "999999999999999999999E"] {
            assert!(
                matches!(big.parse::<Quantity>(), Err(QuantityError::TooLarge(_))),
                "{big}"
            );
        }
    }

    #[test]
    fn floats_never_become_garbage() {
        assert_eq!(
            Quantity::from_f64_milli(9.1e15).map(|q| q.milli_value()),
            Some(9_100_000_000_000_000_000)
        );
        assert_eq!(Quantity::from_f64_milli(9.3e15), None);
        assert_eq!(Quantity::from_f64_milli(-1e300), None);
        assert_eq!(Quantity::from_f64_milli(f64::NAN), None);
        assert_eq!(Quantity::from_f64_milli(f64::INFINITY), None);
        assert_eq!(
            Quantity::from_f64_milli(0.1204).map(|q| q.to_string()),
            Some("120m".into())
        );
        assert_eq!(
            Quantity::from_f64_milli(4.9585).map(|q| q.to_string()),
            Some("4959m".into())
        );
    }
}
