//! Host functions that transformations may call, beyond Hog's standard library (PostHog
//! provides the same ones to transformations):
//!
//! - `cleanNullValues(value)`: the value with null entries of objects removed, recursively.
//! - `isKnownBotUserAgent(ua)`: whether a user agent is a known crawler, monitor or tool.
//! - `isKnownBotIp(ip)`: whether an IP is in a known crawler range.
//! - `geoipLookup(ip)`: the GeoIP2/GeoLite2 City record of an IP from the `.mmdb` file named by
//!   `QUILL_GEOIP_DB`, as `{city: {names: {en}}, country: {iso_code, names}, location: {...},
//!   ...}`, or null when the IP is unknown or no database is configured.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use quill_hog::HostFn;
use serde_json::{Map, Value};

/// A failure opening the GeoIP database.
#[derive(Debug, thiserror::Error)]
#[error("GeoIP database {path}: {detail}")]
pub struct GeoIpError {
    /// The file.
    pub path: String,
    /// What went wrong.
    pub detail: String,
}

/// The host's resources.
#[derive(Clone, Default)]
pub struct Host {
    geoip: Option<Arc<maxminddb::Reader<Vec<u8>>>>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("geoip", &self.geoip.is_some())
            .finish()
    }
}

impl Host {
    /// Opens a GeoIP database (`.mmdb`) for `geoipLookup`.
    pub fn with_geoip(mut self, path: &Path) -> Result<Host, GeoIpError> {
        let reader = maxminddb::Reader::open_readfile(path).map_err(|e| GeoIpError {
            path: path.display().to_string(),
            detail: e.to_string(),
        })?;
        self.geoip = Some(Arc::new(reader));
        Ok(self)
    }

    /// The host functions, for [`quill_hog::ExecOptions::functions`].
    pub fn functions(&self) -> HashMap<String, HostFn> {
        let mut out: HashMap<String, HostFn> = HashMap::new();
        out.insert(
            "cleanNullValues".into(),
            Arc::new(|args: &[Value]| {
                Ok(clean_nulls(args.first().cloned().unwrap_or(Value::Null)))
            }),
        );
        out.insert(
            "isKnownBotUserAgent".into(),
            Arc::new(|args: &[Value]| {
                Ok(Value::Bool(
                    args.first()
                        .and_then(Value::as_str)
                        .is_some_and(is_bot_user_agent),
                ))
            }),
        );
        out.insert(
            "isKnownBotIp".into(),
            Arc::new(|args: &[Value]| {
                Ok(Value::Bool(
                    args.first().and_then(Value::as_str).is_some_and(is_bot_ip),
                ))
            }),
        );
        let geoip = self.geoip.clone();
        out.insert(
            "geoipLookup".into(),
            Arc::new(move |args: &[Value]| {
                let Some(reader) = &geoip else {
                    return Ok(Value::Null);
                };
                let Some(ip) = args
                    .first()
                    .and_then(Value::as_str)
                    .and_then(|s| s.trim().parse::<IpAddr>().ok())
                else {
                    return Ok(Value::Null);
                };
                match reader.lookup::<maxminddb::geoip2::City>(ip) {
                    Ok(Some(city)) => Ok(serde_json::to_value(city).unwrap_or(Value::Null)),
                    Ok(None) => Ok(Value::Null),
                    Err(e) => Err(format!("geoipLookup: {e}")),
                }
            }),
        );
        out
    }
}

fn clean_nulls(v: Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, clean_nulls(v)))
                .collect::<Map<_, _>>(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(clean_nulls).collect()),
        other => other,
    }
}

/// Lower-case fragments of crawler, monitor and tool user agents.
const BOT_AGENTS: &[&str] = &[
    "bot",
    "crawler",
    "spider",
    "slurp",
    "crawling",
    "headlesschrome",
    "phantomjs",
    "python-requests",
    "python-urllib",
    "curl/",
    "wget/",
    "go-http-client",
    "java/",
    "okhttp",
    "axios/",
    "node-fetch",
    "httpclient",
    "libwww-perl",
    "scrapy",
    "lighthouse",
    "pingdom",
    "uptimerobot",
    "statuscake",
    "facebookexternalhit",
    "embedly",
    "quora link preview",
    "whatsapp",
    "bingpreview",
    "google-inspectiontool",
    "mediapartners-google",
    "adsbot",
    "feedfetcher",
    "apis-google",
    "yandex",
    "baiduspider",
    "duckduckgo",
    "petalbot",
    "ahrefs",
    "semrush",
    "mj12bot",
    "dotbot",
    "gptbot",
    "chatgpt-user",
    "claudebot",
    "anthropic-ai",
    "ccbot",
    "bytespider",
    "amazonbot",
    "applebot",
    "headless",
];

/// Whether a user agent belongs to a known bot.
pub fn is_bot_user_agent(ua: &str) -> bool {
    let ua = ua.to_ascii_lowercase();
    ua.trim().is_empty() || BOT_AGENTS.iter().any(|b| ua.contains(b))
}

/// Published crawler ranges (Googlebot, Bingbot, Applebot, Yandex, Baidu, DuckDuckBot).
const BOT_RANGES: &[&str] = &[
    "66.249.64.0/19",
    "64.233.160.0/19",
    "157.55.39.0/24",
    "207.46.13.0/24",
    "40.77.167.0/24",
    "13.66.139.0/24",
    "17.241.208.0/20",
    "17.22.237.0/24",
    "5.255.231.0/24",
    "180.76.15.0/24",
    "20.191.45.212/32",
    "2001:4860:4801::/48",
];

/// Whether an IP is in a known crawler range.
pub fn is_bot_ip(ip: &str) -> bool {
    let Ok(ip) = ip.trim().parse::<IpAddr>() else {
        return false;
    };
    BOT_RANGES.iter().any(|r| in_range(ip, r))
}

fn in_range(ip: IpAddr, cidr: &str) -> bool {
    let Some((net, bits)) = cidr.split_once('/') else {
        return false;
    };
    let (Ok(net), Ok(bits)) = (net.parse::<IpAddr>(), bits.parse::<u32>()) else {
        return false;
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bots() {
        assert!(is_bot_user_agent("Mozilla/5.0 (compatible; Googlebot/2.1)"));
        assert!(is_bot_user_agent("curl/8.1"));
        assert!(!is_bot_user_agent(
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 Safari/605.1.15"
        ));
        assert!(is_bot_ip("66.249.66.1"));
        assert!(!is_bot_ip("10.0.0.1"));
        assert!(!is_bot_ip("nonsense"));
    }

    #[test]
    fn clean_nulls_recurses() {
        assert_eq!(
            clean_nulls(json!({"a": null, "b": {"c": null, "d": 1}, "e": [null, {"f": null}]})),
            json!({"b": {"d": 1}, "e": [null, {}]})
        );
    }
}
