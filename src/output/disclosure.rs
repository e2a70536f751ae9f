//! Disclosure control for counts that leave a practice (NHS England and
//! OpenSAFELY practice): counts of 1 to `threshold` are suppressed, the rest
//! rounded to the nearest `base`; a total is computed from the unrounded
//! counts and then rounded, never summed from rounded cells; and where a
//! suppressed cell could be worked out by subtraction from a shown total,
//! a second cell is suppressed too.
//!
//! A suppressed cell is [`Shown::Suppressed`], never 0: a zero is a true zero.

use serde::{Deserialize, Serialize};

/// How counts are protected. `None` where a policy is optional means off,
/// which callers must announce loudly and record in the run manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Counts from 1 to this (inclusive) are suppressed.
    pub threshold: u64,
    /// Shown counts are rounded to the nearest multiple of this (1: exact).
    pub base: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            threshold: 7,
            base: 5,
        }
    }
}

/// A count as an output shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shown {
    Count(u64),
    Suppressed,
}

impl Shown {
    /// The count, `None` when suppressed.
    pub fn count(self) -> Option<u64> {
        match self {
            Shown::Count(n) => Some(n),
            Shown::Suppressed => None,
        }
    }
}

impl std::fmt::Display for Shown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Shown::Count(n) => write!(f, "{n}"),
            Shown::Suppressed => f.write_str("suppressed"),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error(
        "rounding base 0 is not a rounding; hint: use 1 for exact counts, 5 (the default) or 10"
    )]
    ZeroBase,
}

impl Policy {
    pub fn new(threshold: u64, base: u64) -> Result<Policy, PolicyError> {
        if base == 0 {
            return Err(PolicyError::ZeroBase);
        }
        Ok(Policy { threshold, base })
    }

    /// `n` rounded to the nearest multiple of the base, halves up.
    pub fn round(&self, n: u64) -> u64 {
        (n + self.base / 2) / self.base * self.base
    }

    /// One count on its own.
    pub fn cell(&self, n: u64) -> Shown {
        if (1..=self.threshold).contains(&n) {
            Shown::Suppressed
        } else {
            Shown::Count(self.round(n))
        }
    }

    /// Cells that add up to `total` (practices of a network, rule
    /// combinations of a cohort), and the total. When exactly one cell is
    /// suppressed and the total is shown, the smallest other non-zero cell
    /// is suppressed too, so the first cannot be derived by subtraction.
    pub fn group(&self, cells: &[u64]) -> (Vec<Shown>, Shown) {
        let total: u64 = cells.iter().sum();
        let mut shown: Vec<Shown> = cells.iter().map(|n| self.cell(*n)).collect();
        let total_shown = self.cell(total);
        let suppressed = shown.iter().filter(|s| **s == Shown::Suppressed).count();
        if suppressed == 1 && total_shown != Shown::Suppressed {
            let second = cells
                .iter()
                .enumerate()
                .filter(|(i, n)| **n > 0 && shown[*i] != Shown::Suppressed)
                .min_by_key(|(i, n)| (**n, *i))
                .map(|(i, _)| i);
            // There is one: a lone non-zero cell is its own total, and a
            // suppressed cell's total would be suppressed with it.
            if let Some(i) = second {
                shown[i] = Shown::Suppressed;
            }
        }
        (shown, total_shown)
    }

    /// An attrition: the count remaining after each step, starting with the
    /// base population (non-increasing). Each remaining count is a cell.
    /// With exact counts (base 1), the people a step removes are its
    /// predecessor minus it, so from the first step removing 1 to
    /// `threshold` people onwards every later count is suppressed; with
    /// rounding, the difference of two rounded counts does not give the
    /// removal.
    pub fn attrition(&self, remaining: &[u64]) -> Vec<Shown> {
        let mut hidden = false;
        remaining
            .iter()
            .enumerate()
            .map(|(i, n)| {
                if self.base == 1 && i > 0 {
                    let removed = remaining[i - 1].saturating_sub(*n);
                    hidden |= (1..=self.threshold).contains(&removed);
                }
                if hidden {
                    Shown::Suppressed
                } else {
                    self.cell(*n)
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Shown::{Count as C, Suppressed as S};

    #[test]
    fn cells_under_the_default_policy() {
        // (count, shown): 0 is a true zero; 1-7 suppressed; nearest 5, halves up.
        let cases = [
            (0, C(0)),
            (1, S),
            (7, S),
            (8, C(10)),
            (12, C(10)),
            (13, C(15)),
            (100, C(100)),
            (102, C(100)),
            (103, C(105)),
        ];
        let p = Policy::default();
        for (n, shown) in cases {
            assert_eq!(p.cell(n), shown, "{n}");
        }
    }

    #[test]
    fn other_policies() {
        // (threshold, base, count, shown)
        let cases = [
            (0, 1, 1, C(1)),
            (0, 1, 3, C(3)),
            (10, 10, 10, S),
            (10, 10, 11, C(10)),
            (10, 10, 15, C(20)),
            (5, 1, 6, C(6)),
        ];
        for (threshold, base, n, shown) in cases {
            assert_eq!(Policy::new(threshold, base).unwrap().cell(n), shown);
        }
        assert_eq!(Policy::new(7, 0), Err(PolicyError::ZeroBase));
    }

    #[test]
    fn groups_suppress_a_second_cell_and_total_from_unrounded() {
        // (cells, shown cells, shown total)
        let cases: Vec<(Vec<u64>, Vec<Shown>, Shown)> = vec![
            // Totals come from unrounded counts: 12+12+12 = 36 -> 35, not 30.
            (vec![12, 12, 12], vec![C(10), C(10), C(10)], C(35)),
            // One cell suppressed: the smallest other non-zero goes too.
            (vec![3, 40, 20, 0], vec![S, C(40), S, C(0)], C(65)),
            // Two suppressed already: nothing more.
            (vec![3, 4, 40], vec![S, S, C(40)], C(45)),
            // Ties on the second cell take the first.
            (vec![50, 2, 20, 20], vec![C(50), S, S, C(20)], C(90)),
            // A suppressed total hides nothing more.
            (vec![3, 0], vec![S, C(0)], S),
            // A lone non-zero cell is its own total.
            (vec![0, 9, 0], vec![C(0), C(10), C(0)], C(10)),
            (vec![5, 0, 0, 10], vec![S, C(0), C(0), S], C(15)),
        ];
        let p = Policy::default();
        for (cells, shown, total) in cases {
            assert_eq!(p.group(&cells), (shown, total), "{cells:?}");
        }
    }

    #[test]
    fn attrition() {
        // (threshold, base, remaining, shown)
        let cases: Vec<(u64, u64, Vec<u64>, Vec<Shown>)> = vec![
            (
                7,
                5,
                vec![1000, 997, 600, 5, 0],
                vec![C(1000), C(995), C(600), S, C(0)],
            ),
            // Exact counts: a step removing 3 hides itself and everything after.
            (7, 1, vec![1000, 997, 600, 0], vec![C(1000), S, S, S]),
            (7, 1, vec![1000, 900, 850], vec![C(1000), C(900), C(850)]),
            (0, 1, vec![10, 9], vec![C(10), C(9)]),
        ];
        for (threshold, base, remaining, shown) in cases {
            let p = Policy::new(threshold, base).unwrap();
            assert_eq!(p.attrition(&remaining), shown, "{remaining:?}");
        }
    }
}
