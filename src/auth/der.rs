//! The few DER structures a public key file holds, read strictly: `SubjectPublicKeyInfo`
//! (RFC 5280 §4.1.2.7) and PKCS#1 `RSAPublicKey` (RFC 8017 §A.1.1). Only definite,
//! minimal lengths (X.690 §10.1); anything left over is an error.
//!
//! Owns: DER framing and the algorithm identifiers. Must not: judge key strength (that is
//! `keys`) or verify signatures.

/// The public key inside a `SubjectPublicKeyInfo`, by algorithm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Spki<'a> {
    /// `rsaEncryption`: the `RSAPublicKey` DER.
    Rsa(&'a [u8]),
    /// `id-ecPublicKey` on P-256: the SEC1 point.
    EcP256(&'a [u8]),
    /// `id-ecPublicKey` on P-384: the SEC1 point.
    EcP384(&'a [u8]),
    /// `id-Ed25519`: the 32-byte key.
    Ed25519(&'a [u8]),
}

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const NULL: u8 = 0x05;
const OID: u8 = 0x06;

// Object identifiers, content bytes (X.690 §8.19).
/// 1.2.840.113549.1.1.1 rsaEncryption (RFC 8017 §A.1).
const OID_RSA: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01];
/// 1.2.840.113549.1.1.10 id-RSASSA-PSS (RFC 4055 §3.1).
const OID_RSA_PSS: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0A];
/// 1.2.840.10045.2.1 id-ecPublicKey (RFC 5480 §2.1.1).
const OID_EC: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
/// 1.2.840.10045.3.1.7 secp256r1 (RFC 5480 §2.1.1.1).
const OID_P256: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
/// 1.3.132.0.34 secp384r1.
const OID_P384: &[u8] = &[0x2B, 0x81, 0x04, 0x00, 0x22];
/// 1.3.132.0.35 secp521r1.
const OID_P521: &[u8] = &[0x2B, 0x81, 0x04, 0x00, 0x23];
/// 1.3.101.112 id-Ed25519 (RFC 8410 §3).
const OID_ED25519: &[u8] = &[0x2B, 0x65, 0x70];
/// 1.3.101.113 id-Ed448.
const OID_ED448: &[u8] = &[0x2B, 0x65, 0x71];

/// A cursor over DER bytes.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The next element: its tag and contents.
    fn any(&mut self) -> Result<(u8, &'a [u8]), String> {
        let short = || "truncated DER".to_string();
        let (&tag, rest) = self.rest.split_first().ok_or_else(short)?;
        let (&first, mut rest) = rest.split_first().ok_or_else(short)?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7F);
            // 0x80 is the indefinite form (not DER); more than 4 length bytes is absurd.
            if n == 0 || n > 4 || rest.len() < n {
                return Err("bad DER length".into());
            }
            let (bytes, after) = rest.split_at(n);
            rest = after;
            let len = bytes
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            // Minimal encoding: no leading zero byte, long form only from 128 (X.690 §10.1).
            if bytes[0] == 0 || len < 0x80 {
                return Err("non-minimal DER length".into());
            }
            len
        };
        if rest.len() < len {
            return Err(short());
        }
        let (content, after) = rest.split_at(len);
        self.rest = after;
        Ok((tag, content))
    }

    /// The next element, which must have `tag`.
    fn expect(&mut self, tag: u8, what: &str) -> Result<&'a [u8], String> {
        match self.any()? {
            (t, content) if t == tag => Ok(content),
            _ => Err(format!("expected {what}")),
        }
    }

    fn finish(&self, what: &str) -> Result<(), String> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(format!("trailing bytes after {what}"))
        }
    }
}

