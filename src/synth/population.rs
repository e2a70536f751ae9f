//! The network's people and where they are registered: member practices (ODS codes,
//! suppliers, list sizes), people drawn from the English age/sex pyramid, their
//! registrations (temporary residents, deductions, deaths) and moves between member
//! practices.
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
use crate::synth::sampling::{
    Purpose, Stream, between, chance, exponential, index, pick, splitmix64, stream, unit, weighted,
};
use crate::synth::schedule::day_number;

/// Share of patients registered at two member practices (one record at each).
const MOVER_SHARE: f64 = 0.02;
/// Share of records that are temporary residents.
const TEMPORARY_SHARE: f64 = 0.01;
/// Share of regular records deducted (left the area) in the last eight years.
const DEDUCTED_SHARE: f64 = 0.07;
/// Practices outside the network that appear in TPP registration histories.
const ELSEWHERE_PRACTICES: usize = 12;
/// Most people the 999 range can number (about 10/11 of a million prefixes are valid).
pub const MAX_PEOPLE: usize = 850_000;

const YEAR: f64 = 365.25;

/// England's population by five-year age band (ONS mid-year estimates, rounded):
/// (lowest age, highest age + 1, percent, female share).
const PYRAMID: &[(f64, f64, f64, f64)] = &[
    (0.0, 5.0, 5.4, 0.488),
    (5.0, 10.0, 5.9, 0.488),
    (10.0, 15.0, 6.1, 0.488),
    (15.0, 20.0, 5.8, 0.49),
    (20.0, 25.0, 6.1, 0.495),
    (25.0, 30.0, 6.6, 0.5),
    (30.0, 35.0, 6.9, 0.505),
    (35.0, 40.0, 6.8, 0.505),
    (40.0, 45.0, 6.4, 0.505),
    (45.0, 50.0, 6.2, 0.505),
    (50.0, 55.0, 6.8, 0.507),
    (55.0, 60.0, 6.7, 0.507),
    (60.0, 65.0, 5.9, 0.51),
    (65.0, 70.0, 5.0, 0.515),
    (70.0, 75.0, 4.9, 0.525),
    (75.0, 80.0, 3.9, 0.545),
    (80.0, 85.0, 2.5, 0.57),
    (85.0, 90.0, 1.5, 0.61),
    (90.0, 101.0, 0.9, 0.68),
];

const GIVEN_FEMALE: &[&str] = &[
    "Olivia", "Amelia", "Isla", "Ava", "Mia", "Ivy", "Lily", "Isabella", "Rosie", "Sophia",
    "Grace", "Freya", "Emily", "Ella", "Poppy", "Sarah", "Emma", "Laura", "Rebecca", "Claire",
    "Helen", "Susan", "Margaret", "Patricia", "Jean", "Dorothy", "Joan", "Janet", "Karen",
    "Fatima", "Aisha", "Priya", "Zainab", "Maria", "Anna", "Joanne",
];
const GIVEN_MALE: &[&str] = &[
    "Oliver",
    "George",
    "Noah",
    "Arthur",
    "Muhammad",
    "Leo",
    "Harry",
    "Oscar",
    "Jack",
    "Charlie",
    "James",
    "Thomas",
    "David",
    "John",
    "Michael",
    "Peter",
    "Paul",
    "Mark",
    "Richard",
    "Robert",
    "William",
    "Daniel",
    "Matthew",
    "Christopher",
    "Andrew",
    "Stephen",
    "Ali",
    "Mohammed",
    "Adam",
    "Piotr",
    "Tomasz",
    "Kevin",
];
const SURNAMES: &[&str] = &[
    "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Robinson",
    "Wright", "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall", "Wood",
    "Jackson", "Clarke", "Patel", "Khan", "Hussain", "Ahmed", "Begum", "Ali", "Shah", "Kowalski",
    "Nowak", "Murphy", "Kelly", "O'Brien", "Hughes", "Edwards", "Turner", "Hill", "Moore",
    "Harrison", "Scott", "Cooper", "Ward", "Morris", "King", "Baker", "Lee", "Allen", "Young",
    "Mitchell",
];
const STREETS: &[&str] = &[
    "Church Lane",
    "Station Road",
    "Victoria Street",
    "High Street",
    "Park Avenue",
    "Mill Lane",
    "Queen Street",
    "Manor Road",
    "Westfield Road",
    "The Crescent",
    "Kings Road",
    "Green Lane",
    "Oak Avenue",
    "Moor Lane",
    "School Lane",
    "Chapel Street",
    "Back Lane",
    "Springfield Road",
];
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sex {
    Female,
    Male,
}

/// One person of the network.
#[derive(Debug, Clone)]
pub struct Person {
    pub number: u32,
    pub sex: Sex,
    pub dob: i32,
    pub death: Option<i32>,
    /// Ten digits, valid Modulus 11, in the 999 range.
    pub nhs: u64,
    pub given: &'static str,
    pub middle: Option<&'static str>,
    pub surname: &'static str,
    pub house: u16,
    pub street: &'static str,
}

