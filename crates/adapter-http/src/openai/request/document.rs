//! `file` content parts: `{"type": "file", "file": {"filename"?, "file_data": "data:...;base64,..."}}`
//! become [`Document`]s. The format comes from the media type, else from the file name's
//! extension; the bytes must look like that format ([`DocumentFormat::accepts`]), so a wrong
//! or lying media type is the client's 400 rather than a model error later.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use gateway_core::{Document, DocumentFormat};
use serde_json::{Map, Value};

use super::data_url::{data_url, FILE};
use super::fields::{
    invalid_value, optional_string, required_object, required_string, unsupported, At, RequestError,
};

pub(super) fn file_part(
    part: &mut Map<String, Value>,
    at: &At<'_>,
) -> Result<Document, RequestError> {
    let file_at = at.key("file");
    let mut file = required_object(part, "file", at, "an object with `file_data`")?;
    if file.get("file_id").is_some_and(|id| !id.is_null()) {
        return Err(unsupported(
            &file_at.key("file_id"),
            "uploaded files cannot be referenced (the gateway has no Files API): send the \
             file inline as file_data (data:application/pdf;base64,...)",
        ));
    }
    let name = optional_string(&mut file, "filename", &file_at)?;
    let data_at = file_at.key("file_data");
    let url = required_string(&mut file, "file_data", &file_at)?;
    let (format, base64_data) = data_url(url, &data_at, &FILE, |media_type| {
        DocumentFormat::from_media_type(media_type)
            .or_else(|| name.as_deref().and_then(DocumentFormat::from_file_name))
            .ok_or_else(|| {
                let formats: Vec<&str> = DocumentFormat::ALL.iter().map(|f| f.as_str()).collect();
                unsupported(
                    &data_at,
                    format!(
                        "file type {media_type:?} is not supported: send one of {} (by media \
                         type, or by the filename's extension)",
                        formats.join(", ")
                    ),
                )
            })
    })?;
    match bytes_look_like(format, &base64_data) {
        Some(true) => {}
        Some(false) => {
            return Err(invalid_value(
                &data_at,
                format!("the file's bytes are not a {} document", format.as_str()),
            ))
        }
        None => return Err(invalid_value(&data_at, "the file data is not valid base64")),
    }
    Ok(Document {
        format,
        name,
        base64_data,
    })
}

/// Whether the decoded `base64` can be a `format` document, without holding a decoded copy
/// longer than the check: text formats need every byte (UTF-8, no NUL), binary formats only
/// their first bytes, so those are decoded a block at a time into one stack buffer (which
/// still checks the whole encoding). `None` when `base64` is not valid base64.
fn bytes_look_like(format: DocumentFormat, base64: &str) -> Option<bool> {
    use DocumentFormat::{Doc, Docx, Pdf, Xls, Xlsx};
    if !matches!(format, Pdf | Doc | Docx | Xls | Xlsx) {
        let bytes = STANDARD.decode(base64).ok()?;
        return Some(format.accepts(&bytes));
    }
    /// Base64 characters per block: a multiple of 4, so blocks decode on their own.
    const BLOCK: usize = 4096;
    let mut buffer = [0u8; BLOCK / 4 * 3];
    let mut accepted = None;
    let mut blocks = base64.as_bytes().chunks(BLOCK).peekable();
    while let Some(block) = blocks.next() {
        // Padding may only end the data, not a block in the middle.
        if blocks.peek().is_some() && block.ends_with(b"=") {
            return None;
        }
        let decoded = STANDARD.decode_slice(block, &mut buffer).ok()?;
        accepted.get_or_insert_with(|| format.accepts(&buffer[..decoded]));
    }
    Some(accepted.unwrap_or(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(bytes: &[u8]) -> String {
        STANDARD.encode(bytes)
    }

    #[test]
    fn binary_formats_are_told_by_their_first_bytes_across_blocks() {
        let mut pdf = b"%PDF-1.7\n".to_vec();
        pdf.resize(10_000, b'x');
        assert_eq!(
            bytes_look_like(DocumentFormat::Pdf, &encode(&pdf)),
            Some(true)
        );
        assert_eq!(
            bytes_look_like(DocumentFormat::Docx, &encode(&pdf)),
            Some(false)
        );
    }

    #[test]
    fn the_whole_encoding_is_checked_not_only_the_first_block() {
        let mut pdf = encode(&[b'%'; 6000]);
        pdf.replace_range(5000..5001, "*");
        assert!(bytes_look_like(DocumentFormat::Pdf, &pdf).is_none());
        // Padding that ends a block in the middle.
        let padded_middle = format!("{}{}", "A".repeat(4094), "==AAAA");
        assert!(bytes_look_like(DocumentFormat::Pdf, &padded_middle).is_none());
        assert!(
            bytes_look_like(DocumentFormat::Pdf, "JVBERi0").is_none(),
            "unpadded"
        );
    }

    #[test]
    fn text_formats_need_every_byte() {
        let mut text = "a,b\n".repeat(2000).into_bytes();
        assert_eq!(
            bytes_look_like(DocumentFormat::Csv, &encode(&text)),
            Some(true)
        );
        text.push(0);
        assert_eq!(
            bytes_look_like(DocumentFormat::Csv, &encode(&text)),
            Some(false)
        );
    }

    #[test]
    fn document_data_is_moved_not_copied() {
        let url = format!("data:application/pdf;base64,{}", encode(b"%PDF-1.4"));
        let pointer = url.as_ptr();
        // Built by hand: `json!` would serialize a copy of `url`.
        let mut file = Map::new();
        file.insert("filename".into(), Value::String("a.pdf".into()));
        file.insert("file_data".into(), Value::String(url));
        let mut part = Map::new();
        part.insert("file".into(), Value::Object(file));
        let document = file_part(&mut part, &At::Root("part")).unwrap();
        assert_eq!(document.format, DocumentFormat::Pdf);
        assert_eq!(document.name.as_deref(), Some("a.pdf"));
        assert_eq!(document.base64_data, encode(b"%PDF-1.4"));
        assert_eq!(document.base64_data.as_ptr(), pointer, "same allocation");
    }
}
