//! Inline media checked by its bytes: strict base64, the format told from magic bytes, and
//! Bedrock's per-item size caps.
//!
//! A label (a data URL's media type, a file name) says what the client claims; the bytes say
//! what it is. An image whose bytes are not the format it is labelled with, a document whose
//! bytes cannot be its format, bad base64 or an item over Bedrock's cap is the client's 400
//! here rather than a model error, a 502 or an empty image upstream.
//!
//! Nothing is decoded whole: the base64 is validated in one pass over its text (a table
//! lookup per character), its decoded size is length arithmetic, and only the bytes a check
//! needs are decoded, into stack buffers (the first bytes for binary formats; text formats a
//! block at a time, since every byte must be UTF-8). Core has no base64 dependency, so the
//! few lines of decoding are here.

use std::fmt;

use thiserror::Error;

use crate::chat::ImageFormat;
use crate::document::DocumentFormat;

/// Bedrock's cap on one image, decoded: 3.75 MB (Converse `Message` documentation).
pub const MAX_IMAGE_BYTES: usize = 3_750_000;
/// Bedrock's cap on one document, decoded: 4.5 MB.
pub const MAX_DOCUMENT_BYTES: usize = 4_500_000;

/// Why inline media is refused. Messages are about the value, without its path: the door
/// that read it names the field.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum MediaError {
    #[error("the data is not valid base64: {0}")]
    Base64(#[from] Base64Error),
    #[error("the {noun} is {size} bytes, over Bedrock's limit of {limit} bytes per {noun}")]
    TooLarge {
        noun: &'static str,
        size: usize,
        limit: usize,
    },
    /// The bytes are a known image format, not the one the label says.
    #[error("the image's bytes are {actual}, not the {declared} its media type says")]
    ImageMismatch {
        declared: &'static str,
        actual: &'static str,
    },
    #[error("the bytes are not an image (png, jpeg, gif or webp)")]
    NotAnImage,
    #[error("the file's bytes are not a {0} document")]
    NotADocument(&'static str),
}

/// What is wrong with a base64 text (standard alphabet, padded, as data URLs carry it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Base64Error {
    #[error("it is empty")]
    Empty,
    #[error("its length {0} is not a multiple of 4")]
    Length(usize),
    #[error("byte {0} is not a base64 character")]
    Character(usize),
    #[error("`=` may only pad the end, at most twice")]
    Padding,
    #[error("its last character has bits set that padding leaves unused")]
    TrailingBits,
}

/// Validated base64: every character checked, its decoded length known.
#[derive(Clone, Copy)]
pub struct Base64<'a> {
    text: &'a [u8],
    padding: usize,
}

impl fmt::Debug for Base64<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Base64({} bytes decoded)", self.decoded_len())
    }
}

