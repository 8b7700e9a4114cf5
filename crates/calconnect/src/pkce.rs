//! PKCE (RFC 7636), S256 only. Whether a flow uses it is the client policy's decision
//! ([`ProviderProfile::pkce_use`](crate::ProviderProfile::pkce_use)): always for public clients,
//! which Cal.com requires; for confidential clients only where the token endpoint accepts a
//! verifier from them (not Cal.com's v2 endpoint, [docs/calcom.md](../../../docs/calcom.md)).
//!
//! The challenge is computed by the `oauth2` crate (`PkceCodeChallenge::from_code_verifier_sha256`);
//! the verifier's randomness comes from the caller's rng (docs/architecture.md §6.5), which
//! `oauth2`'s own `new_random_sha256` does not allow, and it lives in a zeroizing `secrecy` box.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::{CryptoRng, RngCore};
use secrecy::zeroize::Zeroize;
use secrecy::{ExposeSecret, SecretString};
use std::fmt;

/// Random bytes in a verifier: 32 bytes give the 43-character verifier of RFC 7636 §4.1.
const VERIFIER_BYTES: usize = 32;

/// A PKCE code verifier. Single use: not `Clone`, consumed by the code exchange.
pub struct PkceVerifier(SecretString);

impl PkceVerifier {
    /// A fresh verifier from 32 bytes of `rng`.
    pub(crate) fn generate(rng: &mut (impl RngCore + CryptoRng)) -> Self {
        let mut bytes = [0u8; VERIFIER_BYTES];
        rng.fill_bytes(&mut bytes);
        let verifier = Self::from_random_bytes(&bytes);
        bytes.zeroize();
        verifier
    }

    /// The verifier for the given random octets (base64url, no padding; RFC 7636 §4.1).
    pub(crate) fn from_random_bytes(bytes: &[u8]) -> Self {
        Self(SecretString::from(URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// Restores a verifier from its persisted form.
    pub(crate) fn from_persisted(verifier: String) -> Self {
        Self(SecretString::from(verifier))
    }

    /// The S256 challenge: `BASE64URL(SHA256(verifier))`.
    pub(crate) fn s256_challenge(&self) -> oauth2::PkceCodeChallenge {
        let transient = oauth2::PkceCodeVerifier::new(self.0.expose_secret().to_owned());
        let challenge = oauth2::PkceCodeChallenge::from_code_verifier_sha256(&transient);
        transient.into_secret().zeroize();
        challenge
    }

    /// The verifier text, for the token request and for persisting the pending authorization.
    pub(crate) fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for PkceVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PkceVerifier([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7636 Appendix B.
    #[test]
    fn rfc7636_appendix_b_vector() {
        let octets: [u8; 32] = [
            116, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96, 125, 216, 173, 187, 186, 22, 212,
            37, 77, 105, 214, 191, 240, 91, 88, 5, 88, 83, 132, 141, 121,
        ];
        let verifier = PkceVerifier::from_random_bytes(&octets);
        assert_eq!(
            verifier.expose(),
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
        );
        assert_eq!(
            verifier.s256_challenge().as_str(),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert_eq!(verifier.s256_challenge().method().as_str(), "S256");
        assert_eq!(format!("{verifier:?}"), "PkceVerifier([redacted])");
    }

    #[test]
    fn generated_verifiers_are_43_chars_and_differ() {
        let mut rng = rand::rngs::OsRng;
        let a = PkceVerifier::generate(&mut rng);
        let b = PkceVerifier::generate(&mut rng);
        assert_eq!(a.expose().len(), 43);
        assert_ne!(a.expose(), b.expose());
    }
}
