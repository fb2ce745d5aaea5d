//! Embedding requests and answers: texts in, one vector per text out.

use serde::{Deserialize, Serialize};

use crate::request_limits::{check_count, check_model_name, RequestLimitError};

/// Texts in one embedding request: OpenAI's limit for one `input` array. A provider whose
/// model takes fewer per call splits the batch.
pub const MAX_EMBEDDING_INPUTS: usize = 2048;

/// What a client asked to embed. Like [`ChatRequest`](crate::ChatRequest), only what the
/// client asked, never rewritten by policy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingRequest {
    /// The public model name (`<account>/<model>` or a virtual model).
    pub model: String,
    /// The texts, in order; the answer has one vector per text, in the same order.
    pub inputs: Vec<String>,
    /// The vectors' length, for models that can shorten them; `None`: the model's default.
    pub dimensions: Option<u32>,
    /// Unit-length vectors, for models that choose; `None`: the model's default.
    pub normalize: Option<bool>,
    /// What the vectors will be used for, for models that embed differently per use;
    /// `None`: the provider's default for the model.
    pub input_type: Option<EmbeddingInputType>,
}

/// What embeddings are for (Cohere's `input_type`, read by the models that take it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EmbeddingInputType {
    /// Texts stored in a vector database, to be searched.
    SearchDocument,
    /// Queries searching such a database.
    SearchQuery,
    /// Input to a text classifier.
    Classification,
    /// Texts to cluster.
    Clustering,
}

impl EmbeddingInputType {
    /// Every value, in the order errors list them.
    pub const ALL: [Self; 4] = [
        Self::SearchDocument,
        Self::SearchQuery,
        Self::Classification,
        Self::Clustering,
    ];

    /// The snake_case name clients and Cohere use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SearchDocument => "search_document",
            Self::SearchQuery => "search_query",
            Self::Classification => "classification",
            Self::Clustering => "clustering",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }
}

/// A provider's answer: one vector per input, in the inputs' order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingResponse {
    pub vectors: Vec<Vec<f32>>,
    /// Tokens the provider counted in the inputs (what is metered and priced).
    pub input_tokens: u64,
}

/// The caps every door and the service apply to an embedding request: the model name rule
/// chat requests follow, at least one input and at most [`MAX_EMBEDDING_INPUTS`].
pub fn check_embedding_request(request: &EmbeddingRequest) -> Result<(), RequestLimitError> {
    check_model_name(&request.model).map_err(|message| RequestLimitError::new("model", message))?;
    if request.inputs.is_empty() {
        return Err(RequestLimitError::new(
            "input",
            "must hold at least one text",
        ));
    }
    check_count(request.inputs.len(), MAX_EMBEDDING_INPUTS, "texts")
        .map_err(|message| RequestLimitError::new("input", message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_types_parse_their_own_names_only() {
        for kind in EmbeddingInputType::ALL {
            assert_eq!(EmbeddingInputType::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(EmbeddingInputType::parse("image"), None);
        assert_eq!(EmbeddingInputType::parse("Search_Query"), None);
    }

    #[test]
    fn empty_and_oversized_batches_are_refused() {
        let request = |count: usize| EmbeddingRequest {
            model: "a/m".into(),
            inputs: vec!["x".into(); count],
            ..EmbeddingRequest::default()
        };
        assert!(check_embedding_request(&request(1)).is_ok());
        assert!(check_embedding_request(&request(MAX_EMBEDDING_INPUTS)).is_ok());
        assert_eq!(
            check_embedding_request(&request(0)).unwrap_err().path,
            "input"
        );
        assert_eq!(
            check_embedding_request(&request(MAX_EMBEDDING_INPUTS + 1))
                .unwrap_err()
                .to_string(),
            "input: holds 2049 texts, more than the 2048 allowed"
        );
    }
}
