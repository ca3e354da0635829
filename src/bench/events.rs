//! A generator of realistic PostHog events (~500 bytes each) with skewed per-person activity.

use serde_json::{json, Value};

/// A small deterministic PRNG (xorshift64*), so runs are repeatable without a dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Skewed toward 0: a few persons are very active, most are not.
    pub fn skewed(&mut self, n: u64) -> u64 {
        let u = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        ((u * u * u) * n as f64) as u64
    }
}

const PAGES: &[&str] = &[
    "/",
    "/pricing",
    "/docs",
    "/blog/launch",
    "/signup",
    "/checkout",
    "/product/42",
    "/about",
];
const BROWSERS: &[&str] = &["Chrome", "Firefox", "Safari", "Edge"];
const OSES: &[&str] = &["Mac OS X", "Windows", "Linux", "iOS", "Android"];

/// One event as an SDK would send it inside a batch.
pub fn event(rng: &mut Rng, persons: u64, timestamp_ms: i64) -> Value {
    let person = rng.skewed(persons);
    let roll = rng.below(100);
    let name = match roll {
        0..=69 => "$pageview",
        70..=84 => "$autocapture",
        85..=94 => "signed_up",
        _ => "purchase",
    };
    let page = PAGES[rng.below(PAGES.len() as u64) as usize];
    let uuid = uuid::Uuid::from_u64_pair(rng.next_u64(), rng.next_u64());
    json!({
        "event": name,
        "distinct_id": format!("user-{person}"),
        "uuid": uuid.to_string(),
        "timestamp": quill_pipeline::event::format_timestamp(timestamp_ms * 1000),
        "properties": {
            "$current_url": format!("https://app.example.com{page}"),
            "$host": "app.example.com",
            "$pathname": page,
            "$browser": BROWSERS[rng.below(4) as usize],
            "$browser_version": 120 + rng.below(5),
            "$os": OSES[rng.below(5) as usize],
            "$device_type": "Desktop",
            "$screen_height": 1080,
            "$screen_width": 1920,
            "$lib": "web",
            "$lib_version": "1.200.0",
            "$session_id": format!("0192{:012x}-{:04x}", person, rng.below(4)),
            "$referrer": "https://www.google.com/",
            "$referring_domain": "www.google.com",
            "utm_source": "newsletter",
            "plan": if person.is_multiple_of(3) { "pro" } else { "free" },
            "price": rng.below(200),
        }
    })
}
