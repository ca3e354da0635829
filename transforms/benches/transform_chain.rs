//! Per-event overhead of the transformation stage: events through a [`TransformChain`] of Hog
//! transformations, as capture runs it before the log append.
//!
//! `cargo bench -p quill-transforms --bench transform_chain`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use quill_pipeline::event::Event;
use quill_pipeline::transform::TransformChain;
use quill_transforms::{FunctionSpec, HogTransformation, Runtime};
use serde_json::{json, Value};

fn event(n: u64) -> Event {
    let props = json!({
        "$current_url": format!("https://example.com/products/{n}?ref=ad"),
        "$browser": "Chrome", "$os": "Mac OS X", "$lib": "web",
        "$session_id": format!("0190a1b2-{n:08}"), "$referrer": "https://google.com/",
        "$ip": "203.0.113.7", "email": format!("user{}@example.com", n % 5000),
        "plan": "pro", "price": n % 100,
    });
    Event {
        uuid: Default::default(),
        project: 1,
        event: "$pageview".into(),
        distinct_id: format!("user-{}", n % 5000),
        properties: props.as_object().cloned().unwrap_or_default(),
        timestamp_us: 1_700_000_000_000_000 + n as i64,
        received_us: 0,
    }
}

fn chain(functions: &[Value]) -> TransformChain {
    let runtime = Runtime::default();
    let mut chain = TransformChain::empty();
    for (i, f) in functions.iter().enumerate() {
        let spec = FunctionSpec::from_json(f).expect("valid");
        chain.push(Box::new(HogTransformation::new(
            1,
            i as u64 + 1,
            spec.compile().expect("compiles"),
            runtime.clone(),
        )));
    }
    chain
}

fn bench(c: &mut Criterion) {
    let pii = json!({"type": "transformation", "name": "pii", "template_id": "template-pii-hashing",
        "inputs": {"salt": {"value": "s3cr3t"}, "propertiesToHash": {"value": "email"}}, "enabled": true});
    let inline = json!({"type": "transformation", "name": "inline",
        "hog": "let e := event\ne.properties.email := sha256Hex(concat(inputs.salt, e.properties.email))\nreturn e",
        "inputs": {"salt": {"value": "s3cr3t"}}, "enabled": true});
    let templated = json!({"type": "transformation", "name": "templated",
        "hog": "let e := event\ne.properties.tag := inputs.tag\nreturn e",
        "inputs": {"tag": {"value": "{event.event}:{event.properties.plan}"}}, "enabled": true});
    let filtered_out = json!({"type": "transformation", "name": "other events", "hog": "return null",
        "filters": {"events": [{"id": "internal_ping"}]}, "enabled": true});
    let cases = [
        ("empty_chain", vec![]),
        ("filtered_out", vec![filtered_out]),
        ("pii_hashing_template", vec![pii.clone()]),
        ("inline_sha256", vec![inline]),
        ("templated_input", vec![templated]),
        (
            "pii_then_drop_filter",
            vec![
                pii,
                json!({"type": "transformation", "name": "drop",
            "template_id": "template-drop-events", "filters": {"events": [{"id": "internal_ping"}]}, "enabled": true}),
            ],
        ),
    ];
    let events: Vec<Event> = (0..1000).map(event).collect();
    let mut group = c.benchmark_group("transform_chain");
    group.throughput(Throughput::Elements(1));
    for (name, functions) in cases {
        let chain = chain(&functions);
        let mut i = 0usize;
        group.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % events.len();
                black_box(chain.apply(events[i].clone()))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
