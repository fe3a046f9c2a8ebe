//! Random secrets, their hashes, and constant-time comparison.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};

/// `bytes` random bytes from the OS generator, as URL-safe base64 without padding (safe in a query
/// string without encoding).
pub fn random_urlsafe(bytes: usize) -> Result<String, ring::error::Unspecified> {
    let mut buf = vec![0u8; bytes];
    SystemRandom::new().fill(&mut buf)?;
    Ok(URL_SAFE_NO_PAD.encode(buf))
}

/// `bytes` random bytes as lowercase hex.
pub fn random_hex(bytes: usize) -> Result<String, ring::error::Unspecified> {
    let mut buf = vec![0u8; bytes];
    SystemRandom::new().fill(&mut buf)?;
    Ok(to_hex(&buf))
}

/// SHA-256 of a secret as lowercase hex: what is stored instead of the secret.
pub fn sha256_hex(secret: &str) -> String {
    to_hex(digest::digest(&digest::SHA256, secret.as_bytes()).as_ref())
}

/// Compares two secrets in time that depends on neither's content nor length: both are hashed first,
/// so the comparison always runs over 32 bytes.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    let da = digest::digest(&digest::SHA256, a.as_bytes());
    let db = digest::digest(&digest::SHA256, b.as_bytes());
    da.as_ref().iter().zip(db.as_ref()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 0xf) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_secrets_are_urlsafe_and_distinct() {
        let a = random_urlsafe(32).unwrap();
        let b = random_urlsafe(32).unwrap();
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_eq!(random_hex(24).unwrap().len(), 48);
    }

    #[test]
    fn hashes_and_compares() {
        assert_eq!(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert!(constant_time_eq("same", "same"));
        assert!(!constant_time_eq("same", "Same"));
        assert!(!constant_time_eq("short", "longer value"));
    }
}
