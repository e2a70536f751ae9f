//! The network plan: member practices (ODS codes, suppliers, list sizes), the people
//! registered at each ([`crate::synth::people`]) and their registrations, including
//! moves between member practices ([`crate::synth::registrations`]).
//!
//! Everything here is planned up front and cheaply (no clinical rows), so a person
//! registered at two practices is the same person — same NHS number, birth date and
//! clinical profile — in both practices' extracts even though the practices are
//! written in parallel.
//!
//! NHS numbers come only from the never-issued 999 range (999 000 0000–999 999 9999)
//! and carry valid Modulus 11 check digits; invalid ones are injected later as defects.

use std::collections::BTreeSet;

use crate::nhs_number::check_digit;
use crate::source::manifest::Supplier;
use crate::synth::SynthConfig;
use crate::synth::people::{Person, STREETS};
use crate::synth::registrations::{
    ELSEWHERE_PRACTICES, PriorOrg, RecordPlan, mover_records, native_record,
};
use crate::synth::sampling::{
    Purpose, Stream, between, index, pick, splitmix64, stream, unit, weighted,
};
use crate::synth::schedule::day_number;

/// Share of patients registered at two member practices (one record at each).
const MOVER_SHARE: f64 = 0.02;
/// Most people the 999 range can number: 909,091 of its million nine-digit
/// prefixes have a Modulus 11 check digit. An ICB of a million patients is
/// out of reach without numbers outside the range kept for testing.
pub const MAX_PEOPLE: usize = 900_000;

/// Towns of the (West Yorkshire) network, with their postcode districts.
const TOWNS: &[(&str, &[&str])] = &[
    ("Leeds", &["LS6", "LS7", "LS8", "LS11", "LS12", "LS15"]),
    ("Bradford", &["BD3", "BD5", "BD7", "BD9"]),
    ("Wakefield", &["WF1", "WF2", "WF4"]),
    ("Halifax", &["HX1", "HX2", "HX3"]),
    ("Huddersfield", &["HD1", "HD2", "HD4"]),
];
const PRACTICE_NAMES: &[&str] = &[
    "Surgery",
    "Medical Centre",
    "Health Centre",
    "Medical Practice",
    "Family Practice",
];

#[derive(Debug, Clone)]
pub struct PracticePlan {
    pub index: usize,
    pub ods: String,
    pub supplier: Supplier,
    pub name: String,
    pub town: &'static str,
    pub county: &'static str,
    pub districts: &'static [&'static str],
    pub records: Vec<RecordPlan>,
}

/// The whole network, planned.
#[derive(Debug)]
pub struct Network {
    pub practices: Vec<PracticePlan>,
    pub persons: Vec<Person>,
    /// ODS codes of practices outside the network.
    pub elsewhere: Vec<String>,
    pub movers: u32,
}

impl Network {
    /// Plans the network for a validated configuration.
    pub fn plan(cfg: &SynthConfig) -> Network {
        let as_of = day_number(cfg.as_of);
        let mut rng = stream(cfg.seed, Purpose::Network, 0, 0);
        let n = cfg.practices;
        let suppliers = suppliers(&mut rng, n, cfg.emis_share);
        let codes = ods_codes(&mut rng, n + ELSEWHERE_PRACTICES);
        let weights: Vec<f64> = (0..n).map(|_| 0.7 + 0.6 * unit(&mut rng)).collect();
        let movers = if n >= 2 {
            (cfg.patients as f64 * MOVER_SHARE).round() as usize
        } else {
            0
        };
        let natives = cfg.patients - 2 * movers;
        let counts = apportion(natives, &weights);
        let nhs = nhs_numbers(cfg.seed, natives + movers);

        let mut practices: Vec<PracticePlan> = (0..n)
            .map(|i| {
                let (town, districts) = TOWNS[i % TOWNS.len()];
                let street = pick(&mut rng, STREETS);
                let kind = pick(&mut rng, PRACTICE_NAMES);
                PracticePlan {
                    index: i,
                    ods: codes[i].clone(),
                    supplier: suppliers[i],
                    name: format!("{} {kind}", street.trim_start_matches("The ")),
                    town,
                    county: "West Yorkshire",
                    districts,
                    records: Vec::with_capacity(counts[i] + 2 * movers / n + 1),
                }
            })
            .collect();
        let elsewhere = codes[n..].to_vec();

        let mut persons = Vec::with_capacity(natives + movers);
        for (i, count) in counts.iter().enumerate() {
            for _ in 0..*count {
                let number = persons.len() as u32;
                let person = Person::draw(cfg.seed, number, as_of, nhs[number as usize], 0.08);
                let mut reg = stream(cfg.seed, Purpose::Registration, u64::from(number), 0);
                practices[i]
                    .records
                    .push(native_record(&mut reg, &person, as_of));
                persons.push(person);
            }
        }
        for m in 0..movers {
            let number = persons.len() as u32;
            let mut person = Person::draw(cfg.seed, number, as_of, nhs[number as usize], 2.0);
            let from = weighted(&mut rng, &weights);
            let to = (from + 1 + index(&mut rng, n - 1)) % n;
            let mut reg = stream(cfg.seed, Purpose::Registration, u64::from(number), 0);
            let (left, joined) = mover_records(&mut reg, &mut person, as_of, m as u32, from, to);
            practices[from].records.push(left);
            practices[to].records.push(joined);
            persons.push(person);
        }
        Network {
            practices,
            persons,
            elsewhere,
            movers: movers as u32,
        }
    }

