//! PEM text (RFC 7468): exactly one `-----BEGIN <label>-----` … `-----END <label>-----`
//! block, base64 with whitespace between, explanatory text before it tolerated (openssl
//! writes some). Used for key files and for the test/bench signing keys.
//!
//! Owns: the textual envelope. Must not: interpret the DER inside.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// The marker that makes a key file PEM rather than an HMAC secret.
pub(crate) const BEGIN: &[u8] = b"-----BEGIN ";

/// One decoded PEM block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Block {
    /// The label, e.g. `PUBLIC KEY`.
    pub(crate) label: String,
    /// The decoded DER.
    pub(crate) der: Vec<u8>,
}

/// Whether `bytes` hold a PEM `-----BEGIN ` marker anywhere (openssl may write text before
/// it; a random secret holding those 11 bytes is not a practical concern).
pub(crate) fn looks_like_pem(bytes: &[u8]) -> bool {
    bytes.windows(BEGIN.len()).any(|w| w == BEGIN)
}

/// Decode the single PEM block in `text`.
pub(crate) fn decode(text: &[u8]) -> Result<Block, String> {
    let text = std::str::from_utf8(text).map_err(|_| "PEM file is not text".to_string())?;
    let begin_at = text
        .find("-----BEGIN ")
        .ok_or_else(|| "no -----BEGIN line".to_string())?;
    let after_begin = &text[begin_at + "-----BEGIN ".len()..];
    let (label, body) = after_begin
        .split_once("-----")
        .ok_or_else(|| "unterminated -----BEGIN line".to_string())?;
    let end_marker = format!("-----END {label}-----");
    let (b64, after) = body
        .split_once(&end_marker)
        .ok_or_else(|| format!("no {end_marker} line"))?;
    if after.contains("-----BEGIN ") {
        return Err("more than one PEM block (give one key per file)".into());
    }
    let compact: String = b64.split_ascii_whitespace().collect();
    if compact.contains(':') {
        return Err("encrypted or headed PEM is not supported".into());
    }
    let der = STANDARD
        .decode(compact.as_bytes())
        .map_err(|_| format!("bad base64 in the {label} block"))?;
    if der.is_empty() {
        return Err(format!("empty {label} block"));
    }
    Ok(Block {
        label: label.to_string(),
        der,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_block_with_surrounding_text() {
        let pem = b"Public-Key: (8 bit)\n-----BEGIN PUBLIC KEY-----\nAAEC\nAw==\n-----END PUBLIC KEY-----\n";
        assert!(looks_like_pem(b" \n-----BEGIN X-----"));
        assert!(looks_like_pem(&pem[..]));
        assert!(!looks_like_pem(b"-----BEGIN"));
        assert!(!looks_like_pem(b"0123456789abcdef0123456789abcdef"));
        assert_eq!(
            decode(pem),
            Ok(Block {
                label: "PUBLIC KEY".into(),
                der: vec![0, 1, 2, 3]
            })
        );
    }

    #[test]
    fn refusals() {
        for (bad, why) in [
            (&b"-----BEGIN PUBLIC KEY-----\nAAEC\n"[..], "no -----END"),
            (b"-----BEGIN A-----\nAAEC\n-----END B-----\n", "no -----END"),
            (b"-----BEGIN A-----\n!!!!\n-----END A-----\n", "bad base64"),
            (b"-----BEGIN A-----\n-----END A-----\n", "empty"),
            (
                b"-----BEGIN A-----\nAAEC\n-----END A-----\n-----BEGIN A-----\nAAEC\n-----END A-----\n",
                "more than one",
            ),
            (
                b"-----BEGIN A-----\nProc-Type: 4,ENCRYPTED\nAAEC\n-----END A-----\n",
                "encrypted",
            ),
            (b"\xff\xfe", "not text"),
        ] {
            let e = decode(bad).expect_err(why);
            assert!(e.contains(why), "{e} / {why}");
        }
    }
}
