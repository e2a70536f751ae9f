//! Keyed pseudonyms (HMAC-SHA-256, RFC 2104) for outputs that leave a practice.
//!
//! - A verified NHS number gives `P` + 32 hex digits of
//!   HMAC(key, `nhs:` + the ten digits): the same at every practice and in
//!   every run with the same key, so a network can count people once.
//! - A record without one gives `U` + HMAC(key, `local:` + practice + `:` +
//!   source patient id): unlinkable across practices, as the record is.
//! - Different keys give unrelated pseudonyms: one key per purpose keeps
//!   outputs for different purposes unlinkable.
//!
//! The key comes from a file or an environment variable named by the user,
//! never from a definition file. It is never logged or written: outputs and
//! the audit log carry its [`KeyId`], a fingerprint that cannot be turned
//! back into the key.

use std::fmt;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The shortest key accepted, in bytes (the HMAC-SHA-256 block is 64; RFC
/// 2104 asks for at least the hash length, 32).
pub const MIN_KEY_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "{path}: pseudonym key file not found; hint: create one with `head -c 32 /dev/urandom | xxd -p -c 64 > {path}` and keep it out of version control"
    )]
    Missing { path: PathBuf },
    #[error("{path}: cannot read the pseudonym key file: {source}")]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{source_name}: the pseudonym key is empty; hint: a key is at least {MIN_KEY_BYTES} bytes of secret material"
    )]
    Empty { source_name: String },
    #[error(
        "{source_name}: the pseudonym key is {len} bytes, shorter than {MIN_KEY_BYTES}; hint: a short key can be guessed; generate a new one of at least {MIN_KEY_BYTES} bytes"
    )]
    TooShort { source_name: String, len: usize },
    #[error(
        "environment variable {name} is not set; hint: set it to the pseudonym key, or name a key file instead"
    )]
    EnvUnset { name: String },
}

/// A pseudonym key. Its bytes never print: `Debug` shows the [`KeyId`] only.
#[derive(Clone)]
pub struct Key {
    bytes: Vec<u8>,
    id: KeyId,
}

/// A fingerprint of a key, safe to record: the first 16 hex digits of
/// SHA-256(`phm pseudonym key id` NUL key).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeyId(String);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key(id {}, <redacted>)", self.id)
    }
}

/// Something about a key that is not an error but must be said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyWarning {
    /// The key file can be read by users other than its owner.
    WorldReadable(PathBuf),
}

impl fmt::Display for KeyWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyWarning::WorldReadable(path) => write!(
                f,
                "{}: the pseudonym key file is readable by other users; hint: chmod 600 it",
                path.display()
            ),
        }
    }
}

impl Key {
    /// A key from its material; trailing whitespace (a file's final newline)
    /// is not part of it. `source_name` names where it came from, for errors.
    pub fn new(material: &[u8], source_name: &str) -> Result<Key, KeyError> {
        let end = material
            .iter()
            .rposition(|b| !b.is_ascii_whitespace())
            .map_or(0, |i| i + 1);
        let bytes = material[..end].to_vec();
        if bytes.is_empty() {
            return Err(KeyError::Empty {
                source_name: source_name.to_string(),
            });
        }
        if bytes.len() < MIN_KEY_BYTES {
            return Err(KeyError::TooShort {
                source_name: source_name.to_string(),
                len: bytes.len(),
            });
        }
        let mut h = Sha256::new();
        h.update(b"phm pseudonym key id\0");
        h.update(&bytes);
        let id = KeyId(format!("k{}", &hex::encode(h.finalize())[..16]));
        Ok(Key { bytes, id })
    }

