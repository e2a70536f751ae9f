//! Deterministic random streams and the few distributions the generator draws from.
//!
//! Every generated value comes from a ChaCha8 stream keyed by the configured seed and
//! a path: what is being drawn ([`Purpose`]) and for whom (practice, person, record).
//! Streams never share state, so the output is byte-identical whatever the thread
//! scheduling, and changing one part of the generator (say, a defect rate) does not
//! shift the values drawn anywhere else.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A random stream.
pub type Stream = ChaCha8Rng;

/// What a stream is drawn for; part of its key.
#[derive(Debug, Clone, Copy)]
pub enum Purpose {
    Network = 1,
    Person = 2,
    Registration = 3,
    Profile = 4,
    Practice = 5,
    Clinical = 6,
    Fates = 7,
    Defects = 8,
    Identifiers = 9,
}

/// The SplitMix64 finaliser: a bijection on `u64` with good avalanche.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A 64-bit key for (seed, purpose, a, b).
pub fn key(seed: u64, purpose: Purpose, a: u64, b: u64) -> u64 {
    let k = splitmix64(seed ^ ((purpose as u64) << 56));
    splitmix64(splitmix64(k ^ a).wrapping_add(b))
}

/// The stream for (seed, purpose, a, b).
pub fn stream(seed: u64, purpose: Purpose, a: u64, b: u64) -> Stream {
    ChaCha8Rng::seed_from_u64(key(seed, purpose, a, b))
}

/// A uniform value in `[0, 1)`.
pub fn unit(rng: &mut Stream) -> f64 {
    rng.random::<f64>()
}

/// True with probability `p` (values outside `[0, 1]` saturate).
pub fn chance(rng: &mut Stream, p: f64) -> bool {
    unit(rng) < p
}

/// A normal deviate (Box–Muller; one value per call, so the stream position
/// depends only on how many values were drawn).
pub fn normal(rng: &mut Stream, mean: f64, sd: f64) -> f64 {
    let u1 = 1.0 - unit(rng);
    let u2 = unit(rng);
    mean + sd * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A normal deviate clamped to `[lo, hi]`.
pub fn normal_in(rng: &mut Stream, mean: f64, sd: f64, lo: f64, hi: f64) -> f64 {
    normal(rng, mean, sd).clamp(lo, hi)
}

/// An exponential deviate with the given mean.
pub fn exponential(rng: &mut Stream, mean: f64) -> f64 {
    -mean * (1.0 - unit(rng)).ln()
}

/// A uniform integer in `lo..=hi`; `lo` when the range is empty.
pub fn between(rng: &mut Stream, lo: i32, hi: i32) -> i32 {
    if hi <= lo {
        lo
    } else {
        rng.random_range(lo..=hi)
    }
}

/// A uniform index below `n` (`n > 0`).
pub fn index(rng: &mut Stream, n: usize) -> usize {
    rng.random_range(0..n)
}

/// A uniformly chosen item of a non-empty slice.
pub fn pick<'a, T>(rng: &mut Stream, items: &'a [T]) -> &'a T {
    &items[index(rng, items.len())]
}

/// An index chosen with probability proportional to `weights`.
pub fn weighted(rng: &mut Stream, weights: &[f64]) -> usize {
    let total: f64 = weights.iter().sum();
    let mut x = unit(rng) * total;
    for (i, w) in weights.iter().enumerate() {
        if x < *w {
            return i;
        }
        x -= w;
    }
    weights.len() - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let draw = |purpose, a, b| unit(&mut stream(7, purpose, a, b));
        assert_eq!(draw(Purpose::Person, 1, 0), draw(Purpose::Person, 1, 0));
        let distinct = [
            draw(Purpose::Person, 1, 0),
            draw(Purpose::Person, 2, 0),
            draw(Purpose::Clinical, 1, 0),
            draw(Purpose::Person, 1, 1),
        ];
        for (i, a) in distinct.iter().enumerate() {
            for b in &distinct[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn distributions_stay_in_range() {
        let mut rng = stream(1, Purpose::Network, 0, 0);
        for _ in 0..1000 {
            assert!((3..=9).contains(&between(&mut rng, 3, 9)));
            assert!((1.0..=2.0).contains(&normal_in(&mut rng, 1.5, 3.0, 1.0, 2.0)));
            assert!(exponential(&mut rng, 5.0) >= 0.0);
            assert!(weighted(&mut rng, &[0.0, 1.0, 0.0]) == 1);
        }
        assert_eq!(between(&mut rng, 5, 2), 5);
    }
}
