//! Prompt-cache points: `{"cachePoint": {"type": "default", "ttl"?}}` in `system`, in
//! messages and after a tool in `toolConfig.tools`.
//!
//! Only models with prompt caching get them (Claude, Nova; see `crate::model_family`); for
//! others they are dropped, since caching changes cost and latency, never the answer.
//! Bedrock takes at most [`MAX_CACHE_POINTS`] per request; more is refused before any call
//! rather than some silently dropped (which ones the client would rather keep is theirs to
//! say).

use gateway_core::{CachePoint, ProviderError, RequestFeature};

use crate::model_family::ModelCapabilities;
use crate::wire::{CachePointBlock, CachePointType};

/// Bedrock's limit per request, across system, messages and tools.
pub(crate) const MAX_CACHE_POINTS: usize = 4;

/// Counts the cache points of one request as they are written.
#[derive(Debug)]
pub(crate) struct CachePoints {
    enabled: bool,
    written: usize,
}

impl CachePoints {
    pub fn new(model: &ModelCapabilities) -> Self {
        Self {
            enabled: model.prompt_caching,
            written: 0,
        }
    }

    /// The block for `point`; `None` when the model has no prompt caching.
    pub fn block(&mut self, point: &CachePoint) -> Result<Option<CachePointBlock>, ProviderError> {
        if !self.enabled {
            return Ok(None);
        }
        self.written += 1;
        if self.written > MAX_CACHE_POINTS {
            return Err(ProviderError::Unsupported {
                feature: RequestFeature::CachePoint,
                message: format!(
                    "Bedrock takes at most {MAX_CACHE_POINTS} cache points per request \
                     (cache_control on system, messages and tools together); this request has more"
                ),
            });
        }
        Ok(Some(CachePointBlock {
            kind: CachePointType::Default,
            ttl: point.ttl.map(|ttl| ttl.as_str()),
        }))
    }
}
