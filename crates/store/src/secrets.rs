//! Secrets at rest: provider keys encrypted with AES-256-GCM, gateway keys and the admin token
//! stored as SHA-256 hashes only.
//!
//! Ciphertext format: `v1:` + base64(12-byte random nonce ‖ ciphertext+tag). The version prefix
//! leaves room to rotate the scheme without guessing what a stored value is.

use crate::error::StoreError;
use aes_gcm::aead::{Aead, KeyInit, OsRng, rand_core::RngCore};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rand::distr::{Alphanumeric, SampleString};
use sha2::{Digest, Sha256};
use std::fmt;
use std::path::Path;
use switchyard_core::SecretString;

const PREFIX: &str = "v1:";
const NONCE_LEN: usize = 12;

/// The AES-256-GCM cipher for provider keys. `Debug` shows nothing of the key.
#[derive(Clone)]
pub struct Cipher(Aes256Gcm);

impl fmt::Debug for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cipher([redacted])")
    }
}

impl Cipher {
    /// A cipher from 32 raw key bytes.
    pub fn from_key(key: &[u8; 32]) -> Self {
        Cipher(Aes256Gcm::new(key.into()))
    }

    /// A cipher from a base64-encoded 32-byte key (the configuration form).
    pub fn from_base64(encoded: &SecretString) -> Result<Self, String> {
        let bytes = B64
            .decode(encoded.expose().trim())
            .map_err(|_| "must be base64".to_owned())?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "must decode to exactly 32 bytes".to_owned())?;
        Ok(Self::from_key(&key))
    }

    /// Loads the key file, or creates it with a fresh random key and mode 0600 when missing.
    /// Creation uses `create_new`, so two processes starting at once cannot both write a key.
    pub fn load_or_create_key_file(path: &Path) -> Result<Self, StoreError> {
        let key_error = |reason: String| StoreError::KeyFile {
            path: path.display().to_string(),
            reason,
        };
        if !path.exists() {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| key_error(e.to_string()))?;
            }
            let mut key = [0u8; 32];
            OsRng.fill_bytes(&mut key);
            match write_private_file(path, B64.encode(key).as_bytes()) {
                Ok(()) => return Ok(Self::from_key(&key)),
                // Another process won the race: read what it wrote.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(key_error(e.to_string())),
            }
        }
        let text = std::fs::read_to_string(path).map_err(|e| key_error(e.to_string()))?;
        Self::from_base64(&SecretString::new(text)).map_err(key_error)
    }

    /// Encrypts a secret with a fresh random nonce.
    pub fn encrypt(&self, plaintext: &SecretString) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        // AES-GCM encryption only fails for plaintexts beyond 64 GiB.
        let sealed = self
            .0
            .encrypt(Nonce::from_slice(&nonce), plaintext.expose().as_bytes())
            .unwrap_or_default();
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        format!("{PREFIX}{}", B64.encode(out))
    }

    /// Decrypts what [`Cipher::encrypt`] produced; `None` for a wrong key or a damaged value.
    pub fn decrypt(&self, stored: &str) -> Option<SecretString> {
        let bytes = B64.decode(stored.strip_prefix(PREFIX)?).ok()?;
        if bytes.len() <= NONCE_LEN {
            return None;
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let plain = self.0.decrypt(Nonce::from_slice(nonce), sealed).ok()?;
        String::from_utf8(plain).ok().map(SecretString::new)
    }
}

#[cfg(unix)]
fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// SHA-256 hex of a token: how gateway keys and the admin token are stored and looked up.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new random token `{prefix}-{32 alphanumerics}` (about 190 bits of entropy).
pub fn generate_token(prefix: &str) -> SecretString {
    let body = Alphanumeric.sample_string(&mut rand::rng(), 32);
    SecretString::new(format!("{prefix}-{body}"))
}

/// Compares two hex digests without an early exit, so response timing says nothing about how
/// much of a guessed token matched.
pub fn digests_equal(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_wrong_key() {
        let cipher = Cipher::from_key(&[7u8; 32]);
        let secret = SecretString::new("sk-upstream-123456789");
        let stored = cipher.encrypt(&secret);
        assert!(stored.starts_with("v1:"));
        assert!(!stored.contains("sk-upstream"));
        assert_eq!(cipher.decrypt(&stored), Some(secret.clone()));
        // A fresh nonce each time: the same secret never encrypts to the same text.
        assert_ne!(stored, cipher.encrypt(&secret));
        assert_eq!(Cipher::from_key(&[8u8; 32]).decrypt(&stored), None);
        assert_eq!(cipher.decrypt("v1:AAAA"), None);
    }

    #[test]
    fn key_file_is_private_and_stable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nested").join("secret.key");
        let first = Cipher::load_or_create_key_file(&path).expect("created");
        let stored = first.encrypt(&SecretString::new("value-abc"));
        let second = Cipher::load_or_create_key_file(&path).expect("loaded");
        assert_eq!(
            second.decrypt(&stored).map(|s| s.expose().to_owned()),
            Some("value-abc".into())
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn tokens_have_the_prefix_and_hash_to_64_hex() {
        let token = generate_token("sk-sy");
        assert!(token.expose().starts_with("sk-sy-"));
        assert_eq!(token.expose().len(), "sk-sy-".len() + 32);
        let hash = hash_token(token.expose());
        assert_eq!(hash.len(), 64);
        assert!(digests_equal(&hash, &hash_token(token.expose())));
        assert!(!digests_equal(&hash, &hash_token("other")));
    }
}
