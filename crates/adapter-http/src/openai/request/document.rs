//! `file` content parts: `{"type": "file", "file": {"filename"?, "file_data": "data:...;base64,..."}}`
//! become [`Document`]s. The format comes from the media type, else from the file name's
//! extension; the bytes must look like that format, which the caller checks with core's
//! [`MediaBudget`](gateway_core::request_limits::MediaBudget), so a wrong or lying media type
//! is the client's 400 rather than a model error later.

use gateway_core::{Document, DocumentFormat};
use serde_json::{Map, Value};

use super::data_url::{data_url, FILE};
use super::fields::{
    optional_string, required_object, required_string, unsupported, At, RequestError,
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
    Ok(Document {
        format,
        name,
        base64_data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;

    fn encode(bytes: &[u8]) -> String {
        STANDARD.encode(bytes)
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
