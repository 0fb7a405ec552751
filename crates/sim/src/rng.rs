//! The simulator's noise source: xoshiro256** seeded through splitmix64, normal deviates by the
//! Marsaglia polar method.
//!
//! Hand-rolled on purpose instead of the `rand` crate: `rand` documents that its value streams may
//! change between versions, and the simulator promises that a seed names one noise sequence for
//! ever, so tests can assert exact readings and a demo can be replayed months later. The
//! algorithms below are fixed by their published reference implementations.

/// xoshiro256** (Blackman and Vigna, 2018), a small fast generator with a 2^256 − 1 period.
#[derive(Debug, Clone)]
pub(crate) struct Xoshiro256 {
    state: [u64; 4],
    /// The second deviate of the last polar-method pair, handed out on the next call.
    spare: Option<f64>,
}

/// splitmix64, the seeding function the xoshiro authors recommend: it turns any seed, including
/// 0, into a well-mixed, never all-zero state.
fn splitmix64(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Xoshiro256 {
    /// A generator whose whole sequence is determined by `seed`.
    pub(crate) fn from_seed(seed: u64) -> Self {
        let mut sm = seed;
        let state = [
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
        ];
        Self { state, spare: None }
    }

    /// Next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        let [s0, s1, s2, s3] = &mut self.state;
        let result = s1.wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = *s1 << 17;
        *s2 ^= *s0;
        *s3 ^= *s1;
        *s1 ^= *s2;
        *s0 ^= *s3;
        *s2 ^= t;
        *s3 = s3.rotate_left(45);
        result
    }

    /// Uniform in [0, 1) with 53 random bits, the full precision of an `f64` mantissa.
    pub(crate) fn next_f64(&mut self) -> f64 {
        // Exact: a 53-bit integer times a power of two.
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A standard normal deviate, N(0, 1).
    pub(crate) fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        // The polar method needs only ln and sqrt (no trigonometry) and accepts π/4 ≈ 79 % of
        // candidate pairs, so the loop ends after 1.27 rounds on average.
        loop {
            let x = 2.0 * self.next_f64() - 1.0;
            let y = 2.0 * self.next_f64() - 1.0;
            let s = x * x + y * y;
            if s > 0.0 && s < 1.0 {
                let factor = (-2.0 * s.ln() / s).sqrt();
                self.spare = Some(y * factor);
                return x * factor;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_matches_reference_vector() {
        // First outputs of the reference splitmix64.c for seed 1234567.
        let mut x = 1234567u64;
        let got: Vec<u64> = (0..3).map(|_| splitmix64(&mut x)).collect();
        assert_eq!(
            got,
            [
                6457827717110365317,
                3203168211198807973,
                9817491932198370423
            ]
        );
    }

    #[test]
    fn same_seed_same_sequence_different_seed_different_sequence() {
        let mut a = Xoshiro256::from_seed(42);
        let mut b = Xoshiro256::from_seed(42);
        let mut c = Xoshiro256::from_seed(43);
        let sa: Vec<u64> = (0..16).map(|_| a.next_u64()).collect();
        let sb: Vec<u64> = (0..16).map(|_| b.next_u64()).collect();
        let sc: Vec<u64> = (0..16).map(|_| c.next_u64()).collect();
        assert_eq!(sa, sb);
        assert_ne!(sa, sc);
    }

    #[test]
    fn xoshiro_matches_reference_vector() {
        // The reference implementation's output for the state {1, 2, 3, 4} (also the test
        // vector of the rand_xoshiro crate).
        let mut r = Xoshiro256 {
            state: [1, 2, 3, 4],
            spare: None,
        };
        let got: Vec<u64> = (0..10).map(|_| r.next_u64()).collect();
        assert_eq!(
            got,
            [
                11520,
                0,
                1509978240,
                1215971899390074240,
                1216172134540287360,
                607988272756665600,
                16172922978634559625,
                8476171486693032832,
                10595114339597558777,
                2904607092377533576,
            ]
        );
    }

    #[test]
    fn uniform_is_in_unit_interval() {
        let mut r = Xoshiro256::from_seed(7);
        for _ in 0..10_000 {
            let u = r.next_f64();
            assert!((0.0..1.0).contains(&u), "{u}");
        }
    }

    #[test]
    fn normal_has_unit_moments() {
        let mut r = Xoshiro256::from_seed(2024);
        let n = 200_000;
        let xs: Vec<f64> = (0..n).map(|_| r.normal()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        // Standard error of the mean is 1/√n ≈ 0.0022; of the variance √(2/n) ≈ 0.0032.
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "variance {var}");
        let beyond_3sigma = xs.iter().filter(|x| x.abs() > 3.0).count() as f64 / n as f64;
        assert!((beyond_3sigma - 0.0027).abs() < 0.001, "{beyond_3sigma}");
    }
}
