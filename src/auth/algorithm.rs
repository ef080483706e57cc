//! The JWS algorithms ringcast verifies (RFC 7518 §3, RFC 8037 §3.1) and the one key type
//! each is pinned to. Pinning is what defeats algorithm confusion: a token's `alg` only
//! ever selects keys of [`Algorithm::key_kind`], so an `HS256` token can never be checked
//! against a public key used as an HMAC secret, and `none` is not an [`Algorithm`] at all.
//!
//! Owns: names and key kinds. Must not: verify anything (that is `keys`).

use ring::signature;

/// A JWS `alg` value ringcast accepts. `none` is deliberately absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// HMAC with SHA-256.
    HS256,
    /// HMAC with SHA-384.
    HS384,
    /// HMAC with SHA-512.
    HS512,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256 (MGF1 SHA-256, salt = hash length: RFC 7518 §3.5).
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// ECDSA on P-384 with SHA-384.
    ES384,
    /// EdDSA; ringcast supports the Ed25519 curve (RFC 8037).
    EdDSA,
}

/// The type of key an algorithm needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// An HMAC shared secret.
    Hmac,
    /// An RSA public key (2048 to 8192 bits).
    Rsa,
    /// An EC public key on P-256.
    EcP256,
    /// An EC public key on P-384.
    EcP384,
    /// An Ed25519 public key.
    Ed25519,
}

impl KeyKind {
    /// Human name for messages.
    pub const fn name(self) -> &'static str {
        match self {
            KeyKind::Hmac => "HMAC secret",
            KeyKind::Rsa => "RSA",
            KeyKind::EcP256 => "EC P-256",
            KeyKind::EcP384 => "EC P-384",
            KeyKind::Ed25519 => "Ed25519",
        }
    }
}

impl Algorithm {
    /// Every algorithm.
    pub const ALL: [Algorithm; 12] = [
        Algorithm::HS256,
        Algorithm::HS384,
        Algorithm::HS512,
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ];

    /// The `alg` header value.
    pub const fn name(self) -> &'static str {
        match self {
            Algorithm::HS256 => "HS256",
            Algorithm::HS384 => "HS384",
            Algorithm::HS512 => "HS512",
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::EdDSA => "EdDSA",
        }
    }

    /// Parse an `alg` value. Case-sensitive (RFC 7515 §4.1.1); `none` gives `None`.
    pub fn from_name(name: &str) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The only key type this algorithm may be verified with.
    pub const fn key_kind(self) -> KeyKind {
        match self {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => KeyKind::Hmac,
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => KeyKind::Rsa,
            Algorithm::ES256 => KeyKind::EcP256,
            Algorithm::ES384 => KeyKind::EcP384,
            Algorithm::EdDSA => KeyKind::Ed25519,
        }
    }

    /// ring's HMAC algorithm, for the HS family.
    pub(crate) fn hmac(self) -> Option<ring::hmac::Algorithm> {
        match self {
            Algorithm::HS256 => Some(ring::hmac::HMAC_SHA256),
            Algorithm::HS384 => Some(ring::hmac::HMAC_SHA384),
            Algorithm::HS512 => Some(ring::hmac::HMAC_SHA512),
            _ => None,
        }
    }

    /// ring's RSA verification parameters (2048–8192-bit moduli: RFC 7518 §3.3 requires
    /// at least 2048), for the RS and PS families.
    pub(crate) fn rsa_verify(self) -> Option<&'static signature::RsaParameters> {
        match self {
            Algorithm::RS256 => Some(&signature::RSA_PKCS1_2048_8192_SHA256),
            Algorithm::RS384 => Some(&signature::RSA_PKCS1_2048_8192_SHA384),
            Algorithm::RS512 => Some(&signature::RSA_PKCS1_2048_8192_SHA512),
            Algorithm::PS256 => Some(&signature::RSA_PSS_2048_8192_SHA256),
            Algorithm::PS384 => Some(&signature::RSA_PSS_2048_8192_SHA384),
            Algorithm::PS512 => Some(&signature::RSA_PSS_2048_8192_SHA512),
            _ => None,
        }
    }

    /// ring's RSA signing encoding, for the RS and PS families.
    pub(crate) fn rsa_sign(self) -> Option<&'static dyn signature::RsaEncoding> {
        match self {
            Algorithm::RS256 => Some(&signature::RSA_PKCS1_SHA256),
            Algorithm::RS384 => Some(&signature::RSA_PKCS1_SHA384),
            Algorithm::RS512 => Some(&signature::RSA_PKCS1_SHA512),
            Algorithm::PS256 => Some(&signature::RSA_PSS_SHA256),
            Algorithm::PS384 => Some(&signature::RSA_PSS_SHA384),
            Algorithm::PS512 => Some(&signature::RSA_PSS_SHA512),
            _ => None,
        }
    }
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_none_is_not_an_algorithm() {
        for a in Algorithm::ALL {
            assert_eq!(Algorithm::from_name(a.name()), Some(a));
        }
        for bad in [
            "none", "None", "NONE", "hs256", "HS1", "ES512", "RSA-OAEP", "",
        ] {
            assert_eq!(Algorithm::from_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn each_family_is_pinned_to_one_key_kind() {
        let kinds: Vec<KeyKind> = Algorithm::ALL.iter().map(|a| a.key_kind()).collect();
        assert_eq!(kinds[..3], [KeyKind::Hmac; 3]);
        assert_eq!(kinds[3..9], [KeyKind::Rsa; 6]);
        assert_eq!(
            kinds[9..],
            [KeyKind::EcP256, KeyKind::EcP384, KeyKind::Ed25519]
        );
        for a in Algorithm::ALL {
            assert_eq!(a.hmac().is_some(), a.key_kind() == KeyKind::Hmac);
            assert_eq!(a.rsa_verify().is_some(), a.key_kind() == KeyKind::Rsa);
            assert_eq!(a.rsa_sign().is_some(), a.key_kind() == KeyKind::Rsa);
        }
    }
}