/// Sextet of each base64 character; `INVALID` for the rest (and for `=`, handled apart).
const INVALID: u8 = 0xFF;
const SEXTETS: [u8; 256] = {
    let mut table = [INVALID; 256];
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut i = 0;
    while i < alphabet.len() {
        table[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    table
};

impl<'a> Base64<'a> {
    /// Checks `text` strictly: not empty, a multiple of 4, only alphabet characters, `=`
    /// only as one or two final characters, and no stray bits under the padding (so one
    /// byte string has exactly one encoding).
    pub fn parse(text: &'a str) -> Result<Self, Base64Error> {
        let bytes = text.as_bytes();
        if bytes.is_empty() {
            return Err(Base64Error::Empty);
        }
        if !bytes.len().is_multiple_of(4) {
            return Err(Base64Error::Length(bytes.len()));
        }
        let padding = bytes.iter().rev().take_while(|&&b| b == b'=').count();
        if padding > 2 {
            return Err(Base64Error::Padding);
        }
        let data = &bytes[..bytes.len() - padding];
        if let Some(position) = data.iter().position(|&b| SEXTETS[b as usize] == INVALID) {
            return Err(if data[position] == b'=' {
                Base64Error::Padding
            } else {
                Base64Error::Character(position)
            });
        }
        let unused_bits = match padding {
            1 => 0b11,
            2 => 0b1111,
            _ => 0,
        };
        if let Some(&last) = data.last() {
            if SEXTETS[last as usize] & unused_bits != 0 {
                return Err(Base64Error::TrailingBits);
            }
        }
        Ok(Self {
            text: bytes,
            padding,
        })
    }

    /// The number of bytes the text decodes to.
    pub fn decoded_len(&self) -> usize {
        self.text.len() / 4 * 3 - self.padding
    }

    /// Decodes the first bytes into `out`, returning how many were written (fewer when the
    /// data is shorter).
    pub fn decode_prefix(&self, out: &mut [u8]) -> usize {
        let wanted = out.len().min(self.decoded_len());
        let quads = wanted.div_ceil(3);
        let mut written = 0;
        for quad in self.text.chunks_exact(4).take(quads) {
            let mut group = [0u8; 3];
            let n = decode_quad(quad, &mut group);
            for &byte in &group[..n] {
                if written == wanted {
                    return written;
                }
                out[written] = byte;
                written += 1;
            }
        }
        written
    }

    /// Hands the decoded bytes to `visit` a block at a time (one stack buffer, never the
    /// whole data); stops early when `visit` returns false.
    pub fn for_each_block(&self, mut visit: impl FnMut(&[u8]) -> bool) {
        const QUADS: usize = 1024;
        let mut buffer = [0u8; QUADS * 3];
        for block in self.text.chunks(QUADS * 4) {
            let mut len = 0;
            for quad in block.chunks_exact(4) {
                let mut group = [0u8; 3];
                let n = decode_quad(quad, &mut group);
                buffer[len..len + n].copy_from_slice(&group[..n]);
                len += n;
            }
            if !visit(&buffer[..len]) {
                return;
            }
        }
    }
}

/// One validated group of four characters (the last may hold padding) to its bytes.
fn decode_quad(quad: &[u8], out: &mut [u8; 3]) -> usize {
    let sextet = |b: u8| if b == b'=' { 0 } else { SEXTETS[b as usize] } as u32;
    let bits = quad.iter().fold(0u32, |bits, &b| (bits << 6) | sextet(b));
    *out = [(bits >> 16) as u8, (bits >> 8) as u8, bits as u8];
    3 - quad.iter().filter(|&&b| b == b'=').count()
}

impl ImageFormat {
    /// The format its magic bytes say: PNG's signature, JPEG's SOI marker, `GIF87a`/`GIF89a`,
    /// or a RIFF container of type `WEBP`. Needs at most the first 12 bytes.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Self::Png)
        } else if bytes.starts_with(b"\xFF\xD8\xFF") {
            Some(Self::Jpeg)
        } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
            Some(Self::Gif)
        } else if bytes.len() >= 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP" {
            Some(Self::Webp)
        } else {
            None
        }
    }
}

/// Bytes enough for every signature checked here.
const SIGNATURE_BYTES: usize = 16;

/// Checks an inline image labelled `declared`: strict base64, at most [`MAX_IMAGE_BYTES`]
/// decoded, and magic bytes of that format.
pub fn check_image(declared: ImageFormat, base64: &str) -> Result<(), MediaError> {
    let data = Base64::parse(base64)?;
    within(data.decoded_len(), MAX_IMAGE_BYTES, "image")?;
    let mut head = [0u8; SIGNATURE_BYTES];
    let len = data.decode_prefix(&mut head);
    match ImageFormat::sniff(&head[..len]) {
        Some(actual) if actual == declared => Ok(()),
        Some(actual) => Err(MediaError::ImageMismatch {
            declared: declared.as_str(),
            actual: actual.as_str(),
        }),
        None => Err(MediaError::NotAnImage),
    }
}

/// Checks an inline document of `format`: strict base64, at most [`MAX_DOCUMENT_BYTES`]
/// decoded, and bytes that can be that format ([`DocumentFormat::accepts`]; text formats
/// are read whole, a block at a time, since every byte must be UTF-8 without NUL).
pub fn check_document(format: DocumentFormat, base64: &str) -> Result<(), MediaError> {
    let data = Base64::parse(base64)?;
    within(data.decoded_len(), MAX_DOCUMENT_BYTES, "document")?;
    let accepted = if format.is_text() {
        is_text(&data)
    } else {
        let mut head = [0u8; SIGNATURE_BYTES];
        let len = data.decode_prefix(&mut head);
        format.accepts(&head[..len])
    };
    if accepted {
        Ok(())
    } else {
        Err(MediaError::NotADocument(format.as_str()))
    }
}

