//! InvokeModel (`POST /model/{modelId}/invoke`) for the embedding models: Amazon Titan Text
//! Embeddings (v1, v2) and Cohere Embed (v3, v4), with their documented bodies and limits.
//!
//! Vectors are deterministic: each component drawn from a generator seeded with the text's
//! hash (and the model's), so the same text always embeds the same way and different texts
//! differently; normalised to unit length where the model normalises (Titan v2 unless
//! `normalize: false`, Cohere always). The token count is the text's word count (at least
//! one), in Titan's `inputTextTokenCount` and in the `x-amzn-bedrock-input-token-count`
//! header, as Bedrock sends both.

use http::header::HeaderValue;
use http::Response;
use serde_json::{json, Map, Value};

use crate::body::SimBody;
use crate::model_id;

/// The header Bedrock counts InvokeModel input tokens in.
pub(crate) const INPUT_TOKEN_COUNT: &str = "x-amzn-bedrock-input-token-count";

const COHERE_MAX_TEXTS: usize = 96;
const COHERE_V3_MAX_CHARS: usize = 2048;
const INPUT_TYPES: [&str; 4] = [
    "search_document",
    "search_query",
    "classification",
    "clustering",
];

/// The answer to an authenticated InvokeModel call: `Ok((status 200 body, input tokens))`
/// or a `ValidationException` message.
pub(crate) fn answer(model_id: &str, body: &[u8]) -> Result<(Value, u64), String> {
    let base = model_id::base(model_id);
    let Ok(Value::Object(request)) = serde_json::from_slice::<Value>(body) else {
        return Err("Malformed input request, please reformat your input and try again.".into());
    };
    if let Some(rest) = base.strip_prefix("amazon.titan-embed-") {
        return titan(base, rest.starts_with("text-v2"), request);
    }
    if let Some(rest) = base.strip_prefix("cohere.embed-") {
        return cohere(base, rest.starts_with("v4"), request);
    }
    Err(format!(
        "The simulator answers InvokeModel for embedding models only, not {model_id}."
    ))
}

/// The answer as an HTTP response (a 400 `ValidationException` when refused).
pub(crate) fn response(model_id: &str, body: &[u8]) -> Response<SimBody> {
    match answer(model_id, body) {
        Err(message) => crate::bedrock::error_response(400, "ValidationException", &message),
        Ok((value, tokens)) => {
            let mut response = Response::new(SimBody::full(value.to_string()));
            let headers = response.headers_mut();
            headers.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            headers.insert(INPUT_TOKEN_COUNT, HeaderValue::from(tokens));
            response
        }
    }
}

fn titan(base: &str, v2: bool, mut request: Map<String, Value>) -> Result<(Value, u64), String> {
    let allowed: &[&str] = if v2 {
        &["inputText", "dimensions", "normalize", "embeddingTypes"]
    } else {
        &["inputText"]
    };
    refuse_extraneous(&request, allowed)?;
    let text = match request.remove("inputText") {
        Some(Value::String(text)) if !text.is_empty() => text,
        _ => return Err("#: required key [inputText] not found or empty".into()),
    };
    let dimensions = match request.remove("dimensions") {
        None => {
            if v2 {
                1024
            } else {
                1536
            }
        }
        Some(Value::Number(n)) if [256, 512, 1024].contains(&n.as_u64().unwrap_or(0)) => {
            n.as_u64().unwrap_or(1024) as usize
        }
        Some(_) => return Err("#/dimensions: 256, 512 or 1024 expected".into()),
    };
    let normalize = match request.remove("normalize") {
        None => v2,
        Some(Value::Bool(normalize)) => normalize,
        Some(_) => return Err("#/normalize: expected type: Boolean".into()),
    };
    let vector = vector(base, &text, dimensions, normalize);
    let tokens = words(&text);
    Ok((
        json!({
            "embedding": vector,
            "inputTextTokenCount": tokens,
            "embeddingsByType": {"float": vector},
        }),
        tokens,
    ))
}

