//! InvokeModel bodies of Bedrock's embedding models, and their answers.
//!
//! InvokeModel (`POST /model/{modelId}/invoke`) takes each model's own JSON, so the family
//! decides the body:
//!
//! - Amazon Titan Text Embeddings (`amazon.titan-embed-*`): one text per call,
//!   `{"inputText", "dimensions", "normalize"}` (v2 only: 256, 512 or 1024 dimensions; v1
//!   and the image model take the text alone). A batch is several calls.
//! - Cohere Embed v3 and v4 (`cohere.embed-*`): up to [`COHERE_TEXTS_PER_CALL`] texts per
//!   call, `{"texts", "input_type", "embedding_types": ["float"], "truncate": "NONE"}`
//!   (`input_type` is required: `search_document` when the client gave none; v4 also takes
//!   `output_dimension`: 256, 512, 1024 or 1536). Too long a text is Bedrock's 400, as on
//!   OpenAI, never silently cut.
//!
//! What a model cannot honour is refused before any call (`ProviderError::Unsupported`,
//! naming the field). Token counts: Titan's `inputTextTokenCount`, else the
//! `x-amzn-bedrock-input-token-count` header every InvokeModel answer carries.

use gateway_core::{EmbeddingInputType, EmbeddingRequest, ProviderError, RequestFeature, Route};
use serde::{Deserialize, Serialize};

use crate::model_family::{base_model_id, ModelFamily};

/// The most texts Cohere Embed takes in one call (its Bedrock documentation).
pub(crate) const COHERE_TEXTS_PER_CALL: usize = 96;

/// The dimensions Titan Text Embeddings v2 can return.
const TITAN_V2_DIMENSIONS: [u32; 3] = [256, 512, 1024];
/// The dimensions Cohere Embed v4 can return.
const COHERE_V4_DIMENSIONS: [u32; 4] = [256, 512, 1024, 1536];

/// An embedding model, as far as its InvokeModel body cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EmbeddingModel {
    /// Titan Text Embeddings; `v2` takes `dimensions` and `normalize`.
    Titan { v2: bool },
    /// Cohere Embed; `v4` takes `output_dimension`.
    Cohere { v4: bool },
}

impl EmbeddingModel {
    /// The embedding model a model id names (ARN and geo prefixes stripped), if any.
    pub(crate) fn of_model_id(model_id: &str) -> Option<Self> {
        let id = base_model_id(model_id)?;
        if let Some(rest) = id.strip_prefix("amazon.titan-embed-") {
            return Some(Self::Titan {
                v2: rest.starts_with("text-v2"),
            });
        }
        if let Some(rest) = id.strip_prefix("cohere.embed-") {
            return Some(Self::Cohere {
                v4: rest.starts_with("v4"),
            });
        }
        None
    }

    /// The route's model: from its id, else from its configured family (an application
    /// inference profile ARN over an embedding model), assuming that family's current
    /// text model (Titan v2, Cohere v3's body, which v4 takes too).
    pub(crate) fn of(route: &Route) -> Result<Self, ProviderError> {
        if let Some(model) = Self::of_model_id(&route.model_id) {
            return Ok(model);
        }
        let family = route
            .family
            .as_deref()
            .and_then(|name| ModelFamily::parse(name).ok());
        match family {
            Some(ModelFamily::AmazonTitan) => Ok(Self::Titan { v2: true }),
            Some(ModelFamily::Cohere) => Ok(Self::Cohere { v4: false }),
            _ => Err(ProviderError::InvalidRequest {
                message: format!(
                    "`{}` is configured as an embedding model, but its id names no embedding \
                     model this gateway knows (amazon.titan-embed-*, cohere.embed-*); set \
                     `family` to amazon.titan or cohere",
                    route.public_name
                ),
            }),
        }
    }
}

/// True when the model id names an embedding model (Titan or Cohere Embed): the kind a
/// host gives such a model unless configured otherwise.
pub fn is_embedding_model(model_id: &str) -> bool {
    EmbeddingModel::of_model_id(model_id).is_some()
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct TitanRequest<'a> {
    input_text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    dimensions: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    normalize: Option<bool>,
}