fn within(size: usize, limit: usize, noun: &'static str) -> Result<(), MediaError> {
    if size > limit {
        return Err(MediaError::TooLarge { noun, size, limit });
    }
    Ok(())
}

/// UTF-8 without NUL, over blocks whose boundaries may split a character: the unfinished
/// character's bytes (at most 3) are carried into the next block's check.
fn is_text(data: &Base64<'_>) -> bool {
    let mut carry = [0u8; 4];
    let mut carried = 0;
    let mut ok = data.decoded_len() > 0;
    data.for_each_block(|block| {
        if block.contains(&0) {
            ok = false;
            return false;
        }
        // Complete the carried character with the block's first bytes.
        let mut rest = block;
        if carried > 0 {
            let take = (4 - carried).min(rest.len());
            carry[carried..carried + take].copy_from_slice(&rest[..take]);
            let joined = &carry[..carried + take];
            let used = match std::str::from_utf8(joined) {
                Ok(_) => joined.len(),
                Err(error) if error.valid_up_to() > 0 => error.valid_up_to(),
                Err(error) if error.error_len().is_none() && take == rest.len() => {
                    // Still unfinished: the block was shorter than the character.
                    carried += take;
                    return true;
                }
                Err(_) => {
                    ok = false;
                    return false;
                }
            };
            rest = &rest[used - carried..];
            carried = 0;
        }
        match std::str::from_utf8(rest) {
            Ok(_) => true,
            Err(error) if error.error_len().is_none() => {
                let tail = &rest[error.valid_up_to()..];
                carry[..tail.len()].copy_from_slice(tail);
                carried = tail.len();
                true
            }
            Err(_) => {
                ok = false;
                false
            }
        }
    });
    ok && carried == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A test-only encoder (core has no base64 crate).
    fn encode(bytes: &[u8]) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for group in bytes.chunks(3) {
            let bits = group
                .iter()
                .enumerate()
                .fold(0u32, |bits, (i, &b)| bits | (b as u32) << (16 - 8 * i));
            for i in 0..4 {
                if i <= group.len() {
                    out.push(ALPHABET[(bits >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    fn decode_all(text: &str) -> Vec<u8> {
        let mut all = Vec::new();
        Base64::parse(text).unwrap().for_each_block(|block| {
            all.extend_from_slice(block);
            true
        });
        all
    }

    #[test]
    fn base64_round_trips_at_every_length_and_across_blocks() {
        for len in [1, 2, 3, 4, 5, 3071, 3072, 3073, 10_000] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let text = encode(&bytes);
            let data = Base64::parse(&text).unwrap();
            assert_eq!(data.decoded_len(), len);
            assert_eq!(decode_all(&text), bytes, "len {len}");
            let mut head = [0u8; 5];
            let n = data.decode_prefix(&mut head);
            assert_eq!(&head[..n], &bytes[..n.min(len)]);
            assert_eq!(n, len.min(5));
        }
    }

    #[test]
    fn malformed_base64_is_refused_with_its_reason() {
        let cases = [
            ("", Base64Error::Empty),
            ("====", Base64Error::Padding),
            ("A===", Base64Error::Padding),
            ("AB=C", Base64Error::Padding),
            ("QUJD=", Base64Error::Length(5)),
            ("iVBORw0KGgo", Base64Error::Length(11)),
            ("QU JD", Base64Error::Length(5)),
            ("QU\nJ", Base64Error::Character(2)),
            ("QUJ-", Base64Error::Character(3)),
            ("QR==", Base64Error::TrailingBits),
            ("QUJ=", Base64Error::TrailingBits),
        ];
        for (text, reason) in cases {
            assert_eq!(Base64::parse(text).err(), Some(reason), "{text:?}");
        }
        assert!(Base64::parse("QUI=").is_ok());
        assert!(Base64::parse("QQ==").is_ok());
    }

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    const JPEG: &[u8] = b"\xFF\xD8\xFF\xE0\0\x10JFIF\0";
    const GIF: &[u8] = b"GIF89a\x01\0\x01\0";
    const WEBP: &[u8] = b"RIFF\x24\0\0\0WEBPVP8 ";
    const ELF: &[u8] = b"\x7FELF\x02\x01\x01\0\0\0\0\0";

    #[test]
    fn images_are_told_by_their_magic_bytes() {
        for (bytes, format) in [
            (PNG, ImageFormat::Png),
            (JPEG, ImageFormat::Jpeg),
            (GIF, ImageFormat::Gif),
            (WEBP, ImageFormat::Webp),
        ] {
            assert_eq!(ImageFormat::sniff(bytes), Some(format));
            assert_eq!(check_image(format, &encode(bytes)), Ok(()));
        }
        assert_eq!(ImageFormat::sniff(ELF), None);
        assert_eq!(ImageFormat::sniff(b"RIFF\0\0\0\0WAVE"), None);
        assert_eq!(
            check_image(ImageFormat::Png, &encode(JPEG)),
            Err(MediaError::ImageMismatch {
                declared: "png",
                actual: "jpeg"
            })
        );
        assert_eq!(
            check_image(ImageFormat::Png, &encode(ELF)),
            Err(MediaError::NotAnImage)
        );
        assert_eq!(
            check_image(ImageFormat::Png, "===="),
            Err(MediaError::Base64(Base64Error::Padding))
        );
    }

    #[test]
    fn sizes_are_capped_by_length_arithmetic() {
        let mut image = PNG.to_vec();
        image.resize(MAX_IMAGE_BYTES, 0);
        assert_eq!(check_image(ImageFormat::Png, &encode(&image)), Ok(()));
        image.push(0);
        assert_eq!(
            check_image(ImageFormat::Png, &encode(&image)),
            Err(MediaError::TooLarge {
                noun: "image",
                size: MAX_IMAGE_BYTES + 1,
                limit: MAX_IMAGE_BYTES
            })
        );
        let mut pdf = b"%PDF-1.7\n".to_vec();
        pdf.resize(MAX_DOCUMENT_BYTES + 1, b' ');
        assert!(matches!(
            check_document(DocumentFormat::Pdf, &encode(&pdf)),
            Err(MediaError::TooLarge {
                noun: "document",
                ..
            })
        ));
    }

    #[test]
    fn documents_are_told_by_their_bytes() {
        assert_eq!(
            check_document(DocumentFormat::Pdf, &encode(b"%PDF-1.4")),
            Ok(())
        );
        assert_eq!(
            check_document(DocumentFormat::Docx, &encode(b"PK\x03\x04rest")),
            Ok(())
        );
        assert_eq!(
            check_document(DocumentFormat::Pdf, &encode(ELF)),
            Err(MediaError::NotADocument("pdf"))
        );
        assert_eq!(
            check_document(DocumentFormat::Txt, &encode(PNG)),
            Err(MediaError::NotADocument("txt"))
        );
    }

    #[test]
    fn text_is_checked_whole_even_when_a_block_splits_a_character() {
        // 3071 ASCII bytes put the 2-byte `é` across the first block boundary (3072).
        for prefix in [3070, 3071, 3072] {
            let mut text = "a".repeat(prefix);
            text.push_str("é,€,😀\n");
            text.push_str(&"b".repeat(5000));
            assert_eq!(
                check_document(DocumentFormat::Csv, &encode(text.as_bytes())),
                Ok(()),
                "{prefix}"
            );
        }
        let mut bad = "a".repeat(3071).into_bytes();
        bad.push(0xC3); // a lead byte followed by ASCII
        bad.extend_from_slice(b"bc");
        assert!(check_document(DocumentFormat::Txt, &encode(&bad)).is_err());
        let mut cut = "a".repeat(10).into_bytes();
        cut.push(0xE2); // a character cut at the end
        assert!(check_document(DocumentFormat::Txt, &encode(&cut)).is_err());
        let mut nul = "a".repeat(5000).into_bytes();
        nul.push(0);
        assert!(check_document(DocumentFormat::Md, &encode(&nul)).is_err());
    }
}