    /// The ODS code of an earlier registration's practice.
    pub fn prior_ods(&self, org: PriorOrg) -> &str {
        match org {
            PriorOrg::Elsewhere(i) => &self.elsewhere[usize::from(i)],
            PriorOrg::Member(i) => &self.practices[usize::from(i)].ods,
        }
    }
}

/// Which practices are EMIS: `round(share × n)`, at least one of each supplier when
/// there are two or more practices and `0 < share < 1`, placed by a seeded shuffle.
fn suppliers(rng: &mut Stream, n: usize, share: f64) -> Vec<Supplier> {
    let mut emis = (share * n as f64).round() as usize;
    if n >= 2 && share > 0.0 && share < 1.0 {
        emis = emis.clamp(1, n - 1);
    }
    let mut out: Vec<Supplier> = (0..n)
        .map(|i| {
            if i < emis {
                Supplier::Emis
            } else {
                Supplier::Tpp
            }
        })
        .collect();
    for i in (1..n).rev() {
        out.swap(i, index(rng, i + 1));
    }
    out
}

/// Distinct ODS-shaped practice codes: a region letter, then five digits ("B82005").
fn ods_codes(rng: &mut Stream, count: usize) -> Vec<String> {
    let letter = *pick(
        rng,
        &[
            'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'J', 'K', 'L', 'M', 'N', 'P',
        ],
    );
    let mut seen = BTreeSet::new();
    let mut codes = Vec::with_capacity(count);
    while codes.len() < count {
        let code = format!(
            "{letter}{}{:03}",
            between(rng, 81, 88),
            between(rng, 1, 999)
        );
        if seen.insert(code.clone()) {
            codes.push(code);
        }
    }
    codes
}

/// Splits `total` into parts proportional to `weights` (largest remainder), each ≥ 1.
fn apportion(total: usize, weights: &[f64]) -> Vec<usize> {
    let sum: f64 = weights.iter().sum();
    let exact: Vec<f64> = weights.iter().map(|w| total as f64 * w / sum).collect();
    let mut parts: Vec<usize> = exact.iter().map(|x| (x.floor() as usize).max(1)).collect();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|a, b| {
        (exact[*b] - exact[*b].floor()).total_cmp(&(exact[*a] - exact[*a].floor()))
    });
    let mut i = 0;
    while parts.iter().sum::<usize>() < total {
        parts[order[i % order.len()]] += 1;
        i += 1;
    }
    while parts.iter().sum::<usize>() > total {
        let largest = (0..parts.len())
            .max_by_key(|j| parts[*j])
            .expect("non-empty");
        parts[largest] -= 1;
    }
    parts
}

/// `count` distinct valid NHS numbers from the 999 range, in a seeded order.
pub fn nhs_numbers(seed: u64, count: usize) -> Vec<u64> {
    const STRIDE: u64 = 387_977; // coprime with 10^6, so k ↦ k·STRIDE mod 10^6 is a permutation
    let offset = splitmix64(seed ^ 0x4E48_5300) % 1_000_000;
    let mut out = Vec::with_capacity(count);
    for k in 0..1_000_000u64 {
        if out.len() == count {
            break;
        }
        let first_nine = 999_000_000 + (k * STRIDE + offset) % 1_000_000;
        let mut digits = [0u8; 9];
        let mut rest = first_nine;
        for d in digits.iter_mut().rev() {
            *d = (rest % 10) as u8;
            rest /= 10;
        }
        if let Some(check) = check_digit(&digits) {
            out.push(first_nine * 10 + u64::from(check));
        }
    }
    assert_eq!(
        out.len(),
        count,
        "the 999 range holds fewer than {count} valid NHS numbers"
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nhs_number::is_valid;

    #[test]
    fn nhs_numbers_are_valid_distinct_and_in_the_999_range() {
        let numbers = nhs_numbers(42, 20_000);
        let distinct: BTreeSet<u64> = numbers.iter().copied().collect();
        assert_eq!(distinct.len(), numbers.len());
        for n in numbers {
            let text = format!("{n:010}");
            assert!(text.starts_with("999") && is_valid(&text), "{text}");
        }
        assert_ne!(nhs_numbers(1, 5), nhs_numbers(2, 5));
    }

    #[test]
    fn the_999_range_numbers_the_largest_network() {
        let numbers = nhs_numbers(7, MAX_PEOPLE);
        assert!(numbers.iter().all(|n| is_valid(&n.to_string())));
        let distinct: std::collections::BTreeSet<u64> = numbers.iter().copied().collect();
        assert_eq!(distinct.len(), MAX_PEOPLE);
    }

    #[test]
    fn apportion_cases() {
        let cases: &[(usize, &[f64], &[usize])] = &[
            (10, &[1.0, 1.0], &[5, 5]),
            (10, &[1.0, 3.0], &[3, 7]),
            (7, &[1.0, 1.0, 1.0], &[3, 2, 2]),
            (2, &[1.0, 5.0], &[1, 1]),
        ];
        for (total, weights, expected) in cases {
            let parts = apportion(*total, weights);
            assert_eq!(parts.iter().sum::<usize>(), *total);
            assert_eq!(&parts, expected, "{total} {weights:?}");
        }
    }

    #[test]
    fn supplier_mix() {
        let cases = [
            (6, 0.5, 3),
            (2, 0.9, 1),
            (2, 0.1, 1),
            (3, 1.0, 3),
            (3, 0.0, 0),
            (1, 0.5, 1),
        ];
        for (n, share, expected) in cases {
            let mut rng = stream(3, Purpose::Network, 0, 0);
            let emis = suppliers(&mut rng, n, share)
                .iter()
                .filter(|s| **s == Supplier::Emis)
                .count();
            assert_eq!(emis, expected, "{n} {share}");
        }
    }
}