fn cohere(base: &str, v4: bool, mut request: Map<String, Value>) -> Result<(Value, u64), String> {
    let mut allowed = vec!["texts", "input_type", "truncate", "embedding_types"];
    if v4 {
        allowed.extend(["output_dimension", "max_tokens"]);
    }
    refuse_extraneous(&request, &allowed)?;
    let texts: Vec<String> = match request.remove("texts") {
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|item| match item {
                Value::String(text) => Ok(text),
                _ => Err("texts must be strings".to_owned()),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err("texts is required".into()),
    };
    if texts.is_empty() || texts.len() > COHERE_MAX_TEXTS {
        return Err(format!(
            "texts must hold 1 to {COHERE_MAX_TEXTS} texts, not {}",
            texts.len()
        ));
    }
    if !v4
        && texts
            .iter()
            .any(|text| text.chars().count() > COHERE_V3_MAX_CHARS)
    {
        return Err(format!(
            "each text may hold at most {COHERE_V3_MAX_CHARS} characters"
        ));
    }
    let input_type = match request.remove("input_type") {
        Some(Value::String(kind)) if INPUT_TYPES.contains(&kind.as_str()) => kind,
        Some(_) => {
            return Err(format!(
                "input_type must be one of {}",
                INPUT_TYPES.join(", ")
            ))
        }
        None => return Err("input_type is required".into()),
    };
    let truncations: &[&str] = if v4 {
        &["NONE", "LEFT", "RIGHT"]
    } else {
        &["NONE", "START", "END"]
    };
    if let Some(truncate) = request.remove("truncate") {
        if !truncate
            .as_str()
            .is_some_and(|value| truncations.contains(&value))
        {
            return Err(format!(
                "truncate must be one of {}",
                truncations.join(", ")
            ));
        }
    }
    let by_type = match request.remove("embedding_types") {
        None => false,
        Some(Value::Array(types)) if types == [json!("float")] => true,
        Some(_) => {
            return Err(
                "the simulator returns float embeddings only: embedding_types [\"float\"]".into(),
            )
        }
    };
    let dimensions = match request.remove("output_dimension") {
        None => {
            if v4 {
                1536
            } else {
                1024
            }
        }
        Some(Value::Number(n)) if [256, 512, 1024, 1536].contains(&n.as_u64().unwrap_or(0)) => {
            n.as_u64().unwrap_or(1536) as usize
        }
        Some(_) => return Err("output_dimension must be 256, 512, 1024 or 1536".into()),
    };
    // Cohere prepends a token per input type: the same text embeds differently per use.
    let seed = format!("{base}/{input_type}");
    let vectors: Vec<Vec<f32>> = texts
        .iter()
        .map(|text| vector(&seed, text, dimensions, true))
        .collect();
    let tokens = texts.iter().map(|text| words(text)).sum();
    let answer = if by_type {
        json!({
            "id": "sim-embed",
            "embeddings": {"float": vectors},
            "response_type": "embeddings_by_type",
            "texts": texts,
        })
    } else {
        json!({
            "id": "sim-embed",
            "embeddings": vectors,
            "response_type": "embeddings_floats",
            "texts": texts,
        })
    };
    Ok((answer, tokens))
}

fn refuse_extraneous(request: &Map<String, Value>, allowed: &[&str]) -> Result<(), String> {
    match request.keys().find(|key| !allowed.contains(&key.as_str())) {
        Some(key) => Err(format!("#: extraneous key [{key}] is not permitted")),
        None => Ok(()),
    }
}

/// Words in `text`: the simulator's token count (at least one).
fn words(text: &str) -> u64 {
    (text.split_whitespace().count() as u64).max(1)
}

/// `dimensions` components in [-1, 1) from a SplitMix64 seeded with FNV-1a of the seed and
/// the text; unit length when `normalize`.
fn vector(seed: &str, text: &str, dimensions: usize, normalize: bool) -> Vec<f32> {
    let mut state = fnv1a(
        seed.as_bytes(),
        fnv1a(text.as_bytes(), 0xcbf2_9ce4_8422_2325),
    );
    let mut components: Vec<f32> = (0..dimensions)
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            // The top 24 bits, as an f32 in [-1, 1).
            ((z >> 40) as f32 / (1u64 << 23) as f32) - 1.0
        })
        .collect();
    if normalize {
        let norm = components
            .iter()
            .map(|c| f64::from(*c) * f64::from(*c))
            .sum::<f64>()
            .sqrt();
        if norm > 0.0 {
            for component in &mut components {
                *component = (f64::from(*component) / norm) as f32;
            }
        }
    }
    components
}