#[derive(Debug, Serialize)]
struct CohereRequest<'a> {
    texts: &'a [String],
    input_type: &'static str,
    embedding_types: [&'static str; 1],
    truncate: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_dimension: Option<u32>,
}

/// The InvokeModel bodies for `request` on `model`, in input order: one per text for
/// Titan, one per [`COHERE_TEXTS_PER_CALL`] texts for Cohere. Fails before any call when
/// the model cannot honour a field.
pub(crate) fn invoke_bodies(
    model: EmbeddingModel,
    request: &EmbeddingRequest,
) -> Result<Vec<Vec<u8>>, ProviderError> {
    let unsupported = |feature, message: String| ProviderError::Unsupported { feature, message };
    let write = |body: Result<Vec<u8>, serde_json::Error>| {
        body.map_err(|error| ProviderError::InvalidRequest {
            message: format!("the request cannot be written as InvokeModel JSON: {error}"),
        })
    };
    match model {
        EmbeddingModel::Titan { v2 } => {
            if let Some(type_) = request.input_type {
                return Err(unsupported(
                    RequestFeature::EmbeddingInputType,
                    format!(
                        "Titan embedding models take no input_type (`{}`); leave it out",
                        type_.as_str()
                    ),
                ));
            }
            if !v2 && (request.dimensions.is_some() || request.normalize.is_some()) {
                let feature = if request.dimensions.is_some() {
                    RequestFeature::EmbeddingDimensions
                } else {
                    RequestFeature::EmbeddingNormalize
                };
                return Err(unsupported(
                    feature,
                    "only Titan Text Embeddings v2 takes dimensions and normalize".into(),
                ));
            }
            check_dimensions(
                request.dimensions,
                &TITAN_V2_DIMENSIONS,
                "Titan Text Embeddings v2",
            )?;
            request
                .inputs
                .iter()
                .map(|text| {
                    write(serde_json::to_vec(&TitanRequest {
                        input_text: text,
                        dimensions: request.dimensions,
                        normalize: request.normalize,
                    }))
                })
                .collect()
        }
        EmbeddingModel::Cohere { v4 } => {
            if request.normalize.is_some() {
                return Err(unsupported(
                    RequestFeature::EmbeddingNormalize,
                    "Cohere Embed takes no normalize setting; leave it out".into(),
                ));
            }
            if request.dimensions.is_some() && !v4 {
                return Err(unsupported(
                    RequestFeature::EmbeddingDimensions,
                    "Cohere Embed v3 returns 1024 dimensions (v4 takes dimensions)".into(),
                ));
            }
            check_dimensions(request.dimensions, &COHERE_V4_DIMENSIONS, "Cohere Embed v4")?;
            let input_type = request
                .input_type
                .unwrap_or(EmbeddingInputType::SearchDocument)
                .as_str();
            request
                .inputs
                .chunks(COHERE_TEXTS_PER_CALL)
                .map(|texts| {
                    write(serde_json::to_vec(&CohereRequest {
                        texts,
                        input_type,
                        embedding_types: ["float"],
                        truncate: "NONE",
                        output_dimension: request.dimensions,
                    }))
                })
                .collect()
        }
    }
}

fn check_dimensions(
    dimensions: Option<u32>,
    allowed: &[u32],
    model: &str,
) -> Result<(), ProviderError> {
    match dimensions {
        Some(n) if !allowed.contains(&n) => {
            let allowed: Vec<String> = allowed.iter().map(u32::to_string).collect();
            Err(ProviderError::Unsupported {
                feature: RequestFeature::EmbeddingDimensions,
                message: format!("{model} returns {} dimensions, not {n}", allowed.join(", ")),
            })
        }
        _ => Ok(()),
    }
}

