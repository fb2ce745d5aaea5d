//! OpenAI's embeddings wire format (`POST /v1/embeddings`), to and from `gateway-core` types.
//!
//! Request: `model`, `input` (a string or an array of strings; token arrays are refused),
//! `dimensions`, `encoding_format` (`float` or `base64`), `user` (read and ignored), and two
//! fields of the gateway's own: `input_type` (what the vectors are for, Cohere's
//! `input_type`) and `normalize` (unit-length vectors, Titan's `normalize`). Any other key
//! is refused with `unknown_parameter`, a key given twice with `duplicate_key`, as on chat.
//!
//! Answer: `{object: "list", data: [{object: "embedding", index, embedding}], model, usage}`,
//! each `embedding` an array of numbers or, with `encoding_format: "base64"`, the base64 of
//! the vector's little-endian `f32`s (what OpenAI sends and its SDKs decode).

use std::fmt;

use gateway_core::embedding::MAX_EMBEDDING_INPUTS;
use gateway_core::request_limits::{check_count, check_model_name};
use gateway_core::{Embedded, EmbeddingInputType, EmbeddingRequest};
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Serialize;
use serde_json::Value;

use super::request::{
    boolean, duplicate_key, invalid_type, invalid_value, missing, optional, positive_u32,
    unsupported, At, RequestError,
};

/// How the answer writes each vector.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum EncodingFormat {
    /// An array of JSON numbers.
    #[default]
    Float,
    /// A base64 string of little-endian `f32`s.
    Base64,
}

/// A valid embeddings request, and how its answer is to be written.
#[derive(Debug, PartialEq)]
pub(crate) struct ParsedEmbeddingRequest {
    pub(crate) request: EmbeddingRequest,
    pub(crate) encoding: EncodingFormat,
}

/// Parses and validates an OpenAI embeddings request body.
pub(crate) fn parse_embedding_request(body: &[u8]) -> Result<ParsedEmbeddingRequest, RequestError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let raw = deserializer
        .deserialize_map(TopLevel)
        .and_then(|raw| deserializer.end().map(|()| raw))
        .map_err(|error| {
            RequestError::InvalidJson(if error.is_data() {
                "the request body must be a JSON object".to_owned()
            } else {
                format!("the request body is not valid JSON: {error}")
            })
        })?;
    if let Some(param) = raw.unknown {
        return Err(RequestError::UnknownParameter { param });
    }
    if let Some(param) = raw.duplicate {
        return Err(duplicate_key(param.to_owned()));
    }
    let mut fields = raw.fields;
    let model_at = At::Root("model");
    let model = match fields[Field::Model as usize].take() {
        None => return Err(missing(&model_at)),
        Some(Value::String(name)) => {
            check_model_name(&name).map_err(|message| invalid_value(&model_at, message))?;
            name
        }
        Some(_) => return Err(invalid_type(&model_at, "a string")),
    };
    let inputs = match fields[Field::Input as usize].take() {
        None => return Err(missing(&At::Root("input"))),
        Some(value) => inputs(value)?,
    };
    let dimensions = optional(
        fields[Field::Dimensions as usize].take(),
        &At::Root("dimensions"),
        positive_u32,
    )?;
    let encoding = optional(
        fields[Field::EncodingFormat as usize].take(),
        &At::Root("encoding_format"),
        encoding_format,
    )?
    .unwrap_or_default();
    let input_type = optional(
        fields[Field::InputType as usize].take(),
        &At::Root("input_type"),
        input_type,
    )?;
    let normalize = optional(
        fields[Field::Normalize as usize].take(),
        &At::Root("normalize"),
        boolean,
    )?;
    // OpenAI's end-user id: checked for its type, then ignored (Bedrock has no counterpart).
    optional(
        fields[Field::User as usize].take(),
        &At::Root("user"),
        |value, at| {
            value
                .as_str()
                .map(|_| ())
                .ok_or_else(|| invalid_type(at, "a string"))
        },
    )?;
    Ok(ParsedEmbeddingRequest {
        request: EmbeddingRequest {
            model,
            inputs,
            dimensions,
            normalize,
            input_type,
        },
        encoding,
    })
}

