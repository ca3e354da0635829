//! From request bytes to JSON text: form fields, base64, gzip and LZ-string, in PostHog's order.

use std::io::Read;

use base64::Engine;

use super::error::CaptureError;

/// Decompressed payloads are bounded at five times the batch limit, as PostHog does.
pub const MAX_DECOMPRESSED: usize = 5 * 20 * 1024 * 1024;

/// A compression hint from the `compression` query parameter or form field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// `gzip` or `gzip-js`.
    Gzip,
    /// `lz64` or `lz-string`: LZ-string in its base64 flavour.
    Lz64,
    /// `base64` or `b64`.
    Base64,
}

impl Compression {
    /// Parses a hint; an empty value means none, anything unknown is an error.
    pub fn parse(value: &str) -> Result<Option<Compression>, CaptureError> {
        match value {
            "" => Ok(None),
            "gzip" | "gzip-js" => Ok(Some(Compression::Gzip)),
            "lz64" | "lz-string" => Ok(Some(Compression::Lz64)),
            "base64" | "b64" => Ok(Some(Compression::Base64)),
            other => Err(CaptureError::UnknownCompression(
                other.chars().take(32).collect(),
            )),
        }
    }
}

/// What the HTTP layer found in a request.
#[derive(Debug, Default)]
pub struct RawPayload<'a> {
    /// The `data` query parameter, already URL-decoded.
    pub data_param: Option<&'a str>,
    /// The request body.
    pub body: &'a [u8],
    /// The `Content-Type` header.
    pub content_type: Option<&'a str>,
    /// The `Content-Encoding` header.
    pub content_encoding: Option<&'a str>,
    /// The `compression` query parameter.
    pub compression: Option<Compression>,
    /// Legacy routes decode a payload that still looks like base64 once more.
    pub legacy: bool,
}

/// Decodes a request payload into JSON text.
pub fn decode(raw: &RawPayload<'_>) -> Result<String, CaptureError> {
    let mut compression = raw.compression;
    if raw
        .content_encoding
        .is_some_and(|e| e.eq_ignore_ascii_case("gzip"))
    {
        compression = Some(Compression::Gzip);
    }
    let mut payload: Vec<u8> = match raw.data_param {
        Some(data) => restore_plus(data).into_bytes(),
        None => raw.body.to_vec(),
    };
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Err(CaptureError::EmptyPayload);
    }

    // curl and some proxies label raw JSON as a form; take JSON as what it is.
    let looks_like_json = payload.first().is_some_and(|b| matches!(b, b'{' | b'['));
    let is_form = (raw
        .content_type
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"))
        && !looks_like_json)
        || payload.starts_with(b"data=");
    if raw.data_param.is_none() && is_form {
        let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&payload)
            .map_err(|e| CaptureError::Undecodable(format!("form body: {e}")))?;
        let mut data = None;
        for (key, value) in fields {
            match key.as_str() {
                "data" => data = Some(value),
                "compression" => compression = Compression::parse(&value)?.or(compression),
                _ => {}
            }
        }
        let data = data.ok_or(CaptureError::EmptyPayload)?;
        payload = restore_plus(&data).into_bytes();
        if payload.is_empty() {
            return Err(CaptureError::EmptyPayload);
        }
    }

    // LZ-string output is itself base64 text, so it must not be base64-decoded first.
    if compression != Some(Compression::Lz64)
        && (compression == Some(Compression::Base64) || looks_like_base64(&payload))
    {
        payload = decode_base64(&payload)?;
    }

    let mut text = if compression == Some(Compression::Gzip) || payload.starts_with(&[0x1f, 0x8b]) {
        gunzip(&payload)?
    } else if compression == Some(Compression::Lz64) {
        let text = std::str::from_utf8(&payload)
            .map_err(|_| CaptureError::Undecodable("lz64 payload is not text".into()))?;
        let decoded = lz_str::decompress_from_base64(text.trim())
            .ok_or_else(|| CaptureError::Undecodable("invalid lz64 data".into()))?;
        String::from_utf16(&decoded)
            .map_err(|_| CaptureError::Undecodable("lz64 data is not valid UTF-16".into()))?
    } else {
        into_utf8(payload)?
    };

    if raw.legacy && looks_like_base64(text.as_bytes()) {
        text = into_utf8(decode_base64(text.as_bytes())?)?;
    }
    if text.len() > MAX_DECOMPRESSED {
        return Err(CaptureError::PayloadTooLarge {
            limit: MAX_DECOMPRESSED,
        });
    }
    Ok(text)
}