/// One InvokeModel answer: its vectors (one for Titan, one per text for Cohere) and the
/// tokens counted, from the body where the model says, else from `header_tokens`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct InvokeAnswer {
    pub(crate) vectors: Vec<Vec<f32>>,
    pub(crate) input_tokens: u64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TitanResponse {
    embedding: Vec<f32>,
    #[serde(default)]
    input_text_token_count: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct CohereResponse {
    embeddings: CohereEmbeddings,
}

/// `embedding_types` given: vectors by type; Cohere v3 without it answers the bare list.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum CohereEmbeddings {
    ByType { float: Vec<Vec<f32>> },
    Floats(Vec<Vec<f32>>),
}

/// Reads one answer to a body from [`invoke_bodies`] that held `texts` texts.
pub(crate) fn parse_invoke_answer(
    model: EmbeddingModel,
    body: &[u8],
    texts: usize,
    header_tokens: Option<u64>,
) -> Result<InvokeAnswer, ProviderError> {
    let malformed = |error: serde_json::Error| ProviderError::Protocol {
        message: format!("Bedrock's InvokeModel answer is not the embedding model's JSON: {error}"),
    };
    let (vectors, body_tokens) = match model {
        EmbeddingModel::Titan { .. } => {
            let answer: TitanResponse = serde_json::from_slice(body).map_err(malformed)?;
            (vec![answer.embedding], answer.input_text_token_count)
        }
        EmbeddingModel::Cohere { .. } => {
            let answer: CohereResponse = serde_json::from_slice(body).map_err(malformed)?;
            let vectors = match answer.embeddings {
                CohereEmbeddings::ByType { float } | CohereEmbeddings::Floats(float) => float,
            };
            (vectors, None)
        }
    };
    if vectors.len() != texts {
        return Err(ProviderError::Protocol {
            message: format!(
                "Bedrock answered {} embeddings for {texts} texts",
                vectors.len()
            ),
        });
    }
    Ok(InvokeAnswer {
        vectors,
        input_tokens: body_tokens.or(header_tokens).unwrap_or(0),
    })
}

