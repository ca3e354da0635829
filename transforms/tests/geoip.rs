//! GeoIP enrichment against a small `.mmdb` written by the test (a minimal MaxMind DB writer:
//! an IPv4 search tree for one /24 network, 24-bit records, and the data and metadata sections).

use quill_pipeline::event::Event;
use quill_pipeline::transform::{Outcome, Transform};
use quill_transforms::host::Host;
use quill_transforms::watcher::WatcherConfig;
use quill_transforms::{FunctionSpec, HogTransformation, Runtime};
use serde_json::json;

enum D {
    Str(&'static str),
    F64(f64),
    U16(u16),
    U32(u32),
    U64(u64),
    Map(Vec<(&'static str, D)>),
    Arr(Vec<D>),
}

fn encode(d: &D, out: &mut Vec<u8>) {
    match d {
        D::Str(s) => {
            out.push((2 << 5) | s.len() as u8);
            out.extend_from_slice(s.as_bytes());
        }
        D::F64(f) => {
            out.push((3 << 5) | 8);
            out.extend_from_slice(&f.to_be_bytes());
        }
        D::U16(n) => {
            out.push((5 << 5) | 2);
            out.extend_from_slice(&n.to_be_bytes());
        }
        D::U32(n) => {
            out.push((6 << 5) | 4);
            out.extend_from_slice(&n.to_be_bytes());
        }
        D::U64(n) => {
            out.push(8);
            out.push(9 - 7);
            out.extend_from_slice(&n.to_be_bytes());
        }
        D::Map(fields) => {
            out.push((7 << 5) | fields.len() as u8);
            for (k, v) in fields {
                encode(&D::Str(k), out);
                encode(v, out);
            }
        }
        D::Arr(items) => {
            out.push(items.len() as u8);
            out.push(11 - 7);
            for v in items {
                encode(v, out);
            }
        }
    }
}

fn names(en: &'static str) -> D {
    D::Map(vec![("en", D::Str(en))])
}

/// A database answering for 81.2.69.0/24 only.
fn write_mmdb(path: &std::path::Path) {
    let record = D::Map(vec![
        (
            "city",
            D::Map(vec![
                ("geoname_id", D::U32(2643743)),
                ("names", names("London")),
            ]),
        ),
        (
            "continent",
            D::Map(vec![("code", D::Str("EU")), ("names", names("Europe"))]),
        ),
        (
            "country",
            D::Map(vec![
                ("iso_code", D::Str("GB")),
                ("names", names("United Kingdom")),
            ]),
        ),
        (
            "location",
            D::Map(vec![
                ("accuracy_radius", D::U16(10)),
                ("latitude", D::F64(51.5142)),
                ("longitude", D::F64(-0.0931)),
                ("time_zone", D::Str("Europe/London")),
            ]),
        ),
        ("postal", D::Map(vec![("code", D::Str("EC2V"))])),
        (
            "subdivisions",
            D::Arr(vec![D::Map(vec![
                ("iso_code", D::Str("ENG")),
                ("names", names("England")),
            ])]),
        ),
    ]);
    let mut data = Vec::new();
    encode(&record, &mut data);

    let prefix: u32 = u32::from(std::net::Ipv4Addr::new(81, 2, 69, 0));
    let depth = 24u32;
    let node_count = depth;
    let empty = node_count; // "no data"
    let data_pointer = node_count + 16; // the record at offset 0 of the data section
    let mut tree = Vec::new();
    for i in 0..depth {
        let bit = (prefix >> (31 - i)) & 1;
        let next = if i + 1 == depth { data_pointer } else { i + 1 };
        let (left, right) = if bit == 0 {
            (next, empty)
        } else {
            (empty, next)
        };
        for r in [left, right] {
            tree.extend_from_slice(&r.to_be_bytes()[1..]);
        }
    }
    let mut file = tree;
    file.extend_from_slice(&[0u8; 16]);
    file.extend_from_slice(&data);
    file.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
    let metadata = D::Map(vec![
        ("binary_format_major_version", D::U16(2)),
        ("binary_format_minor_version", D::U16(0)),
        ("build_epoch", D::U64(1_700_000_000)),
        ("database_type", D::Str("GeoLite2-City")),
        ("description", D::Map(vec![("en", D::Str("Quill test"))])),
        ("ip_version", D::U16(4)),
        ("languages", D::Arr(vec![D::Str("en")])),
        ("node_count", D::U32(node_count)),
        ("record_size", D::U16(24)),
    ]);
    encode(&metadata, &mut file);
    std::fs::write(path, file).unwrap();
}

fn event(ip: &str) -> Event {
    Event {
        uuid: Default::default(),
        project: 1,
        event: "$pageview".into(),
        distinct_id: "u".into(),
        properties: json!({"$ip": ip}).as_object().cloned().unwrap(),
        timestamp_us: 0,
        received_us: 0,
    }
}

#[test]
fn geoip_template_enriches_from_a_user_supplied_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("test.mmdb");
    write_mmdb(&path);
    let host = Host::default().with_geoip(&path).unwrap();
    let runtime = Runtime::new(WatcherConfig::default(), host);
    let spec = FunctionSpec::from_json(&json!({"template_id": "template-geoip", "enabled": true}))
        .unwrap();
    let stage = HogTransformation::new(1, 1, spec.compile().unwrap(), runtime.clone());

    let Outcome::Keep(out) = stage.apply(event("81.2.69.160")) else {
        panic!("dropped")
    };
    let p = &out.properties;
    assert_eq!(p["$geoip_city_name"], json!("London"), "{p:?}");
    assert_eq!(p["$geoip_country_code"], json!("GB"));
    assert_eq!(p["$geoip_country_name"], json!("United Kingdom"));
    assert_eq!(p["$geoip_continent_code"], json!("EU"));
    assert_eq!(p["$geoip_subdivision_1_code"], json!("ENG"));
    assert_eq!(p["$geoip_time_zone"], json!("Europe/London"));
    assert_eq!(p["$geoip_latitude"], json!(51.5142));
    assert_eq!(p["$set"]["$geoip_city_name"], json!("London"));
    assert_eq!(p["$set_once"]["$initial_geoip_country_code"], json!("GB"));

    // An IP the database does not know passes unchanged.
    let Outcome::Keep(other) = stage.apply(event("10.0.0.1")) else {
        panic!("dropped")
    };
    assert_eq!(other, event("10.0.0.1"));
    assert!(runtime.logs.recent((1, 1), 10).is_empty());
}