/// Parse a DER `SubjectPublicKeyInfo` (a PEM `PUBLIC KEY`).
pub(crate) fn spki(der: &[u8]) -> Result<Spki<'_>, String> {
    let mut outer = Reader::new(der);
    let seq = outer.expect(SEQUENCE, "a SubjectPublicKeyInfo SEQUENCE")?;
    outer.finish("the SubjectPublicKeyInfo")?;
    let mut inner = Reader::new(seq);
    let alg_id = inner.expect(SEQUENCE, "an AlgorithmIdentifier")?;
    let bits = inner.expect(BIT_STRING, "the subjectPublicKey BIT STRING")?;
    inner.finish("the subjectPublicKey")?;
    // The first content byte counts unused bits; a key is whole bytes.
    let key = match bits.split_first() {
        Some((0, key)) => key,
        _ => return Err("subjectPublicKey is not whole bytes".into()),
    };
    let mut alg = Reader::new(alg_id);
    let oid = alg.expect(OID, "an algorithm OID")?;
    let params = if alg.is_empty() {
        None
    } else {
        Some(alg.any()?)
    };
    alg.finish("the AlgorithmIdentifier")?;
    match oid {
        OID_RSA => match params {
            // RFC 3279 §2.3.1: parameters NULL (tolerated absent).
            None | Some((NULL, [])) => Ok(Spki::Rsa(key)),
            _ => Err("rsaEncryption parameters must be NULL".into()),
        },
        OID_EC => match params {
            Some((OID, OID_P256)) => Ok(Spki::EcP256(key)),
            Some((OID, OID_P384)) => Ok(Spki::EcP384(key)),
            Some((OID, OID_P521)) => Err("EC curve P-521 (ES512) is not supported".into()),
            _ => Err("EC key on an unsupported curve (P-256 and P-384 are)".into()),
        },
        OID_ED25519 if params.is_none() => Ok(Spki::Ed25519(key)),
        OID_ED448 => Err("Ed448 keys are not supported (Ed25519 is)".into()),
        OID_RSA_PSS => Err(
            "RSASSA-PSS-restricted keys are not supported; give a plain RSA public key (it \
             verifies PS256/384/512 too)"
                .into(),
        ),
        _ => Err("unsupported public key algorithm".into()),
    }
}

/// An RSA public key's modulus and exponent, big-endian without leading zeros.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RsaComponents<'a> {
    pub(crate) n: &'a [u8],
    pub(crate) e: &'a [u8],
}

/// Parse a DER PKCS#1 `RSAPublicKey` (`SEQUENCE { modulus INTEGER, publicExponent INTEGER }`).
pub(crate) fn rsa_public_key(der: &[u8]) -> Result<RsaComponents<'_>, String> {
    let mut outer = Reader::new(der);
    let seq = outer.expect(SEQUENCE, "an RSAPublicKey SEQUENCE")?;
    outer.finish("the RSAPublicKey")?;
    let mut inner = Reader::new(seq);
    let n = inner.expect(INTEGER, "the RSA modulus")?;
    let e = inner.expect(INTEGER, "the RSA exponent")?;
    inner.finish("the RSA exponent")?;
    Ok(RsaComponents {
        n: strip_leading_zeros(n),
        e: strip_leading_zeros(e),
    })
}

/// A non-negative big-endian integer without its leading zero bytes (DER adds one when the
/// high bit is set; ring wants none).
pub(crate) fn strip_leading_zeros(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_strict() {
        // Short form.
        assert_eq!(Reader::new(&[0x05, 0x00]).any(), Ok((0x05, &[][..])));
        // Long form must be minimal.
        assert!(
            Reader::new(&[0x04, 0x81, 0x05, 1, 2, 3, 4, 5])
                .any()
                .is_err()
        );
        assert!(Reader::new(&[0x04, 0x82, 0x00, 0x80]).any().is_err());
        // Indefinite, truncated.
        assert!(Reader::new(&[0x30, 0x80, 0, 0]).any().is_err());
        assert!(Reader::new(&[0x04, 0x03, 1]).any().is_err());
        assert!(Reader::new(&[0x04]).any().is_err());
        let mut long = vec![0x04, 0x81, 0x80];
        long.extend([7u8; 0x80]);
        assert_eq!(Reader::new(&long).any().map(|(_, c)| c.len()), Ok(0x80));
    }

    #[test]
    fn ed25519_spki_and_trailing_bytes() {
        // RFC 8410 §10.1's example public key.
        let mut der = vec![
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ];
        der.extend([0x19; 32]);
        assert_eq!(spki(&der), Ok(Spki::Ed25519(&[0x19; 32])));
        let mut trailing = der.clone();
        trailing.push(0);
        assert!(spki(&trailing).is_err());
        // Unused bits in the BIT STRING.
        let mut unused = der.clone();
        unused[11] = 1;
        assert!(spki(&unused).is_err());
    }

    #[test]
    fn rsa_public_key_strips_the_sign_byte() {
        let der = [0x30, 0x08, 0x02, 0x03, 0x00, 0xC1, 0x01, 0x02, 0x01, 0x03];
        assert_eq!(
            rsa_public_key(&der),
            Ok(RsaComponents {
                n: &[0xC1, 0x01],
                e: &[0x03]
            })
        );
        assert!(rsa_public_key(&der[..9]).is_err());
    }
}
