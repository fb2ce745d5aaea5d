//! `cache_control` (Anthropic's prompt-caching marker, as LiteLLM and Anthropic SDK users send
//! it): `{"type": "ephemeral", "ttl"?: "5m" | "1h"}` on a content part, a whole message or a
//! tool definition becomes a [`CachePoint`] right after what it marks.

use gateway_core::{CachePoint, CacheTtl, ContentPart, SystemPart};
use serde_json::{Map, Value};

use super::fields::{invalid_type, invalid_value, missing, optional_string, At, RequestError};

/// The `cache_control` of a part, message or tool object, if it has one.
pub(crate) fn cache_control(
    object: &mut Map<String, Value>,
    at: &At<'_>,
) -> Result<Option<CachePoint>, RequestError> {
    let at = at.key("cache_control");
    let mut control = match object.remove("cache_control") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(control)) => control,
        Some(_) => {
            return Err(invalid_type(
                &at,
                "an object such as {\"type\": \"ephemeral\"}",
            ))
        }
    };
    match optional_string(&mut control, "type", &at)?.as_deref() {
        Some("ephemeral") => {}
        Some(other) => {
            return Err(invalid_value(
                &at.key("type"),
                format!("unknown value {other:?}: expected ephemeral"),
            ))
        }
        None => return Err(missing(&at.key("type"))),
    }
    let ttl = optional_string(&mut control, "ttl", &at)?
        .map(|ttl| {
            CacheTtl::parse(&ttl).ok_or_else(|| {
                invalid_value(
                    &at.key("ttl"),
                    format!("unknown value {ttl:?}: expected 5m or 1h"),
                )
            })
        })
        .transpose()?;
    Ok(Some(CachePoint { ttl }))
}

/// A part list that can hold cache points (messages and the system prompt).
pub(crate) trait CachePoints: Sized {
    fn cache_point(point: CachePoint) -> Self;
    fn as_cache_point_mut(&mut self) -> Option<&mut CachePoint>;
}

impl CachePoints for ContentPart {
    fn cache_point(point: CachePoint) -> Self {
        ContentPart::CachePoint(point)
    }

    fn as_cache_point_mut(&mut self) -> Option<&mut CachePoint> {
        match self {
            ContentPart::CachePoint(point) => Some(point),
            _ => None,
        }
    }
}

impl CachePoints for SystemPart {
    fn cache_point(point: CachePoint) -> Self {
        SystemPart::CachePoint(point)
    }

    fn as_cache_point_mut(&mut self) -> Option<&mut CachePoint> {
        match self {
            SystemPart::CachePoint(point) => Some(point),
            _ => None,
        }
    }
}

/// Appends `point` to `parts`. A marker on a message's last part and one on the message mark
/// the same place: they become one cache point (with the longer time to live), not two that
/// would each count against the provider's limit.
pub(crate) fn push_cache_point<P: CachePoints>(parts: &mut Vec<P>, point: CachePoint) {
    match parts.last_mut().and_then(P::as_cache_point_mut) {
        Some(last) => {
            if point.ttl == Some(CacheTtl::OneHour) || last.ttl.is_none() {
                last.ttl = point.ttl;
            }
        }
        None => parts.push(P::cache_point(point)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adjacent_markers_are_one_cache_point_with_the_longer_ttl() {
        let five = CachePoint {
            ttl: Some(CacheTtl::FiveMinutes),
        };
        let hour = CachePoint {
            ttl: Some(CacheTtl::OneHour),
        };
        for (first, second) in [(five, hour), (hour, five), (CachePoint::default(), hour)] {
            let mut parts = vec![ContentPart::Text("a".into())];
            push_cache_point(&mut parts, first);
            push_cache_point(&mut parts, second);
            assert_eq!(parts.len(), 2);
            assert_eq!(parts[1], ContentPart::CachePoint(hour));
        }
        let mut parts = vec![SystemPart::Text("a".into())];
        push_cache_point(&mut parts, CachePoint::default());
        push_cache_point(&mut parts, five);
        assert_eq!(
            parts,
            [SystemPart::Text("a".into()), SystemPart::CachePoint(five)]
        );
    }
}
