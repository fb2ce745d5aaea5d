//! Inline documents and how to tell that their bytes are what they claim to be.

use serde::{Deserialize, Serialize};

/// An inline document from the client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    pub format: DocumentFormat,
    /// The client's file name, if it gave one; providers with naming rules make it valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The bytes, base64 as the client sent them (Converse JSON wants base64 too).
    pub base64_data: String,
}

/// The document formats the gateway accepts (Bedrock's `DocumentFormat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum DocumentFormat {
    Pdf,
    Csv,
    Doc,
    Docx,
    Xls,
    Xlsx,
    Html,
    Txt,
    Md,
}

impl DocumentFormat {
    pub const ALL: [Self; 9] = [
        Self::Pdf,
        Self::Csv,
        Self::Doc,
        Self::Docx,
        Self::Xls,
        Self::Xlsx,
        Self::Html,
        Self::Txt,
        Self::Md,
    ];

    /// The format of a media type such as `application/pdf` (parameters already removed).
    pub fn from_media_type(media_type: &str) -> Option<Self> {
        Some(match media_type.to_ascii_lowercase().as_str() {
            "application/pdf" => Self::Pdf,
            "text/csv" => Self::Csv,
            "application/msword" => Self::Doc,
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => Self::Docx,
            "application/vnd.ms-excel" => Self::Xls,
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => Self::Xlsx,
            "text/html" => Self::Html,
            "text/plain" => Self::Txt,
            "text/markdown" | "text/x-markdown" => Self::Md,
            _ => return None,
        })
    }

    /// The format a file name's extension names, e.g. `report.PDF`.
    pub fn from_file_name(name: &str) -> Option<Self> {
        let (_, extension) = name.rsplit_once('.')?;
        Self::ALL
            .into_iter()
            .find(|format| extension.eq_ignore_ascii_case(format.as_str()))
            .or_else(|| {
                ["htm", "markdown", "text"]
                    .iter()
                    .position(|alias| extension.eq_ignore_ascii_case(alias))
                    .map(|i| [Self::Html, Self::Md, Self::Txt][i])
            })
    }

    /// `pdf`, `csv`, ... as Bedrock names them.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pdf => "pdf",
            Self::Csv => "csv",
            Self::Doc => "doc",
            Self::Docx => "docx",
            Self::Xls => "xls",
            Self::Xlsx => "xlsx",
            Self::Html => "html",
            Self::Txt => "txt",
            Self::Md => "md",
        }
    }

    /// Text formats (CSV, HTML, plain text, Markdown): any UTF-8 text without NUL, so every
    /// byte must be read to accept one; the others are told by their first bytes.
    pub fn is_text(self) -> bool {
        matches!(self, Self::Csv | Self::Html | Self::Txt | Self::Md)
    }

    /// Whether `bytes` (decoded) can be a document of this format: binary formats by their
    /// signature (PDF `%PDF-`, OOXML a ZIP archive, legacy Office an OLE2 compound file),
    /// text formats by being UTF-8 without NUL bytes. A cheap check that catches a wrong
    /// or lying media type before the provider spends time on it, not a full validation.
    pub fn accepts(self, bytes: &[u8]) -> bool {
        const ZIP: &[u8] = b"PK\x03\x04";
        const OLE2: &[u8] = b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1";
        match self {
            Self::Pdf => bytes.starts_with(b"%PDF-"),
            Self::Docx | Self::Xlsx => bytes.starts_with(ZIP),
            Self::Doc | Self::Xls => bytes.starts_with(OLE2),
            Self::Csv | Self::Html | Self::Txt | Self::Md => {
                !bytes.is_empty() && !bytes.contains(&0) && std::str::from_utf8(bytes).is_ok()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_media_types_agree() {
        for format in DocumentFormat::ALL {
            let name = format!("file.{}", format.as_str().to_uppercase());
            assert_eq!(DocumentFormat::from_file_name(&name), Some(format));
        }
        assert_eq!(
            DocumentFormat::from_media_type("application/PDF"),
            Some(DocumentFormat::Pdf)
        );
        assert_eq!(
            DocumentFormat::from_file_name("notes.markdown"),
            Some(DocumentFormat::Md)
        );
        assert_eq!(DocumentFormat::from_file_name("noextension"), None);
        assert_eq!(DocumentFormat::from_media_type("image/png"), None);
    }

    #[test]
    fn bytes_must_match_the_announced_format() {
        assert!(DocumentFormat::Pdf.accepts(b"%PDF-1.7\n..."));
        assert!(!DocumentFormat::Pdf.accepts(b"PK\x03\x04"));
        assert!(DocumentFormat::Docx.accepts(b"PK\x03\x04rest"));
        assert!(!DocumentFormat::Docx.accepts(b"%PDF-1.7"));
        assert!(DocumentFormat::Xls.accepts(b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1rest"));
        assert!(DocumentFormat::Csv.accepts("a,b\n1,é\n".as_bytes()));
        assert!(!DocumentFormat::Txt.accepts(b"\x89PNG\r\n\x1a\n\0\0"));
        assert!(!DocumentFormat::Md.accepts(b""));
    }
}