/// `input`: one text, or an array of texts, none empty. Token arrays (integers, or arrays
/// of integers) are OpenAI-tokenizer specific and refused.
fn inputs(value: Value) -> Result<Vec<String>, RequestError> {
    let at = At::Root("input");
    let texts = match value {
        Value::String(text) => vec![text],
        Value::Array(items) => {
            if items.is_empty() {
                return Err(invalid_value(&at, "must hold at least one text"));
            }
            check_count(items.len(), MAX_EMBEDDING_INPUTS, "texts")
                .map_err(|message| invalid_value(&at, message))?;
            let mut texts = Vec::with_capacity(items.len());
            for (index, item) in items.into_iter().enumerate() {
                match item {
                    Value::String(text) => texts.push(text),
                    Value::Number(_) | Value::Array(_) => {
                        return Err(unsupported(&at, TOKEN_ARRAYS_REFUSED));
                    }
                    _ => return Err(invalid_type(&at.index(index), "a string")),
                }
            }
            texts
        }
        _ => return Err(invalid_type(&at, "a string or an array of strings")),
    };
    if let Some(index) = texts.iter().position(String::is_empty) {
        let message = "must not be empty: the embedding models refuse empty texts";
        return Err(if matches!(texts.len(), 1) {
            invalid_value(&at, message)
        } else {
            invalid_value(&at.index(index), message)
        });
    }
    Ok(texts)
}

const TOKEN_ARRAYS_REFUSED: &str =
    "token arrays are not supported: the models behind this gateway have their own tokenizers, send the text";

fn encoding_format(value: Value, at: &At<'_>) -> Result<EncodingFormat, RequestError> {
    match value.as_str() {
        Some("float") => Ok(EncodingFormat::Float),
        Some("base64") => Ok(EncodingFormat::Base64),
        Some(other) => Err(unsupported(
            at,
            format!("`{other}` is not supported: use \"float\" or \"base64\""),
        )),
        None => Err(invalid_type(at, "a string")),
    }
}

fn input_type(value: Value, at: &At<'_>) -> Result<EmbeddingInputType, RequestError> {
    let Some(name) = value.as_str() else {
        return Err(invalid_type(at, "a string"));
    };
    EmbeddingInputType::parse(name).ok_or_else(|| {
        let known: Vec<_> = EmbeddingInputType::ALL
            .iter()
            .map(|kind| kind.as_str())
            .collect();
        invalid_value(at, format!("`{name}` is not one of {}", known.join(", ")))
    })
}

/// The known top-level keys, in the order of [`FIELD_NAMES`].
#[derive(Clone, Copy)]
enum Field {
    Model,
    Input,
    Dimensions,
    EncodingFormat,
    InputType,
    Normalize,
    User,
}

const FIELD_NAMES: [&str; 7] = [
    "model",
    "input",
    "dimensions",
    "encoding_format",
    "input_type",
    "normalize",
    "user",
];

/// The top level as sent: each known key's value (`null` reads as absent), the first
/// unknown key and the first key given twice.
#[derive(Default)]
struct RawEmbeddingRequest {
    fields: [Option<Value>; FIELD_NAMES.len()],
    unknown: Option<String>,
    duplicate: Option<&'static str>,
}

/// Reads the top-level object key by key; unknown keys' values are skipped unbuilt.
struct TopLevel;