/// Form and query decoding turn `+` into a space; base64 never contains spaces, so undo that.
fn restore_plus(data: &str) -> String {
    data.replace(' ', "+")
}

/// Whether the whole payload is plausibly base64: only its alphabet (either flavour), padding
/// only at the end, and long enough that a short word is not mistaken for it.
fn looks_like_base64(bytes: &[u8]) -> bool {
    let trimmed = bytes.trim_ascii();
    if trimmed.len() < 4 {
        return false;
    }
    let body_end = trimmed
        .iter()
        .rposition(|&b| b != b'=')
        .map_or(0, |i| i + 1);
    if trimmed.len() - body_end > 2 {
        return false;
    }
    trimmed[..body_end].iter().all(|&b| {
        b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_' | b'\n' | b'\r')
    })
}

fn decode_base64(bytes: &[u8]) -> Result<Vec<u8>, CaptureError> {
    let cleaned: Vec<u8> = bytes
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .map(|b| match b {
            b'-' => b'+',
            b'_' => b'/',
            other => other,
        })
        .collect();
    let unpadded = cleaned
        .strip_suffix(b"==")
        .or_else(|| cleaned.strip_suffix(b"="))
        .unwrap_or(&cleaned);
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(unpadded)
        .map_err(|e| CaptureError::Undecodable(format!("invalid base64: {e}")))
}

fn gunzip(bytes: &[u8]) -> Result<String, CaptureError> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .take(MAX_DECOMPRESSED as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| CaptureError::Undecodable(format!("invalid gzip data: {e}")))?;
    if out.len() > MAX_DECOMPRESSED {
        return Err(CaptureError::PayloadTooLarge {
            limit: MAX_DECOMPRESSED,
        });
    }
    into_utf8(out)
}

fn into_utf8(bytes: Vec<u8>) -> Result<String, CaptureError> {
    String::from_utf8(bytes)
        .map_err(|_| CaptureError::Undecodable("the payload is not valid UTF-8".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    const JSON: &str = r#"{"event":"e","distinct_id":"d"}"#;

    fn body(body: &[u8]) -> RawPayload<'_> {
        RawPayload {
            body,
            legacy: true,
            ..RawPayload::default()
        }
    }

    #[test]
    fn plain_json_passes_through() {
        assert_eq!(decode(&body(JSON.as_bytes())).unwrap(), JSON);
    }

    #[test]
    fn gzip_is_sniffed_without_a_hint() {
        assert_eq!(decode(&body(&gzip(JSON.as_bytes()))).unwrap(), JSON);
    }

    #[test]
    fn base64_form_bodies_decode() {
        let b64 = base64::engine::general_purpose::STANDARD.encode(JSON);
        let form = format!("data={}", b64.replace('+', "%2B"));
        let raw = RawPayload {
            content_type: Some("application/x-www-form-urlencoded"),
            ..body(form.as_bytes())
        };
        assert_eq!(decode(&raw).unwrap(), JSON);
    }

    #[test]
    fn lz64_decodes_with_its_hint() {
        let packed = lz_str::compress_to_base64(JSON);
        let raw = RawPayload {
            compression: Some(Compression::Lz64),
            ..body(packed.as_bytes())
        };
        assert_eq!(decode(&raw).unwrap(), JSON);
    }

    #[test]
    fn unknown_compression_and_empty_payloads_are_errors() {
        assert!(matches!(
            Compression::parse("brotli"),
            Err(CaptureError::UnknownCompression(_))
        ));
        assert_eq!(decode(&body(b"")), Err(CaptureError::EmptyPayload));
        assert!(matches!(
            decode(&body(&[0x1f, 0x8b, 1, 2])),
            Err(CaptureError::Undecodable(_))
        ));
    }
}
