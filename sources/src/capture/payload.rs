//! The three JSON shapes a capture payload may take, and where its project token is.

use serde_json::{Map, Value};

use super::error::CaptureError;

/// A parsed capture payload.
#[derive(Debug, Default)]
pub struct Payload {
    /// The events, as JSON objects, in request order.
    pub events: Vec<Map<String, Value>>,
    /// The batch's `sent_at`, when it has one.
    pub sent_at: Option<String>,
    /// The project token the request resolves to.
    pub token: String,
}

/// Parses JSON text into events and resolves the token.
pub fn parse(text: &str) -> Result<Payload, CaptureError> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| CaptureError::InvalidJson(e.to_string()))?;
    let (items, batch_token, sent_at) = match value {
        Value::Array(items) => (items, None, None),
        Value::Object(mut obj) if obj.contains_key("batch") => {
            let items = match obj.remove("batch") {
                Some(Value::Array(items)) => items,
                _ => return Err(CaptureError::NotAnEventPayload),
            };
            let token = ["api_key", "token"]
                .iter()
                .find_map(|k| obj.get(*k).and_then(Value::as_str).map(str::to_string));
            let sent_at = obj
                .get("sent_at")
                .and_then(Value::as_str)
                .map(str::to_string);
            (items, token, sent_at)
        }
        Value::Object(obj) => (vec![Value::Object(obj)], None, None),
        _ => return Err(CaptureError::NotAnEventPayload),
    };
    if items.is_empty() {
        return Err(CaptureError::EmptyBatch);
    }
    let mut events = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        match item {
            Value::Object(obj) => events.push(obj),
            _ => {
                return Err(CaptureError::InvalidField {
                    index,
                    field: "event",
                    detail: "an event must be a JSON object".into(),
                })
            }
        }
    }
    let token = match batch_token {
        Some(token) => token,
        None => agreed_token(&events)?,
    };
    validate_token(&token)?;
    Ok(Payload {
        events,
        sent_at,
        token,
    })
}

/// The token all events agree on.
fn agreed_token(events: &[Map<String, Value>]) -> Result<String, CaptureError> {
    let mut found: Option<&str> = None;
    for event in events {
        if let Some(token) = event_token(event) {
            match found {
                Some(seen) if seen != token => return Err(CaptureError::TokenMismatch),
                _ => found = Some(token),
            }
        }
    }
    found.map(str::to_string).ok_or(CaptureError::MissingToken)
}

fn event_token(event: &Map<String, Value>) -> Option<&str> {
    ["token", "$token", "api_key"]
        .iter()
        .find_map(|k| event.get(*k).and_then(Value::as_str))
        .or_else(|| {
            event
                .get("properties")
                .and_then(|p| p.get("token"))
                .and_then(Value::as_str)
        })
}

/// PostHog's rules for a token's form.
pub fn validate_token(token: &str) -> Result<(), CaptureError> {
    if token.is_empty() {
        return Err(CaptureError::InvalidToken("it is empty"));
    }
    if token.len() > 64 {
        return Err(CaptureError::InvalidToken(
            "it is longer than 64 characters",
        ));
    }
    if !token.is_ascii() {
        return Err(CaptureError::InvalidToken("it is not ASCII"));
    }
    if token.starts_with("phx_") {
        return Err(CaptureError::InvalidToken(
            "it is a personal API key; capture takes the project token (phc_...)",
        ));
    }
    if token.contains('\0') {
        return Err(CaptureError::InvalidToken("it contains a NUL character"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_shapes_parse() {
        let single = parse(r#"{"event":"a","distinct_id":"d","token":"phc_x"}"#).unwrap();
        assert_eq!((single.events.len(), single.token.as_str()), (1, "phc_x"));
        let array =
            parse(r#"[{"event":"a","properties":{"token":"phc_x"}},{"event":"b"}]"#).unwrap();
        assert_eq!(array.events.len(), 2);
        let batch = parse(r#"{"api_key":"phc_b","sent_at":"2024-01-01T00:00:00Z","batch":[{"event":"a","token":"phc_other"}]}"#).unwrap();
        assert_eq!(
            (batch.token.as_str(), batch.sent_at.is_some()),
            ("phc_b", true)
        );
    }

    #[test]
    fn token_rules() {
        assert_eq!(
            parse(r#"[{"event":"a","token":"phc_1"},{"event":"b","token":"phc_2"}]"#).unwrap_err(),
            CaptureError::TokenMismatch
        );
        assert_eq!(
            parse(r#"{"event":"a"}"#).unwrap_err(),
            CaptureError::MissingToken
        );
        assert!(matches!(
            parse(r#"{"event":"a","token":"phx_secret"}"#).unwrap_err(),
            CaptureError::InvalidToken(_)
        ));
        assert!(matches!(
            parse(r#"{"event":"a","token":""}"#).unwrap_err(),
            CaptureError::InvalidToken(_)
        ));
        assert_eq!(
            parse(r#"{"batch":[]}"#).unwrap_err(),
            CaptureError::EmptyBatch
        );
        assert_eq!(parse("42").unwrap_err(), CaptureError::NotAnEventPayload);
    }
}
