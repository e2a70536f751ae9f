//! The people of the network: age and sex from England's population pyramid, deaths
//! at age-specific mortality over the last five years, names, addresses and contact
//! details (all invented: mobile numbers from Ofcom's drama range, e-mail at
//! `example.com`).
//!
//! A person is drawn from a stream keyed by their number alone, so their details do
//! not depend on which practices they are registered at.

use crate::synth::sampling::{Purpose, between, chance, pick, splitmix64, stream, unit, weighted};

pub(crate) const YEAR: f64 = 365.25;

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
pub(crate) const STREETS: &[&str] = &[
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
            Sex::Male => Some(if self.number.is_multiple_of(40) {
                "Dr"
            } else {
                "Mr"
            }),
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

impl Person {
    /// Draws person `number`, at least `min_age` years old on `as_of`.
    pub(crate) fn draw(seed: u64, number: u32, as_of: i32, nhs: u64, min_age: f64) -> Person {
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
        let surname = *pick(&mut rng, SURNAMES);
        let house = between(&mut rng, 1, 240) as u16;
        let street = *pick(&mut rng, STREETS);
        Person {
            number,
            sex,
            dob,
            death,
            nhs,
            given,
            middle,
            surname,
            house,
            street,
        }
    }
}