fn fnv1a(bytes: &[u8], mut hash: u64) -> u64 {
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    fn embed(model: &str, body: Value) -> Result<(Value, u64), String> {
        answer(model, body.to_string().as_bytes())
    }

    #[test]
    fn titan_v2_honours_dimensions_and_normalize_deterministically() {
        let (first, tokens) = embed(
            "amazon.titan-embed-text-v2:0",
            json!({"inputText": "the quick brown fox", "dimensions": 256}),
        )
        .unwrap();
        assert_eq!(tokens, 4);
        assert_eq!(first["inputTextTokenCount"], 4);
        let vector: Vec<f64> = serde_json::from_value(first["embedding"].clone()).unwrap();
        assert_eq!(vector.len(), 256);
        let norm: f64 = vector.iter().map(|c| c * c).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "{norm}");
        let (again, _) = embed(
            "us.amazon.titan-embed-text-v2:0",
            json!({"inputText": "the quick brown fox", "dimensions": 256}),
        )
        .unwrap();
        assert_eq!(first, again, "the same text embeds the same way");
        let (raw, _) = embed(
            "amazon.titan-embed-text-v2:0",
            json!({"inputText": "the quick brown fox", "normalize": false}),
        )
        .unwrap();
        let raw: Vec<f64> = serde_json::from_value(raw["embedding"].clone()).unwrap();
        assert_eq!(raw.len(), 1024);
        assert!(raw.iter().map(|c| c * c).sum::<f64>().sqrt() > 2.0);
    }

    #[test]
    fn bodies_bedrock_refuses_are_refused() {
        let refused = [
            ("amazon.titan-embed-text-v2:0", json!({"inputText": ""})),
            (
                "amazon.titan-embed-text-v2:0",
                json!({"inputText": "x", "dimensions": 300}),
            ),
            (
                "amazon.titan-embed-text-v1",
                json!({"inputText": "x", "dimensions": 256}),
            ),
            ("amazon.titan-embed-text-v2:0", json!({"texts": ["x"]})),
            ("cohere.embed-english-v3", json!({"texts": ["x"]})),
            (
                "cohere.embed-english-v3",
                json!({"texts": [], "input_type": "search_query"}),
            ),
            (
                "cohere.embed-english-v3",
                json!({"texts": ["x"], "input_type": "search_query", "output_dimension": 256}),
            ),
            (
                "cohere.embed-english-v3",
                json!({"texts": vec!["x"; 97], "input_type": "search_query"}),
            ),
            (
                "anthropic.claude-3-haiku-20240307-v1:0",
                json!({"inputText": "x"}),
            ),
        ];
        for (model, body) in refused {
            assert!(embed(model, body.clone()).is_err(), "{model} {body}");
        }
    }

    #[test]
    fn cohere_embeds_each_text_per_input_type() {
        let body = |input_type: &str| json!({"texts": ["a b", "c"], "input_type": input_type, "embedding_types": ["float"], "truncate": "NONE"});
        let (documents, tokens) =
            embed("cohere.embed-english-v3", body("search_document")).unwrap();
        assert_eq!(tokens, 3);
        let vectors = documents["embeddings"]["float"].as_array().unwrap();
        assert_eq!(vectors.len(), 2);
        assert_eq!(vectors[0].as_array().unwrap().len(), 1024);
        assert_ne!(vectors[0], vectors[1]);
        let (queries, _) = embed("cohere.embed-english-v3", body("search_query")).unwrap();
        assert_ne!(documents, queries);
        let (v4, _) = embed(
            "cohere.embed-v4:0",
            json!({"texts": ["a"], "input_type": "clustering", "output_dimension": 512}),
        )
        .unwrap();
        assert_eq!(v4["embeddings"][0].as_array().unwrap().len(), 512);
    }
}
