//! A message's `content`: a string, or an array of typed parts. Which part types a message
//! may hold depends on who sent it ([`Holder`]); each part may carry a `cache_control`, which
//! becomes a cache point right after it.

use gateway_core::request_limits::{check_count, MediaBudget, MAX_CONTENT_BLOCKS};
use gateway_core::{ContentPart, Image, ImageFormat};
use serde_json::{Map, Value};

use super::cache_control::cache_control;
use super::data_url::{data_url, IMAGE};
use super::document::file_part;
use super::fields::{
    invalid_type, invalid_value, required_object, required_string, unsupported, At, RequestError,
};

/// The kind of message whose content is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Holder {
    /// System and developer messages.
    System,
    User,
    /// Assistant messages from history.
    Assistant,
    /// Tool results.
    Tool,
}

impl Holder {
    /// The part types this holder takes, for the error that refuses another.
    fn allowed(self) -> &'static str {
        match self {
            Holder::System => "text or guarded_text",
            Holder::User => "text, image_url, file or guarded_text",
            Holder::Assistant => "text or refusal",
            Holder::Tool => "text",
        }
    }

    fn messages(self) -> &'static str {
        match self {
            Holder::System => "system and developer messages",
            Holder::User => "user messages",
            Holder::Assistant => "assistant messages",
            Holder::Tool => "tool messages",
        }
    }
}

/// Hands each part of `content` to `push`, in order, each followed by its cache point if it
/// has one (`ContentPart::CachePoint`). Text parts are passed on even when blank: whether a
/// provider can take them is its adapter's business. Images and documents are counted in
/// `media` and checked by their bytes there (core's rules).
pub(super) fn content_parts(
    content: Value,
    at: &At<'_>,
    holder: Holder,
    media: &mut MediaBudget,
    mut push: impl FnMut(ContentPart),
) -> Result<(), RequestError> {
    let parts = match content {
        Value::String(text) => {
            push(ContentPart::Text(text));
            return Ok(());
        }
        Value::Array(parts) => parts,
        _ => {
            return Err(invalid_type(
                at,
                &format!(
                    "a string or an array of content parts ({})",
                    holder.allowed()
                ),
            ))
        }
    };
    check_count(parts.len(), MAX_CONTENT_BLOCKS, "content parts")
        .map_err(|message| invalid_value(at, message))?;
    for (j, part) in parts.into_iter().enumerate() {
        let at = at.index(j);
        let Value::Object(mut part) = part else {
            return Err(invalid_type(&at, "a content part object"));
        };
        let kind = required_string(&mut part, "type", &at)?;
        push(match (kind.as_str(), holder) {
            ("text", _) => ContentPart::Text(required_string(&mut part, "text", &at)?),
            ("refusal", Holder::Assistant) => {
                ContentPart::Text(required_string(&mut part, "refusal", &at)?)
            }
            ("guarded_text", Holder::System | Holder::User) => {
                ContentPart::GuardedText(required_string(&mut part, "text", &at)?)
            }
            ("image_url", Holder::User) => {
                let image = image(&mut part, &at)?;
                media
                    .image(&image)
                    .map_err(|message| invalid_value(&at.key("image_url"), message))?;
                ContentPart::Image(image)
            }
            ("file", Holder::User) => {
                let document = file_part(&mut part, &at)?;
                media
                    .document(&document)
                    .map_err(|message| invalid_value(&at.key("file").key("file_data"), message))?;
                ContentPart::Document(document)
            }
            (other, holder) => {
                return Err(unsupported(
                    &at.key("type"),
                    format!(
                        "content part type {other:?} is not allowed in {}: use {}",
                        holder.messages(),
                        holder.allowed()
                    ),
                ))
            }
        });
        if let Some(point) = cache_control(&mut part, &at)? {
            push(ContentPart::CachePoint(point));
        }
    }
    Ok(())
}

/// `{"image_url": {"url": "data:image/png;base64,..."}}`: Bedrock takes images inline only.
fn image(part: &mut Map<String, Value>, at: &At<'_>) -> Result<Image, RequestError> {
    let image_at = at.key("image_url");
    let mut image_url = required_object(part, "image_url", at, "an object with a `url`")?;
    let url = required_string(&mut image_url, "url", &image_at)?;
    let url_at = image_at.key("url");
    let (format, base64_data) = data_url(url, &url_at, &IMAGE, |media_type| {
        ImageFormat::from_media_type(media_type).ok_or_else(|| {
            unsupported(
                &url_at,
                format!("image type {media_type:?} is not supported: use png, jpeg, gif or webp"),
            )
        })
    })?;
    Ok(Image {
        format,
        base64_data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_data_is_moved_not_copied() {
        let url = String::from("data:image/png;base64,iVBORw0KGgo=");
        let pointer = url.as_ptr();
        // Built by hand: `json!` would serialize a copy of `url`.
        let mut image_url = Map::new();
        image_url.insert("url".into(), Value::String(url));
        let mut part = Map::new();
        part.insert("image_url".into(), Value::Object(image_url));
        let image = image(&mut part, &At::Root("part")).unwrap();
        assert_eq!(image.base64_data, "iVBORw0KGgo=");
        assert_eq!(image.format, ImageFormat::Png);
        assert_eq!(image.base64_data.as_ptr(), pointer, "same allocation");
    }
}