/// How many texts each body of [`invoke_bodies`] holds, in order.
pub(crate) fn texts_per_body(model: EmbeddingModel, inputs: usize) -> impl Iterator<Item = usize> {
    let per_call = match model {
        EmbeddingModel::Titan { .. } => 1,
        EmbeddingModel::Cohere { .. } => COHERE_TEXTS_PER_CALL,
    };
    (0..inputs.div_ceil(per_call)).map(move |call| per_call.min(inputs - call * per_call))
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_core::guardrail::GuardrailPolicy;
    use gateway_core::{FinishReasonStyle, ModelKind};
    use serde_json::{json, Value};

    fn route(fixture: &Value) -> Route {
        Route {
            public_name: "a/embed".into(),
            account: "a".into(),
            model_id: fixture["model_id"].as_str().unwrap().into(),
            region: "us-east-1".into(),
            guardrail: GuardrailPolicy::open(),
            finish_reason_style: FinishReasonStyle::Bedrock,
            family: fixture["family"].as_str().map(str::to_owned),
            drop_unsupported_params: false,
            price: None,
            kind: ModelKind::Embedding,
        }
    }

    fn error_json(error: &ProviderError) -> Value {
        let feature = match error {
            ProviderError::Unsupported { feature, .. } => Some(format!("{feature:?}")),
            _ => None,
        };
        json!({"error": error.kind(), "feature": feature, "message": error.to_string()})
    }

    /// Each fixture: a route's `model_id` (and `family`) and an `EmbeddingRequest`; the
    /// snapshot: the InvokeModel bodies, in order, or the refusal.
    #[test]
    fn embedding_requests_become_invoke_model_bodies() {
        insta::glob!(
            "../../../fixtures/embeddings/bedrock_request",
            "*.json",
            |path| {
                let fixture: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
                let request: EmbeddingRequest =
                    serde_json::from_value(fixture["request"].clone()).unwrap();
                let snapshot = match EmbeddingModel::of(&route(&fixture))
                    .and_then(|model| invoke_bodies(model, &request))
                {
                    Ok(bodies) => Value::Array(
                        bodies
                            .iter()
                            .map(|body| serde_json::from_slice(body).unwrap())
                            .collect(),
                    ),
                    Err(error) => error_json(&error),
                };
                insta::assert_json_snapshot!(snapshot);
            }
        );
    }

    /// Each fixture: the model id, the texts the body held, the token-count header and
    /// Bedrock's answer; the snapshot: the vectors and tokens, or the error.
    #[test]
    fn invoke_model_answers_become_vectors_and_tokens() {
        insta::glob!(
            "../../../fixtures/embeddings/bedrock_response",
            "*.json",
            |path| {
                let fixture: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
                let model = EmbeddingModel::of(&route(&fixture)).unwrap();
                let body = serde_json::to_vec(&fixture["body"]).unwrap();
                let texts = fixture["texts"].as_u64().unwrap() as usize;
                let snapshot = match parse_invoke_answer(
                    model,
                    &body,
                    texts,
                    fixture["header_tokens"].as_u64(),
                ) {
                    Ok(answer) => {
                        json!({"vectors": answer.vectors, "input_tokens": answer.input_tokens})
                    }
                    Err(error) => error_json(&error),
                };
                insta::assert_json_snapshot!(snapshot);
            }
        );
    }

    #[test]
    fn embedding_models_are_read_from_their_ids() {
        let cases = [
            (
                "amazon.titan-embed-text-v2:0",
                Some(EmbeddingModel::Titan { v2: true }),
            ),
            (
                "amazon.titan-embed-text-v1",
                Some(EmbeddingModel::Titan { v2: false }),
            ),
            (
                "amazon.titan-embed-image-v1",
                Some(EmbeddingModel::Titan { v2: false }),
            ),
            (
                "cohere.embed-english-v3",
                Some(EmbeddingModel::Cohere { v4: false }),
            ),
            (
                "cohere.embed-multilingual-v3",
                Some(EmbeddingModel::Cohere { v4: false }),
            ),
            (
                "cohere.embed-v4:0",
                Some(EmbeddingModel::Cohere { v4: true }),
            ),
            (
                "us.cohere.embed-v4:0",
                Some(EmbeddingModel::Cohere { v4: true }),
            ),
            (
                "arn:aws:bedrock:us-east-1::foundation-model/amazon.titan-embed-text-v2:0",
                Some(EmbeddingModel::Titan { v2: true }),
            ),
            ("amazon.titan-text-express-v1", None),
            ("cohere.command-r-v1:0", None),
            ("anthropic.claude-3-haiku-20240307-v1:0", None),
        ];
        for (id, expected) in cases {
            assert_eq!(EmbeddingModel::of_model_id(id), expected, "{id}");
            assert_eq!(is_embedding_model(id), expected.is_some(), "{id}");
        }
    }

    #[test]
    fn batches_split_as_the_bodies_do() {
        let cohere = EmbeddingModel::Cohere { v4: false };
        assert_eq!(texts_per_body(cohere, 200).collect::<Vec<_>>(), [96, 96, 8]);
        assert_eq!(texts_per_body(cohere, 96).collect::<Vec<_>>(), [96]);
        let titan = EmbeddingModel::Titan { v2: true };
        assert_eq!(texts_per_body(titan, 3).collect::<Vec<_>>(), [1, 1, 1]);
        let request = EmbeddingRequest {
            model: "a/m".into(),
            inputs: vec!["x".into(); 200],
            ..EmbeddingRequest::default()
        };
        assert_eq!(invoke_bodies(cohere, &request).unwrap().len(), 3);
        assert_eq!(invoke_bodies(titan, &request).unwrap().len(), 200);
    }

    #[test]
    fn an_answer_with_another_count_of_vectors_is_a_protocol_error() {
        let body = br#"{"embeddings":{"float":[[0.1],[0.2]]}}"#;
        let cohere = EmbeddingModel::Cohere { v4: false };
        assert!(parse_invoke_answer(cohere, body, 2, Some(4)).is_ok());
        assert!(matches!(
            parse_invoke_answer(cohere, body, 3, None),
            Err(ProviderError::Protocol { .. })
        ));
    }
}