impl Person {
    /// Age in whole years on `day`.
    pub fn age_on(&self, day: i32) -> f64 {
        f64::from(day - self.dob) / YEAR
    }

    pub fn nhs_text(&self) -> String {
        format!("{:010}", self.nhs)
    }

    /// Title as registered, given the person's age on `day` (none for children).
    pub fn title(&self, day: i32) -> Option<&'static str> {
        let age = self.age_on(day);
        match self.sex {
            _ if age < 16.0 => None,
            Sex::Male => Some(if self.number % 40 == 0 { "Dr" } else { "Mr" }),
            Sex::Female => Some(match self.number % 5 {
                0 if age < 35.0 => "Miss",
                1 => "Ms",
                _ => "Mrs",
            }),
        }
    }

    pub fn street_address(&self) -> String {
        format!("{} {}", self.house, self.street)
    }

    /// A postcode in one of the practice's districts ("LS6 2QT").
    pub fn postcode(&self, districts: &[&str]) -> String {
        const LETTERS: &[u8] = b"ABDEFGHJLNPQRSTUWXYZ";
        let h = splitmix64(u64::from(self.number) ^ 0x9057_C0DE);
        let letter = |shift: u32| LETTERS[((h >> shift) % LETTERS.len() as u64) as usize] as char;
        let district = districts[(h % districts.len() as u64) as usize];
        format!(
            "{district} {}{}{}",
            (h >> 8) % 9 + 1,
            letter(16),
            letter(24)
        )
    }

    /// A mobile number from Ofcom's range reserved for fiction; `version` changes it.
    pub fn mobile(&self, version: u64) -> String {
        format!(
            "07700 900{:03}",
            splitmix64(u64::from(self.number).wrapping_add(version << 32)) % 1000
        )
    }

    /// An address at the reserved `example.com` domain.
    pub fn email(&self) -> String {
        let clean = |s: &str| s.to_ascii_lowercase().replace('\'', "");
        format!(
            "{}.{}{}@example.com",
            clean(self.given),
            clean(self.surname),
            self.number % 100
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegKind {
    Regular,
    Temporary,
}

/// Why a registration ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leaving {
    Stays,
    Deducted,
    Died,
    /// Moved to another member practice.
    Moved,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveSide {
    From,
    To,
}

/// Links the two records of a person who moved between member practices.
#[derive(Debug, Clone, Copy)]
pub struct MoverLink {
    pub mover: u32,
    pub side: MoveSide,
    /// The other practice's index.
    pub other: u16,
}

/// Where an earlier registration was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PriorOrg {
    /// A practice outside the network (index into `Network::elsewhere`).
    Elsewhere(u16),
    /// A member practice (index into `Network::practices`).
    Member(u16),
}

/// The registration before this one.
#[derive(Debug, Clone, Copy)]
pub struct Prior {
    pub org: PriorOrg,
    pub start: i32,
    pub end: i32,
}

/// One registration at a member practice: one patient record in its extracts.
#[derive(Debug, Clone)]
pub struct RecordPlan {
    pub person: u32,
    pub kind: RegKind,
    pub start: i32,
    /// The day the registration ended, if it has.
    pub end: Option<i32>,
    pub leaving: Leaving,
    pub mover: Option<MoverLink>,
    pub prior: Option<Prior>,
}

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

impl Person {
    /// Draws person `number`, at least `min_age` years old on `as_of`.
    fn draw(seed: u64, number: u32, as_of: i32, nhs: u64, min_age: f64) -> Person {
        let mut rng = stream(seed, Purpose::Person, u64::from(number), 0);
        let band = PYRAMID[weighted(&mut rng, &PYRAMID.iter().map(|b| b.2).collect::<Vec<_>>())];
        let age = (band.0 + unit(&mut rng) * (band.1 - band.0)).max(min_age);
        let sex = if chance(&mut rng, band.3) {
            Sex::Female
        } else {
            Sex::Male
        };
        let dob = as_of - (age * YEAR) as i32;
        let q = (-10.5 + 0.095 * age).exp().min(0.5);
        let died = chance(&mut rng, 1.0 - (1.0 - q).powi(5));
        let death_day = between(&mut rng, as_of - (5.0 * YEAR) as i32, as_of - 2);
        let death = (died && death_day > dob + 30).then_some(death_day);
        let given = match sex {
            Sex::Female => *pick(&mut rng, GIVEN_FEMALE),
            Sex::Male => *pick(&mut rng, GIVEN_MALE),
        };
        let middle = chance(&mut rng, 0.4).then(|| match sex {
            Sex::Female => *pick(&mut rng, GIVEN_FEMALE),
            Sex::Male => *pick(&mut rng, GIVEN_MALE),
        });
        Person {
            number,
            sex,
            dob,
            death,
            nhs,
            given,
            middle,
            surname: *pick(&mut rng, SURNAMES),
            house: between(&mut rng, 1, 240) as u16,
            street: *pick(&mut rng, STREETS),
        }
    }
}

/// A registration start for someone not registered since birth: on average eleven
/// years ago, never before birth.
fn usual_start(rng: &mut Stream, person: &Person, as_of: i32) -> i32 {
    let years = exponential(rng, 11.0);
    (as_of - (years * YEAR) as i32)
        .max(person.dob + 14)
        .min(as_of - 2)
}

fn native_record(rng: &mut Stream, person: &Person, as_of: i32) -> RecordPlan {
    let mut plan = RecordPlan {
        person: person.number,
        kind: RegKind::Regular,
        start: 0,
        end: None,
        leaving: Leaving::Stays,
        mover: None,
        prior: None,
    };
    let age = person.age_on(as_of);
    if chance(rng, TEMPORARY_SHARE) {
        plan.kind = RegKind::Temporary;
        plan.start = between(rng, as_of - (3.0 * YEAR) as i32, as_of - 2).max(person.dob + 14);
        let end = plan.start + between(rng, 1, 90);
        if end < as_of - 1 {
            plan.end = Some(end);
            plan.leaving = Leaving::Deducted;
        }
    } else {
        let born_here = age < 1.0 || chance(rng, if age < 16.0 { 0.5 } else { 0.08 });
        plan.start = if born_here {
            (person.dob + between(rng, 7, 60)).min(as_of - 2)
        } else {
            usual_start(rng, person, as_of)
        };
        if chance(rng, DEDUCTED_SHARE) && plan.start + 60 < as_of - 2 {
            let earliest = (plan.start + 60).max(as_of - (8.0 * YEAR) as i32);
            plan.end = Some(between(rng, earliest, as_of - 2));
            plan.leaving = Leaving::Deducted;
        }
        if !born_here && chance(rng, 0.35) && plan.start - person.dob > 400 {
            let start = (plan.start - between(rng, 365, 3650)).max(person.dob + 7);
            let end = plan.start - between(rng, 0, 30);
            if end > start {
                plan.prior = Some(Prior {
                    org: PriorOrg::Elsewhere(index(rng, ELSEWHERE_PRACTICES) as u16),
                    start,
                    end,
                });
            }
        }
    }
    if let Some(death) = person.death {
        if death <= plan.start {
            plan.start = (death - between(rng, 60, 3650)).max(person.dob + 1);
            plan.prior = None;
        }
        if plan.end.is_none_or(|end| death < end) {
            plan.end = Some(death);
            plan.leaving = Leaving::Died;
        }
    }
    plan
}

/// The record left and the record joined by a person moving between member practices.
fn mover_records(
    rng: &mut Stream,
    person: &mut Person,
    as_of: i32,
    mover: u32,
    from: usize,
    to: usize,
) -> (RecordPlan, RecordPlan) {
    let start = usual_start(rng, person, as_of).min(as_of - 120);
    let moved = between(
        rng,
        (start + 90).max(as_of - (6.0 * YEAR) as i32),
        as_of - 20,
    );
    if person.death.is_some_and(|d| d <= moved + 60) {
        person.death = None;
    }
    let left = RecordPlan {
        person: person.number,
        kind: RegKind::Regular,
        start,
        end: Some(moved),
        leaving: Leaving::Moved,
        mover: Some(MoverLink {
            mover,
            side: MoveSide::From,
            other: to as u16,
        }),
        prior: None,
    };
    let joined = RecordPlan {
        person: person.number,
        kind: RegKind::Regular,
        start: (moved + between(rng, 0, 14)).min(as_of - 2),
        end: person.death,
        leaving: if person.death.is_some() {
            Leaving::Died
        } else {
            Leaving::Stays
        },
        mover: Some(MoverLink {
            mover,
            side: MoveSide::To,
            other: from as u16,
        }),
        prior: Some(Prior {
            org: PriorOrg::Member(from as u16),
            start,
            end: moved,
        }),
    };
    (left, joined)
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

    #[test]
    fn registrations_fit_within_lives() {
        let as_of = day_number(chrono::NaiveDate::from_ymd_opt(2026, 3, 31).unwrap());
        for number in 0..5000 {
            let mover = number % 10 == 0;
            let mut person = Person::draw(
                9,
                number,
                as_of,
                9_990_000_018,
                if mover { 2.0 } else { 0.08 },
            );
            let mut rng = stream(9, Purpose::Registration, u64::from(number), 0);
            let plans = if mover {
                let (a, b) = mover_records(&mut rng, &mut person, as_of, 0, 0, 1);
                vec![a, b]
            } else {
                vec![native_record(&mut rng, &person, as_of)]
            };
            for plan in plans {
                assert!(
                    plan.start >= person.dob && plan.start <= as_of - 2,
                    "{plan:?} {person:?}"
                );
                if let Some(end) = plan.end {
                    assert!(end > plan.start && end < as_of, "{plan:?}");
                }
                if let Some(death) = person.death {
                    assert!(plan.end.is_some_and(|e| e <= death), "{plan:?} {person:?}");
                }
                if let Some(prior) = plan.prior {
                    assert!(
                        prior.start >= person.dob
                            && prior.start < prior.end
                            && prior.end <= plan.start
                    );
                }
            }
        }
    }
}
