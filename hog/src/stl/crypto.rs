//! Hashes, HMAC chains and IP range checks.

use base64::Engine;
use hmac::{Hmac, Mac};
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::{arg, NativeFn};
use crate::error::VmError;
use crate::print::print_string_output;
use crate::value::Value;

type Reg<'a> = &'a mut dyn FnMut(&'static str, usize, Option<usize>, NativeFn);

fn encode(bytes: &[u8], encoding: &Value) -> Result<Value, VmError> {
    Ok(Value::str(match encoding.as_str().unwrap_or("hex") {
        "hex" => hex(bytes),
        "base64" => base64::engine::general_purpose::STANDARD.encode(bytes),
        "base64url" => base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
        "binary" => bytes.iter().map(|b| char::from(*b)).collect::<String>(),
        other => return Err(VmError::exception(format!("Unknown encoding: {other}"))),
    }))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

fn hash(name: &str, data: &[u8]) -> Vec<u8> {
    match name {
        "md5" => Md5::digest(data).to_vec(),
        "sha1" => Sha1::digest(data).to_vec(),
        _ => Sha256::digest(data).to_vec(),
    }
}

/// `md5Hex`, `sha1Hex` and `sha256Hex`: the digest and its hex digits stay on the Rust stack,
/// so the result string is the only allocation (a hashing transformation calls this per event).
fn hashed_hex(alg: &'static str, a: &[Value]) -> Value {
    fn hex_of<D: Digest>(data: &[u8]) -> Value {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let digest = D::digest(data);
        // The longest digest here is SHA-256's 32 bytes.
        let mut buf = [0u8; 64];
        let n = digest.len().min(32);
        for (i, b) in digest.iter().take(n).enumerate() {
            buf[2 * i] = DIGITS[usize::from(b >> 4)];
            buf[2 * i + 1] = DIGITS[usize::from(b & 15)];
        }
        // Hex digits are ASCII, so this never fails.
        Value::str(std::str::from_utf8(&buf[..2 * n]).unwrap_or_default())
    }
    let printed;
    let data = match arg(a, 0) {
        Value::Null => return Value::Null,
        Value::Str(s) => s.as_bytes(),
        v => {
            printed = print_string_output(v);
            printed.as_bytes()
        }
    };
    match alg {
        "md5" => hex_of::<Md5>(data),
        "sha1" => hex_of::<Sha1>(data),
        _ => hex_of::<Sha256>(data),
    }
}

/// `md5`, `sha1` and `sha256`: the digest in the encoding named by the second argument.
fn hashed(alg: &'static str, a: &[Value]) -> Result<Value, VmError> {
    match arg(a, 0) {
        Value::Null => Ok(Value::Null),
        Value::Str(s) => encode(&hash(alg, s.as_bytes()), arg(a, 1)),
        v => encode(&hash(alg, print_string_output(v).as_bytes()), arg(a, 1)),
    }
}

fn hmac_chain(alg: &str, a: &[Value], hex: bool) -> Result<Value, VmError> {
    let Value::Array(items) = arg(a, 0) else {
        return Err(VmError::exception(
            "Data array must contain at least two elements.",
        ));
    };
    let parts: Vec<String> = items.0.borrow().iter().map(print_string_output).collect();
    if parts.len() < 2 {
        return Err(VmError::exception(
            "Data array must contain at least two elements.",
        ));
    }
    let mac = |key: &[u8], data: &[u8]| -> Result<Vec<u8>, VmError> {
        let bad = |_| VmError::exception("invalid HMAC key");
        Ok(if alg == "sha1" {
            let mut m = Hmac::<Sha1>::new_from_slice(key).map_err(bad)?;
            m.update(data);
            m.finalize().into_bytes().to_vec()
        } else {
            let mut m = Hmac::<Sha256>::new_from_slice(key).map_err(bad)?;
            m.update(data);
            m.finalize().into_bytes().to_vec()
        })
    };
    let mut digest = mac(parts[0].as_bytes(), parts[1].as_bytes())?;
    for p in &parts[2..] {
        digest = mac(&digest, p.as_bytes())?;
    }
    encode(&digest, if hex { &Value::Null } else { arg(a, 1) })
}

pub(super) fn register(add: Reg<'_>) {
    add("md5Hex", 1, Some(1), |_, _, a| Ok(hashed_hex("md5", a)));
    add("sha1Hex", 1, Some(1), |_, _, a| Ok(hashed_hex("sha1", a)));
    add("sha256Hex", 1, Some(1), |_, _, a| {
        Ok(hashed_hex("sha256", a))
    });
    add("md5", 1, Some(2), |_, _, a| hashed("md5", a));
    add("sha1", 1, Some(2), |_, _, a| hashed("sha1", a));
    add("sha256", 1, Some(2), |_, _, a| hashed("sha256", a));
    add("sha256HmacChainHex", 1, Some(1), |_, _, a| {
        hmac_chain("sha256", a, true)
    });
    add("sha256HmacChain", 1, Some(2), |_, _, a| {
        hmac_chain("sha256", a, false)
    });
    add("sha1HmacChainHex", 1, Some(1), |_, _, a| {
        hmac_chain("sha1", a, true)
    });
    add("sha1HmacChain", 1, Some(2), |_, _, a| {
        hmac_chain("sha1", a, false)
    });
    add("isIPAddressInRange", 2, Some(2), |_, _, a| {
        Ok(Value::Bool(
            match (arg(a, 0).as_str(), arg(a, 1).as_str()) {
                (Some(ip), Some(cidr)) => ip_in_range(ip, cidr),
                _ => false,
            },
        ))
    });
}

/// Whether `ip` falls in `cidr` (IPv4 or IPv6).
pub fn ip_in_range(ip: &str, cidr: &str) -> bool {
    let Some((net, bits)) = cidr.split_once('/') else {
        return false;
    };
    let Ok(bits) = bits.parse::<u32>() else {
        return false;
    };
    match (
        ip.parse::<std::net::IpAddr>(),
        net.parse::<std::net::IpAddr>(),
    ) {
        (Ok(std::net::IpAddr::V4(a)), Ok(std::net::IpAddr::V4(n))) if bits <= 32 => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            (u32::from(a) & mask) == (u32::from(n) & mask)
        }
        (Ok(std::net::IpAddr::V6(a)), Ok(std::net::IpAddr::V6(n))) if bits <= 128 => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            (u128::from(a) & mask) == (u128::from(n) & mask)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_ranges() {
        assert!(ip_in_range("192.168.1.5", "192.168.1.0/24"));
        assert!(!ip_in_range("192.168.2.5", "192.168.1.0/24"));
        assert!(ip_in_range("2001:db8::1", "2001:db8::/32"));
        assert!(!ip_in_range("10.0.0.1", "2001:db8::/32"));
    }

    #[test]
    fn hashes() {
        let v = hashed_hex("md5", &[Value::str("hello")]);
        assert_eq!(v.as_str(), Some("5d41402abc4b2a76b9719d911017c592"));
    }

    /// The hex functions give what the general way (digest, then `encode` as hex) gives.
    #[test]
    fn hex_digests_match_the_general_encoding() {
        let inputs = [
            Value::Null,
            Value::str(""),
            Value::str("hello"),
            Value::str("s3cr3tuser42@example.com and a much longer tail of text".repeat(5)),
            Value::Int(-7),
            Value::Float(1.5),
            Value::Bool(true),
            Value::array_untracked(vec![Value::str("a"), Value::Int(1)]),
        ];
        for alg in ["md5", "sha1", "sha256"] {
            for x in &inputs {
                let general = hashed(alg, &[x.clone(), Value::str("hex")]).unwrap();
                let fast = hashed_hex(alg, std::slice::from_ref(x));
                assert_eq!(fast.as_str(), general.as_str(), "{alg} of {x:?}");
                assert_eq!(fast.type_name(), general.type_name(), "{alg} of {x:?}");
            }
        }
    }
}