impl<'de> Visitor<'de> for TopLevel {
    type Value = RawEmbeddingRequest;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawEmbeddingRequest, A::Error> {
        let mut raw = RawEmbeddingRequest::default();
        let mut seen = [false; FIELD_NAMES.len()];
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match FIELD_NAMES.iter().position(|name| *name == key) {
                Some(index) => {
                    if seen[index] && raw.duplicate.is_none() {
                        raw.duplicate = Some(FIELD_NAMES[index]);
                    }
                    seen[index] = true;
                    let value: Value = map.next_value()?;
                    raw.fields[index] = (!value.is_null()).then_some(value);
                }
                None => {
                    if raw.unknown.is_none() {
                        raw.unknown = Some(key.into_owned());
                    }
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(raw)
    }
}

/// The OpenAI answer for `embedded`: its vectors in input order, the model the client
/// named, and the input tokens as both `prompt_tokens` and `total_tokens`.
pub(crate) fn embeddings_json(embedded: &Embedded, encoding: EncodingFormat) -> Vec<u8> {
    let data: Vec<Item<'_>> = embedded
        .response
        .vectors
        .iter()
        .enumerate()
        .map(|(index, vector)| Item {
            object: "embedding",
            index,
            embedding: match encoding {
                EncodingFormat::Float => Encoded::Float(vector),
                EncodingFormat::Base64 => Encoded::Base64(base64_f32_le(vector)),
            },
        })
        .collect();
    let tokens = embedded.response.input_tokens;
    let answer = Answer {
        object: "list",
        data,
        model: &embedded.model,
        usage: AnswerUsage {
            prompt_tokens: tokens,
            total_tokens: tokens,
        },
    };
    // Serializing these types cannot fail: strings, integers and finite or not floats
    // (serde_json writes a non-finite float as null).
    serde_json::to_vec(&answer).unwrap_or_default()
}

#[derive(Serialize)]
struct Answer<'a> {
    object: &'static str,
    data: Vec<Item<'a>>,
    model: &'a str,
    usage: AnswerUsage,
}

#[derive(Serialize)]
struct Item<'a> {
    object: &'static str,
    index: usize,
    embedding: Encoded<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Encoded<'a> {
    Float(&'a [f32]),
    Base64(String),
}

#[derive(Serialize)]
struct AnswerUsage {
    prompt_tokens: u64,
    total_tokens: u64,
}

/// Standard base64 (with padding) of the vector's little-endian `f32` bytes.
fn base64_f32_le(vector: &[f32]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes: Vec<u8> = vector
        .iter()
        .flat_map(|value| value.to_le_bytes())
        .collect();
    let mut text = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (position, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if position <= chunk.len() {
                text.push(char::from(ALPHABET[((n >> shift) & 0x3f) as usize]));
            } else {
                text.push('=');
            }
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use base64::Engine;
    use gateway_core::{EmbeddingResponse, ModelKind, Route};

    use super::*;
    use crate::error::ApiError;

    macro_rules! in_embedding_snapshots {
        ($body:block) => {
            insta::with_settings!({ snapshot_path => "snapshots" }, $body)
        };
    }

    #[test]
    fn valid_requests_become_embedding_requests() {
        in_embedding_snapshots!({
            insta::glob!(
                "../../../../fixtures/embeddings/request",
                "*.json",
                |path| {
                    let body = std::fs::read(path).unwrap();
                    let parsed = parse_embedding_request(&body)
                        .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
                    insta::assert_json_snapshot!(serde_json::json!({
                        "request": parsed.request,
                        "encoding": format!("{:?}", parsed.encoding),
                    }));
                }
            );
        });
    }

    #[test]
    fn invalid_requests_get_a_400_naming_the_field() {
        in_embedding_snapshots!({
            insta::glob!(
                "../../../../fixtures/embeddings/request_invalid",
                "*.json",
                |path| {
                    let body = std::fs::read(path).unwrap();
                    let error = parse_embedding_request(&body).expect_err("the fixture is invalid");
                    let api = ApiError::from_request(error);
                    let json: Value = serde_json::from_slice(&api.to_json()).unwrap();
                    insta::assert_json_snapshot!(serde_json::json!({
                        "status": api.status.as_u16(),
                        "body": json,
                    }));
                }
            );
        });
    }

    fn embedded(vectors: Vec<Vec<f32>>) -> Embedded {
        Embedded {
            model: "demo/titan-embed".into(),
            route: Arc::new(Route {
                public_name: "demo/titan-embed".into(),
                account: "demo".into(),
                model_id: "amazon.titan-embed-text-v2:0".into(),
                region: "us-east-1".into(),
                guardrail: gateway_core::guardrail::GuardrailPolicy::open(),
                finish_reason_style: gateway_core::FinishReasonStyle::Bedrock,
                family: None,
                drop_unsupported_params: false,
                price: None,
                kind: ModelKind::Embedding,
            }),
            response: EmbeddingResponse {
                vectors,
                input_tokens: 12,
            },
            attempts: vec![],
            limit_state: None,
            cost: None,
        }
    }

    #[test]
    fn answers_are_openai_lists_in_float_and_base64() {
        let answer = embedded(vec![vec![0.25, -1.0, 0.1], vec![1.0e-7, 0.0, 3.5]]);
        for (name, encoding) in [
            ("float", EncodingFormat::Float),
            ("base64", EncodingFormat::Base64),
        ] {
            let json: Value = serde_json::from_slice(&embeddings_json(&answer, encoding)).unwrap();
            in_embedding_snapshots!({
                insta::assert_json_snapshot!(format!("answer_{name}"), json);
            });
        }
    }

    #[test]
    fn base64_vectors_are_the_little_endian_f32s_every_client_decodes() {
        for length in 0..8 {
            let vector: Vec<f32> = (0..length).map(|i| i as f32 * -0.37 + 1.5).collect();
            let text = base64_f32_le(&vector);
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(&text)
                .unwrap();
            let decoded: Vec<f32> = bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            assert_eq!(decoded, vector);
            let expected = base64::engine::general_purpose::STANDARD.encode(
                vector
                    .iter()
                    .flat_map(|value| value.to_le_bytes())
                    .collect::<Vec<u8>>(),
            );
            assert_eq!(text, expected);
        }
    }
}
