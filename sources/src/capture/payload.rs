//! The three JSON shapes a capture payload may take, and where its project token is.
//!
//! Events are not parsed into JSON trees: each stays a borrowed slice of the request text
//! ([`RawValue`]), and only the fields capture needs are read out. Properties in particular
//! are carried as text, because building a map of them dominated the cost of capture.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::error::CaptureError;

/// An event's top-level fields, each still JSON text. Other fields are ignored, as PostHog does.
#[derive(Debug, Default, Deserialize)]
pub struct RawEvent<'a> {
    /// `event`.
    #[serde(borrow, default)]
    pub event: Option<&'a RawValue>,
    /// `distinct_id`.
    #[serde(borrow, default)]
    pub distinct_id: Option<&'a RawValue>,
    /// `$distinct_id`, the legacy spelling.
    #[serde(borrow, default, rename = "$distinct_id")]
    pub legacy_distinct_id: Option<&'a RawValue>,
    /// `properties`.
    #[serde(borrow, default)]
    pub properties: Option<&'a RawValue>,
    /// `timestamp`.
    #[serde(borrow, default)]
    pub timestamp: Option<&'a RawValue>,
    /// `offset`.
    #[serde(borrow, default)]
    pub offset: Option<&'a RawValue>,
    /// `uuid`.
    #[serde(borrow, default)]
    pub uuid: Option<&'a RawValue>,
    /// Top-level `$set`.
    #[serde(borrow, default, rename = "$set")]
    pub set: Option<&'a RawValue>,
    /// Top-level `$set_once`.
    #[serde(borrow, default, rename = "$set_once")]
    pub set_once: Option<&'a RawValue>,
    #[serde(borrow, default)]
    token: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "$token")]
    legacy_token: Option<&'a RawValue>,
    #[serde(borrow, default)]
    api_key: Option<&'a RawValue>,
}

/// The few properties capture itself reads.
#[derive(Debug, Default, Deserialize)]
pub struct PropertiesPeek<'a> {
    /// `properties.distinct_id`, the last fallback for the distinct id.
    #[serde(borrow, default)]
    pub distinct_id: Option<&'a RawValue>,
    /// `properties.token`, the last fallback for the token.
    #[serde(borrow, default)]
    pub token: Option<&'a RawValue>,
    /// `$ignore_sent_at`.
    #[serde(borrow, default, rename = "$ignore_sent_at")]
    pub ignore_sent_at: Option<&'a RawValue>,
    /// Whether `$ip` is already set.
    #[serde(borrow, default, rename = "$ip")]
    pub ip: Option<&'a RawValue>,
}

/// One event of a payload: its fields and a peek into its properties.
#[derive(Debug, Default)]
pub struct ParsedEvent<'a> {
    /// Top-level fields.
    pub fields: RawEvent<'a>,
    /// What capture reads from the properties.
    pub peek: PropertiesPeek<'a>,
    /// Whether the peek could not be read (duplicate keys); normalization then parses fully.
    pub peek_failed: bool,
}

/// A parsed capture payload.
#[derive(Debug, Default)]
pub struct Payload<'a> {
    /// The events, in request order.
    pub events: Vec<ParsedEvent<'a>>,
    /// The batch's `sent_at`, when it has one.
    pub sent_at: Option<String>,
    /// The project token the request resolves to.
    pub token: String,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    /// Split into events in the same pass that reads the envelope.
    #[serde(borrow, default)]
    batch: Option<Vec<&'a RawValue>>,
    #[serde(borrow, default)]
    api_key: Option<&'a RawValue>,
    #[serde(borrow, default)]
    token: Option<&'a RawValue>,
    #[serde(borrow, default)]
    sent_at: Option<&'a RawValue>,
}

fn invalid_json(e: serde_json::Error) -> CaptureError {
    CaptureError::InvalidJson(e.to_string())
}

/// A JSON string's contents, or `None` for any other JSON value.
pub fn as_str(raw: Option<&RawValue>) -> Option<String> {
    raw.and_then(|r| serde_json::from_str::<String>(r.get()).ok())
}

/// Parses JSON text into events and resolves the token.
pub fn parse(text: &str) -> Result<Payload<'_>, CaptureError> {
    let first = text.trim_start().as_bytes().first().copied();
    let (items, batch_token, sent_at): (Vec<&RawValue>, Option<String>, Option<String>) =
        match first {
            Some(b'[') => (
                serde_json::from_str(text).map_err(invalid_json)?,
                None,
                None,
            ),
            Some(b'{') => {
                let envelope: Envelope<'_> = serde_json::from_str(text).map_err(|e| {
                    // `batch` that is not an array is a shape error, not a syntax error.
                    if e.is_data() {
                        CaptureError::NotAnEventPayload
                    } else {
                        invalid_json(e)
                    }
                })?;
                match envelope.batch {
                    Some(items) => {
                        let token = as_str(envelope.api_key).or_else(|| as_str(envelope.token));
                        (items, token, as_str(envelope.sent_at))
                    }
                    None => (
                        vec![serde_json::from_str(text).map_err(invalid_json)?],
                        None,
                        None,
                    ),
                }
            }
            _ => {
                serde_json::from_str::<serde::de::IgnoredAny>(text).map_err(invalid_json)?;
                return Err(CaptureError::NotAnEventPayload);
            }
        };
    if items.is_empty() {
        return Err(CaptureError::EmptyBatch);
    }
    let mut events = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        if !item.get().starts_with('{') {
            return Err(CaptureError::InvalidField {
                index,
                field: "event",
                detail: "an event must be a JSON object".into(),
            });
        }
        let fields: RawEvent<'_> =
            serde_json::from_str(item.get()).map_err(|e| CaptureError::InvalidField {
                index,
                field: "event",
                detail: e.to_string(),
            })?;
        let (peek, peek_failed) = match fields.properties.filter(|p| p.get().starts_with('{')) {
            Some(props) => match serde_json::from_str(props.get()) {
                Ok(peek) => (peek, false),
                Err(_) => (PropertiesPeek::default(), true),
            },
            None => (PropertiesPeek::default(), false),
        };
        events.push(ParsedEvent {
            fields,
            peek,
            peek_failed,
        });
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
fn agreed_token(events: &[ParsedEvent<'_>]) -> Result<String, CaptureError> {
    let mut found: Option<String> = None;
    for event in events {
        if let Some(token) = event_token(event) {
            match &found {
                Some(seen) if *seen != token => return Err(CaptureError::TokenMismatch),
                _ => found = Some(token),
            }
        }
    }
    found.ok_or(CaptureError::MissingToken)
}

fn event_token(event: &ParsedEvent<'_>) -> Option<String> {
    let f = &event.fields;
    as_str(f.token)
        .or_else(|| as_str(f.legacy_token))
        .or_else(|| as_str(f.api_key))
        .or_else(|| as_str(event.peek.token))
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
        assert!(matches!(
            parse("{oops").unwrap_err(),
            CaptureError::InvalidJson(_)
        ));
        assert!(matches!(
            parse(r#"[1]"#).unwrap_err(),
            CaptureError::InvalidField { index: 0, .. }
        ));
    }
}