    /// The key in the file at `path`, with a warning when others can read it.
    pub fn from_file(path: &Path) -> Result<(Key, Vec<KeyWarning>), KeyError> {
        let material = std::fs::read(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                KeyError::Missing {
                    path: path.to_path_buf(),
                }
            } else {
                KeyError::Unreadable {
                    path: path.to_path_buf(),
                    source,
                }
            }
        })?;
        let key = Key::new(&material, &path.display().to_string())?;
        let mut warnings = Vec::new();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(meta) = std::fs::metadata(path)
                && meta.permissions().mode() & 0o004 != 0
            {
                warnings.push(KeyWarning::WorldReadable(path.to_path_buf()));
            }
        }
        Ok((key, warnings))
    }

    /// The key held in environment variable `name`, whose value the caller
    /// read (`None`: unset). Library code never reads the environment.
    pub fn from_env(name: &str, value: Option<&str>) -> Result<Key, KeyError> {
        let value = value.ok_or_else(|| KeyError::EnvUnset {
            name: name.to_string(),
        })?;
        Key::new(value.as_bytes(), &format!("environment variable {name}"))
    }

    pub fn id(&self) -> &KeyId {
        &self.id
    }

    fn mac(&self, message: &[u8]) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.bytes)
            .expect("HMAC takes a key of any length");
        mac.update(message);
        hex::encode(&mac.finalize().into_bytes()[..16])
    }

    /// The pseudonym of a person with a verified NHS number (ten digits,
    /// separators removed).
    pub fn linkable(&self, nhs_digits: &str) -> String {
        format!("P{}", self.mac(format!("nhs:{nhs_digits}").as_bytes()))
    }

    /// The pseudonym of a patient record: linkable when `verified_nhs` (the
    /// record's NHS number, when its status is verified) normalises, else
    /// unlinkable by practice and patient id.
    pub fn of_record(
        &self,
        practice: &str,
        patient_id: &str,
        verified_nhs: Option<&str>,
    ) -> String {
        match verified_nhs.and_then(crate::nhs_number::normalise) {
            Some(digits) => self.linkable(&digits),
            None => self.unlinkable(practice, patient_id),
        }
    }

    /// The pseudonym of a record without a verified NHS number.
    pub fn unlinkable(&self, practice: &str, patient_id: &str) -> String {
        format!(
            "U{}",
            self.mac(format!("local:{practice}:{patient_id}").as_bytes())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &[u8] = b"0123456789abcdef0123456789abcdef";
    const KEY_B: &[u8] = b"fedcba9876543210fedcba9876543210";

    #[test]
    fn hmac_matches_rfc_4231_test_case_2() {
        // RFC 4231 test case 2 uses a 4-byte key, below phm's minimum, so the
        // MAC is checked directly.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn pseudonyms_are_stable_per_key_and_unrelated_across_keys() {
        let a = Key::new(KEY_A, "a").unwrap();
        let a_again = Key::new(&[KEY_A, b"\n"].concat(), "a").unwrap();
        let b = Key::new(KEY_B, "b").unwrap();
        assert_eq!(a.linkable("9434765919"), a_again.linkable("9434765919"));
        assert_eq!(a.id(), a_again.id());
        assert_ne!(a.linkable("9434765919"), b.linkable("9434765919"));
        assert_ne!(a.id(), b.id());
        assert_ne!(a.linkable("9434765919"), a.linkable("9434765918"));
        let p = a.linkable("9434765919");
        assert!(p.starts_with('P') && p.len() == 33, "{p}");
        // Unlinkable: the same source id at two practices are two people.
        let u1 = a.unlinkable("A81001", "17");
        assert_ne!(u1, a.unlinkable("B82005", "17"));
        assert!(u1.starts_with('U'));
        assert_eq!(u1, a.unlinkable("A81001", "17"));
    }

    #[test]
    fn bad_keys_are_refused() {
        // (material, error fragment)
        let cases: &[(&[u8], &str)] = &[
            (b"", "is empty"),
            (b" \n", "is empty"),
            (b"short key", "is 9 bytes, shorter than 32"),
            (&[b'x'; 31], "is 31 bytes"),
        ];
        for (material, fragment) in cases {
            let err = Key::new(material, "test").unwrap_err().to_string();
            assert!(err.contains(fragment), "{err}");
        }
        assert!(Key::from_env("PHM_KEY", None).is_err());
    }

    #[test]
    fn a_key_never_prints_itself() {
        let key = Key::new(KEY_A, "a").unwrap();
        let shown = format!("{key:?} {}", key.id());
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
    }

    #[test]
    fn key_files() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        assert!(matches!(
            Key::from_file(&path),
            Err(KeyError::Missing { .. })
        ));
        std::fs::write(&path, [KEY_A, b"\n"].concat()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let (key, warnings) = Key::from_file(&path).unwrap();
        assert!(warnings.is_empty());
        assert_eq!(key.id(), Key::new(KEY_A, "a").unwrap().id());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let (_, warnings) = Key::from_file(&path).unwrap();
        assert_eq!(warnings, vec![KeyWarning::WorldReadable(path.clone())]);
    }
}
