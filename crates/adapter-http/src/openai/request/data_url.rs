//! `data:<media type>;base64,<data>` URLs, the only way Bedrock takes images and documents
//! (inline). This module reads the URL's header; the data is checked by its bytes with
//! core's [`media`](gateway_core::media) rules. The data is kept in the URL's own allocation: it is often most of the body, so
//! it is not copied again.

use super::fields::{invalid_value, unsupported, At, RequestError};

/// What a data URL carries, for the messages that refuse one.
pub(crate) struct Inline {
    /// `image`, `file`.
    pub(crate) noun: &'static str,
    /// A data URL prefix to show, e.g. `data:image/png;base64,`.
    pub(crate) example: &'static str,
}

pub(crate) const IMAGE: Inline = Inline {
    noun: "image",
    example: "data:image/png;base64,",
};

pub(crate) const FILE: Inline = Inline {
    noun: "file",
    example: "data:application/pdf;base64,",
};

/// Splits a base64 data URL: `format` turns its media type (parameters removed) into a
/// format or refuses it, and the data is returned in `url`'s allocation.
pub(crate) fn data_url<F>(
    mut url: String,
    at: &At<'_>,
    inline: &Inline,
    format: impl FnOnce(&str) -> Result<F, RequestError>,
) -> Result<(F, String), RequestError> {
    let Inline { noun, example } = inline;
    if starts_with_ignore_case(&url, "http://") || starts_with_ignore_case(&url, "https://") {
        return Err(unsupported(
            at,
            format!(
                "Bedrock needs {noun}s inline: send the {noun} as a data URL ({example}...) \
                 instead of a link"
            ),
        ));
    }
    if !starts_with_ignore_case(&url, "data:") {
        return Err(invalid_value(
            at,
            format!("expected a data URL such as {example}..."),
        ));
    }
    let Some(comma) = url.find(',') else {
        return Err(invalid_value(at, "the data URL has no `,` before the data"));
    };
    let header = &url["data:".len()..comma];
    let Some(media_type) = header.len().checked_sub(";base64".len()).and_then(|end| {
        let (media_type, encoding) = (header.get(..end)?, header.get(end..)?);
        encoding
            .eq_ignore_ascii_case(";base64")
            .then_some(media_type)
    }) else {
        return Err(invalid_value(at, "only base64 data URLs are supported"));
    };
    // Parameters such as `;name=x.png` may sit between the media type and `;base64`.
    let media_type = media_type.split(';').next().unwrap_or_default();
    let format = format(media_type)?;
    // The data itself (strict base64, its bytes, its size) is checked by core's media
    // rules where the part is counted.
    url.drain(..=comma);
    Ok((format, url))
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.as_bytes()
        .get(..prefix.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(prefix.as_bytes()))
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    use gateway_core::Base64;

    /// Core's strict base64 (hand-written, since core has no base64 dependency) accepts
    /// exactly what the base64 crate's strict standard engine decodes, and the same bytes.
    #[test]
    fn cores_base64_agrees_with_the_base64_crate() {
        let mut rng = fastrand::Rng::with_seed(13);
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_ \n";
        for round in 0..20_000 {
            let text: String = if round % 2 == 0 {
                // Valid encodings, some with one character changed.
                let bytes: Vec<u8> = (0..rng.usize(0..40)).map(|_| rng.u8(..)).collect();
                let mut text = STANDARD.encode(&bytes).into_bytes();
                if !text.is_empty() && rng.bool() {
                    let at = rng.usize(..text.len());
                    text[at] = alphabet[rng.usize(..alphabet.len())];
                }
                String::from_utf8(text).unwrap()
            } else {
                (0..rng.usize(0..12))
                    .map(|_| alphabet[rng.usize(..alphabet.len())] as char)
                    .collect()
            };
            let reference = STANDARD
                .decode(&text)
                .ok()
                .filter(|bytes| !bytes.is_empty());
            let core = Base64::parse(&text).ok().map(|data| {
                let mut decoded = Vec::new();
                data.for_each_block(|block| {
                    decoded.extend_from_slice(block);
                    true
                });
                assert_eq!(decoded.len(), data.decoded_len(), "{text:?}");
                decoded
            });
            assert_eq!(core, reference, "{text:?}");
        }
    }
}
