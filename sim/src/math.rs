//! The few distributions the simulator needs, without a statistics dependency.

use rand::Rng;

/// Complementary error function (Numerical Recipes' `erfcc`, fractional error < 1.2e-7).
pub fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

/// P(X <= x) for X lognormal with the given median and sigma (sigma 0: a fixed `median`).
pub fn lognormal_cdf(x: f64, median: f64, sigma: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if sigma <= 0.0 {
        return if x >= median { 1.0 } else { 0.0 };
    }
    let z = (x.ln() - median.ln()) / sigma;
    0.5 * erfc(-z / std::f64::consts::SQRT_2)
}

/// A standard normal draw (Box-Muller; always consumes two uniforms).
pub fn standard_normal<R: Rng>(rng: &mut R) -> f64 {
    let u1 = 1.0 - rng.random::<f64>(); // (0, 1]
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// splitmix64: derives independent seeds for the random streams.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The seed of stream (`a`, `b`) of a scenario seed.
pub fn stream(seed: u64, a: u64, b: u64) -> u64 {
    mix(mix(mix(seed) ^ a) ^ b.wrapping_mul(0xD6E8_FEB8_6659_FD93))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdf_is_sane() {
        assert!((lognormal_cdf(2.0, 2.0, 0.5) - 0.5).abs() < 1e-6);
        // One sigma above the median: Phi(1) = 0.8413.
        assert!((lognormal_cdf(2.0 * 0.5f64.exp(), 2.0, 0.5) - 0.841_344_7).abs() < 1e-6);
        assert_eq!(lognormal_cdf(1.0, 2.0, 0.0), 0.0);
        assert_eq!(lognormal_cdf(0.0, 2.0, 0.5), 0.0);
    }
}
