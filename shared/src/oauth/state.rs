//! OAuth `state` values: random, single use, and stored only as a hash so that a reader of the
//! table cannot replay one.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// 256 random bits, URL-safe.
pub fn new_state() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The key a state is stored under.
pub fn state_key(state: &str) -> String {
    let digest = Sha256::digest(state.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_random_and_hashed_for_storage() {
        let a = new_state();
        let b = new_state();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(state_key(&a).len(), 64);
        assert_ne!(state_key(&a), a);
        assert_eq!(state_key(&a), state_key(&a));
    }
}
