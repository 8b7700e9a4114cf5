//! Callback parsing and verification: any query must parse or fail cleanly, never panic.
#![no_main]

use calconnect::{Callback, PendingAuthorization};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else { return };
    if let Ok(callback) = Callback::parse(query) {
        let _ = callback.state_key();
        let _ = format!("{callback:?}");
    }
    let _ = Callback::from_redirect_url(query);
    // Persisted pending authorizations come back from a store: treat them as untrusted too.
    let bytes = secrecy::SecretSlice::from(data.to_vec());
    if let Ok(pending) = PendingAuthorization::from_unsealed_bytes(&bytes) {
        let _ = pending.to_sealable_bytes();
    }
});
