//! Built-in templates, each written in Hog (the `.hog` files in `templates/`).
//!
//! `GET /api/hog_function_templates` lists them; a function created with a `template_id` and
//! no `hog` takes the template's source, name and inputs schema. List inputs are
//! comma-separated strings, so that they can also be templates.

use serde_json::{json, Value};

/// A built-in template.
#[derive(Debug, Clone)]
pub struct Template {
    /// Stable id, such as `template-pii-hashing`.
    pub id: &'static str,
    /// A name for people.
    pub name: &'static str,
    /// What it does.
    pub description: &'static str,
    /// The Hog source.
    pub hog: &'static str,
    /// The inputs it takes.
    pub inputs_schema: Value,
}

impl Template {
    /// The template as the API lists it.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "type": "transformation",
            "hog": self.hog,
            "inputs_schema": self.inputs_schema,
            "status": "stable",
        })
    }
}

fn string(key: &str, label: &str, default: &str, secret: bool) -> Value {
    json!({"key": key, "type": "string", "label": label, "default": default, "secret": secret, "required": false})
}

fn boolean(key: &str, label: &str, default: bool) -> Value {
    json!({"key": key, "type": "boolean", "label": label, "default": default, "required": false})
}

fn choice(key: &str, label: &str, default: &str, choices: &[&str]) -> Value {
    let choices: Vec<Value> = choices
        .iter()
        .map(|c| json!({"label": c, "value": c}))
        .collect();
    json!({"key": key, "type": "choice", "label": label, "default": default, "choices": choices, "required": false})
}

/// Every built-in template, most used first.
pub fn all() -> Vec<Template> {
    vec![
        Template {
            id: "template-pii-hashing",
            name: "PII hashing",
            description: "Replaces personal properties with their SHA-256 hash (salted), so they can still be joined on but never stored in clear.",
            hog: include_str!("../templates/pii_hashing.hog"),
            inputs_schema: json!([
                string("salt", "Salt", "", true),
                string("propertiesToHash", "Properties to hash (comma-separated)", "$email,email,$ip", false),
                boolean("hashDistinctId", "Hash the distinct id too", false),
            ]),
        },
        Template {
            id: "template-drop-events",
            name: "Drop events",
            description: "Drops events that match the filters (and, if given, one of the event names).",
            hog: include_str!("../templates/drop_events.hog"),
            inputs_schema: json!([string("eventNames", "Event names to drop (comma-separated; empty: all that match the filters)", "", false)]),
        },
        Template {
            id: "template-filter-properties",
            name: "Filter properties",
            description: "Removes the listed properties, or keeps only them.",
            hog: include_str!("../templates/filter_properties.hog"),
            inputs_schema: json!([
                string("properties", "Properties (comma-separated)", "", false),
                choice("mode", "Mode", "remove", &["remove", "keep"]),
                boolean("keepPostHogProperties", "In keep mode, also keep $-properties", true),
            ]),
        },
        Template {
            id: "template-remove-null-properties",
            name: "Remove null properties",
            description: "Removes properties whose value is null, also inside nested objects.",
            hog: include_str!("../templates/remove_null_properties.hog"),
            inputs_schema: json!([]),
        },
        Template {
            id: "template-ip-anonymization",
            name: "IP anonymization",
            description: "Zeroes the last octet of IPv4 addresses and all but the first 48 bits of IPv6 addresses in $ip.",
            hog: include_str!("../templates/ip_anonymization.hog"),
            inputs_schema: json!([]),
        },
        Template {
            id: "template-url-masking",
            name: "URL masking",
            description: "Masks the values of sensitive query parameters in URL properties.",
            hog: include_str!("../templates/url_masking.hog"),
            inputs_schema: json!([
                string("urlProperties", "URL properties (comma-separated)", "$current_url,$referrer,$initial_current_url,$initial_referrer", false),
                string("maskParams", "Parameters to mask (comma-separated; empty: all)", "email,token,password,secret,key,auth,code", false),
                string("maskWith", "Mask", "[REDACTED]", false),
            ]),
        },
        Template {
            id: "template-bot-detection",
            name: "Bot detection",
            description: "Drops events from known bots, crawlers and HTTP tools, by user agent and IP.",
            hog: include_str!("../templates/bot_detection.hog"),
            inputs_schema: json!([string("customBotPatterns", "Extra user-agent patterns (comma-separated)", "", false)]),
        },
        Template {
            id: "template-downsampling",
            name: "Downsampling",
            description: "Keeps a percentage of events, at random or per distinct id.",
            hog: include_str!("../templates/downsampling.hog"),
            inputs_schema: json!([
                {"key": "percentage", "type": "number", "label": "Percentage of events to keep", "default": 100, "required": true},
                choice("samplingMethod", "Sampling method", "random", &["random", "distinct_id"]),
            ]),
        },
        Template {
            id: "template-user-agent-parser",
            name: "User-agent parser",
            description: "Sets $browser, $browser_version, $os, $os_version and $device_type from the raw user agent.",
            hog: include_str!("../templates/user_agent_parser.hog"),
            inputs_schema: json!([boolean("overrideExisting", "Override existing values", false)]),
        },
        Template {
            id: "template-hash-properties",
            name: "Hash properties",
            description: "Replaces the listed properties with an unsalted digest (sha256, sha1 or md5).",
            hog: include_str!("../templates/hash_properties.hog"),
            inputs_schema: json!([
                string("properties", "Properties (comma-separated)", "", false),
                choice("algorithm", "Algorithm", "sha256", &["sha256", "sha1", "md5"]),
            ]),
        },
        Template {
            id: "template-geoip",
            name: "GeoIP",
            description: "Adds $geoip_* properties from the IP, using the MaxMind database configured with QUILL_GEOIP_DB.",
            hog: include_str!("../templates/geoip.hog"),
            inputs_schema: json!([]),
        },
    ]
}

/// The template with this id.
pub fn get(id: &str) -> Option<Template> {
    all().into_iter().find(|t| t.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FunctionSpec, HogTransformation, Runtime};
    use quill_pipeline::event::Event;
    use quill_pipeline::transform::{Outcome, Transform};

    fn run(id: &str, inputs: Value, properties: Value) -> Option<Event> {
        run_as(id, inputs, properties, "user-1", Runtime::default())
    }

    fn run_as(
        id: &str,
        inputs: Value,
        properties: Value,
        distinct_id: &str,
        runtime: Runtime,
    ) -> Option<Event> {
        let mut wrapped = serde_json::Map::new();
        for (k, v) in inputs.as_object().unwrap() {
            wrapped.insert(k.clone(), json!({"value": v}));
        }
        let spec = FunctionSpec::from_json(
            &json!({"template_id": id, "inputs": wrapped, "enabled": true}),
        )
        .unwrap();
        let stage = HogTransformation::new(1, 1, spec.compile().unwrap(), runtime.clone());
        let event = Event {
            uuid: Default::default(),
            project: 1,
            event: "$pageview".into(),
            distinct_id: distinct_id.into(),
            properties: properties.as_object().cloned().unwrap(),
            timestamp_us: 0,
            received_us: 0,
        };
        let out = match stage.apply(event.clone()) {
            Outcome::Keep(e) => Some(e),
            Outcome::Drop => None,
        };
        let errors: Vec<_> = runtime
            .logs
            .recent((1, 1), 10)
            .into_iter()
            .filter(|l| l.level == "error")
            .collect();
        assert!(errors.is_empty(), "{id}: {errors:?}");
        out
    }

    #[test]
    fn every_template_compiles_and_is_listed() {
        for t in all() {
            quill_hog::compile_source(t.hog).unwrap_or_else(|e| panic!("{}: {e:?}", t.id));
            assert_eq!(get(t.id).unwrap().name, t.name);
        }
        assert_eq!(all().len(), 11);
    }

    #[test]
    fn pii_hashing() {
        let out = run(
            "template-pii-hashing",
            json!({"salt": "s3cr3t", "propertiesToHash": "email, name", "hashDistinctId": true}),
            json!({"email": "a@b.c", "plan": "pro", "$set": {"email": "a@b.c"}}),
        )
        .unwrap();
        let h = "b3608f431d4b5da7bf66575f1c86b9ccca01d4f2d723c41af882c33ede326a44";
        assert_eq!(out.properties["email"], json!(h));
        assert_eq!(out.properties["$set"]["email"], json!(h));
        assert_eq!(out.properties["plan"], json!("pro"));
        assert_eq!(out.distinct_id.len(), 64);
    }

    #[test]
    fn hash_properties() {
        let out = run(
            "template-hash-properties",
            json!({"properties": "email", "algorithm": "md5"}),
            json!({"email": "a"}),
        )
        .unwrap();
        assert_eq!(
            out.properties["email"],
            json!("0cc175b9c0f1b6a831c399e269772661")
        );
    }

    #[test]
    fn drop_events() {
        assert!(run("template-drop-events", json!({}), json!({})).is_none());
        assert!(run(
            "template-drop-events",
            json!({"eventNames": "other, $pageview"}),
            json!({})
        )
        .is_none());
        assert!(run(
            "template-drop-events",
            json!({"eventNames": "other"}),
            json!({})
        )
        .is_some());
    }

    #[test]
    fn filter_and_remove_null_properties() {
        let out = run(
            "template-filter-properties",
            json!({"properties": "secret,token"}),
            json!({"secret": 1, "token": 2, "keep": 3}),
        )
        .unwrap();
        assert_eq!(Value::Object(out.properties), json!({"keep": 3}));
        let out = run(
            "template-filter-properties",
            json!({"properties": "a", "mode": "keep"}),
            json!({"a": 1, "b": 2, "$lib": "web"}),
        )
        .unwrap();
        assert_eq!(
            Value::Object(out.properties),
            json!({"a": 1, "$lib": "web"})
        );
        let out = run(
            "template-remove-null-properties",
            json!({}),
            json!({"a": null, "b": {"c": null, "d": 1}, "e": [1, null]}),
        )
        .unwrap();
        assert_eq!(
            Value::Object(out.properties),
            json!({"b": {"d": 1}, "e": [1, null]})
        );
    }

    #[test]
    fn ip_anonymization() {
        let ip = |v: &str| {
            run("template-ip-anonymization", json!({}), json!({"$ip": v}))
                .unwrap()
                .properties["$ip"]
                .clone()
        };
        assert_eq!(ip("203.0.113.77"), json!("203.0.113.0"));
        assert_eq!(
            ip("2001:db8:85a3:8d3:1319:8a2e:370:7348"),
            json!("2001:db8:85a3::")
        );
    }

    #[test]
    fn url_masking() {
        let out = run(
            "template-url-masking",
            json!({"urlProperties": "$current_url", "maskParams": "email,token", "maskWith": "***"}),
            json!({"$current_url": "https://x.io/a?email=a%40b.c&page=2&token=t#top"}),
        )
        .unwrap();
        assert_eq!(
            out.properties["$current_url"],
            json!("https://x.io/a?email=***&page=2&token=***#top")
        );
    }

    #[test]
    fn bot_detection() {
        let bot = json!({"$raw_user_agent": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"});
        assert!(run("template-bot-detection", json!({}), bot).is_none());
        let human = json!({"$raw_user_agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36", "$ip": "10.1.1.1"});
        assert!(run("template-bot-detection", json!({}), human.clone()).is_some());
        assert!(run(
            "template-bot-detection",
            json!({"customBotPatterns": "win64"}),
            human
        )
        .is_none());
        assert!(run(
            "template-bot-detection",
            json!({}),
            json!({"$ip": "66.249.66.1"})
        )
        .is_none());
    }

    #[test]
    fn downsampling() {
        let mut kept = 0;
        for i in 0..400 {
            let id = format!("user-{i}");
            let out = run_as(
                "template-downsampling",
                json!({"percentage": 25, "samplingMethod": "distinct_id"}),
                json!({}),
                &id,
                Runtime::default(),
            );
            let again = run_as(
                "template-downsampling",
                json!({"percentage": 25, "samplingMethod": "distinct_id"}),
                json!({}),
                &id,
                Runtime::default(),
            );
            assert_eq!(
                out.is_some(),
                again.is_some(),
                "deterministic per distinct id"
            );
            kept += usize::from(out.is_some());
        }
        assert!((60..140).contains(&kept), "{kept}");
        assert!(run("template-downsampling", json!({"percentage": 0}), json!({})).is_none());
        assert!(run(
            "template-downsampling",
            json!({"percentage": 100}),
            json!({})
        )
        .is_some());
    }

    #[test]
    fn user_agent_parser() {
        let out = run(
            "template-user-agent-parser",
            json!({}),
            json!({"$raw_user_agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1"}),
        )
        .unwrap();
        assert_eq!(out.properties["$browser"], json!("Safari"));
        assert_eq!(out.properties["$browser_version"], json!("17.2"));
        assert_eq!(out.properties["$os"], json!("iOS"));
        assert_eq!(out.properties["$os_version"], json!("17.2"));
        assert_eq!(out.properties["$device_type"], json!("Mobile"));
        let out = run(
            "template-user-agent-parser",
            json!({}),
            json!({"$raw_user_agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91", "$browser": "Kept"}),
        )
        .unwrap();
        assert_eq!(out.properties["$browser"], json!("Kept"));
        assert_eq!(out.properties["$browser_version"], json!("120.0.2210.91"));
        assert_eq!(out.properties["$os"], json!("Windows"));
        assert_eq!(out.properties["$device_type"], json!("Desktop"));
    }

    #[test]
    fn geoip_without_a_database_passes_events() {
        let out = run("template-geoip", json!({}), json!({"$ip": "1.2.3.4"})).unwrap();
        assert!(out.properties.get("$geoip_country_code").is_none());
    }
}
