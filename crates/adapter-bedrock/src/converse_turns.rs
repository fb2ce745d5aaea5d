//! Converse's rules for the conversation: turns alternate between user and assistant, the
//! first is the user's, no turn is empty, and an assistant turn's reasoning comes first.
//!
//! The domain carries the conversation as the client gave it. Consecutive same-role
//! messages are common and harmless (a tool result followed by a user text, two user
//! texts), so they are merged into one turn, in order. A message left without blocks, or
//! with only a cache point (its text was blank, its cache point dropped for a model without
//! caching), is left out, as if not sent.
//! Reasoning blocks move to the front of their turn, in order (Bedrock refuses reasoning
//! after text or a tool call, and merging two assistant messages could put it there). A cache
//! point left right after a reasoning block (the text it marked was blank) is dropped, since
//! Bedrock refuses it there and caching is only an optimisation. An assistant first turn
//! cannot be fixed without inventing a user message, so it is refused before any call, as
//! the client's error; so is a last user message left empty, since leaving it out would turn
//! the request into a continuation of the previous assistant turn (or into no conversation).

use gateway_core::{ContentPart, Message, ProviderError, Role};

use crate::wire::{ContentBlock, ConversationRole, Message as WireMessage};

/// Why Bedrock would refuse an assistant first turn. The wording predates this module (the
/// OpenAI parser used to say it), so clients keep seeing the same error.
const USER_FIRST: &str = "the conversation must start with a user message (after any system or \
     developer messages): Bedrock requires the first turn to be the user's";

/// Why the conversation cannot go to Bedrock when its last (user) message is left out.
const BLANK_LAST_MESSAGE: &str = "the last message holds only blank text, which Bedrock \
     refuses, and leaving it out would leave no user turn to answer";

/// The Converse turns for `messages`, each part converted by `content_block` (`None`: the
/// part is left out): empty messages left out, same-role neighbours merged, reasoning first
/// in each turn, user first, and a user turn last when the client's last message is the
/// user's.
pub(crate) fn converse_turns<'a>(
    messages: &'a [Message],
    mut content_block: impl FnMut(&'a ContentPart) -> Result<Option<ContentBlock<'a>>, ProviderError>,
) -> Result<Vec<WireMessage<'a>>, ProviderError> {
    let mut turns: Vec<WireMessage<'a>> = Vec::with_capacity(messages.len());
    for (index, message) in messages.iter().enumerate() {
        let role = match message.role {
            Role::User => ConversationRole::User,
            Role::Assistant => ConversationRole::Assistant,
        };
        let mut blocks = Vec::with_capacity(message.content.len());
        for part in &message.content {
            if let Some(block) = content_block(part)? {
                blocks.push(block);
            }
        }
        // A cache point alone marks nothing the model would read.
        if blocks
            .iter()
            .all(|block| matches!(block, ContentBlock::CachePoint(_)))
        {
            continue;
        }
        match turns.last_mut() {
            Some(last) if last.role == role => last.content.append(&mut blocks),
            Some(_) => turns.push(WireMessage {
                role,
                content: blocks,
            }),
            None if role == ConversationRole::User => turns.push(WireMessage {
                role,
                content: blocks,
            }),
            None => {
                return Err(ProviderError::TurnOrder {
                    message_index: index,
                    message: USER_FIRST.to_owned(),
                })
            }
        }
    }
    if let Some(last) = messages.last() {
        let ends_with_user = turns
            .last()
            .is_some_and(|turn| turn.role == ConversationRole::User);
        if last.role == Role::User && !ends_with_user {
            return Err(ProviderError::TurnOrder {
                message_index: messages.len() - 1,
                message: BLANK_LAST_MESSAGE.to_owned(),
            });
        }
    }
    let is_reasoning =
        |block: &ContentBlock<'_>| matches!(block, ContentBlock::ReasoningContent(_));
    for turn in &mut turns {
        if turn
            .content
            .iter()
            .skip_while(|b| is_reasoning(b))
            .any(is_reasoning)
        {
            // Stable: reasoning blocks keep their order, and so does everything after them.
            turn.content.sort_by_key(|block| !is_reasoning(block));
        }
        // "Cache point cannot be inserted after reasoning block": one lands there when the
        // text it marked was blank.
        let mut after_reasoning = false;
        turn.content.retain(|block| {
            let misplaced = after_reasoning && matches!(block, ContentBlock::CachePoint(_));
            if !misplaced {
                after_reasoning = is_reasoning(block);
            }
            !misplaced
        });
    }
    Ok(turns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{CachePointBlock, CachePointType, ReasoningContentBlock};
    use gateway_core::{ReasoningBlock, ToolResult};

    fn text(part: &ContentPart) -> Result<Option<ContentBlock<'_>>, ProviderError> {
        match part {
            ContentPart::CachePoint(_) => Ok(Some(ContentBlock::CachePoint(CachePointBlock {
                kind: CachePointType::Default,
                ttl: None,
            }))),
            ContentPart::Text(text) if text.trim().is_empty() => Ok(None),
            ContentPart::Text(text) => Ok(Some(ContentBlock::Text(text))),
            ContentPart::Reasoning(_) => Ok(Some(ContentBlock::ReasoningContent(
                ReasoningContentBlock::RedactedContent("r"),
            ))),
            other => panic!("only text and reasoning in these tests: {other:?}"),
        }
    }

    fn message(role: Role, text: &str) -> Message {
        Message {
            role,
            content: vec![ContentPart::Text(text.into())],
        }
    }

    #[test]
    fn consecutive_same_role_messages_become_one_turn_in_order() {
        let messages = [
            message(Role::User, "one"),
            message(Role::User, "two"),
            message(Role::Assistant, "three"),
            message(Role::Assistant, "four"),
            message(Role::User, "five"),
        ];
        let turns = converse_turns(&messages, text).unwrap();
        let shape: Vec<(ConversationRole, Vec<ContentBlock<'_>>)> = turns
            .into_iter()
            .map(|turn| (turn.role, turn.content))
            .collect();
        assert_eq!(
            shape,
            vec![
                (
                    ConversationRole::User,
                    vec![ContentBlock::Text("one"), ContentBlock::Text("two")]
                ),
                (
                    ConversationRole::Assistant,
                    vec![ContentBlock::Text("three"), ContentBlock::Text("four")]
                ),
                (ConversationRole::User, vec![ContentBlock::Text("five")]),
            ]
        );
    }

    #[test]
    fn a_tool_result_and_the_next_user_text_share_a_turn() {
        let messages = [
            Message {
                role: Role::User,
                content: vec![ContentPart::ToolResult(ToolResult {
                    tool_use_id: "call_0".into(),
                    content: "42".into(),
                    is_error: false,
                })],
            },
            message(Role::User, "Explain that result"),
        ];
        let turns = converse_turns(&messages, |part| match part {
            ContentPart::ToolResult(_) => Ok(Some(ContentBlock::Text("<result>"))),
            other => text(other),
        })
        .unwrap();
        assert_eq!(turns.len(), 1);
        assert_eq!(turns[0].content.len(), 2);
    }

    #[test]
    fn an_assistant_first_turn_is_the_clients_error() {
        let messages = [
            message(Role::Assistant, "Hi!"),
            message(Role::User, "Hello"),
        ];
        assert_eq!(
            converse_turns(&messages, text).unwrap_err(),
            ProviderError::TurnOrder {
                message_index: 0,
                message: USER_FIRST.into(),
            }
        );
    }

    #[test]
    fn messages_left_empty_are_left_out_and_their_neighbours_merge() {
        let messages = [
            message(Role::User, "one"),
            message(Role::Assistant, "  \n"),
            Message {
                role: Role::Assistant,
                content: vec![
                    ContentPart::Text(" ".into()),
                    ContentPart::CachePoint(Default::default()),
                ],
            },
            message(Role::User, "two"),
        ];
        let turns = converse_turns(&messages, text).unwrap();
        assert_eq!(turns.len(), 1);
        assert_eq!(
            turns[0].content,
            vec![ContentBlock::Text("one"), ContentBlock::Text("two")]
        );
    }

    #[test]
    fn a_last_user_message_left_empty_is_refused_rather_than_left_out() {
        let blank_last = [
            message(Role::User, "hi"),
            message(Role::Assistant, "hello"),
            message(Role::User, " \n"),
        ];
        assert_eq!(
            converse_turns(&blank_last, text).unwrap_err(),
            ProviderError::TurnOrder {
                message_index: 2,
                message: BLANK_LAST_MESSAGE.into(),
            }
        );
        assert_eq!(
            converse_turns(&[message(Role::User, "")], text).unwrap_err(),
            ProviderError::TurnOrder {
                message_index: 0,
                message: BLANK_LAST_MESSAGE.into(),
            }
        );
        // Still a user turn last: the blank message is left out as anywhere else.
        let after_a_question = [message(Role::User, "hi"), message(Role::User, " ")];
        assert_eq!(
            converse_turns(&after_a_question, text).unwrap()[0].content,
            vec![ContentBlock::Text("hi")]
        );
        // A client's own last assistant turn (a prefill) is no blank user message.
        let prefill = [message(Role::User, "hi"), message(Role::Assistant, "{")];
        assert_eq!(converse_turns(&prefill, text).unwrap().len(), 2);
    }

    #[test]
    fn a_cache_point_left_right_after_reasoning_is_dropped() {
        let reasoning = ContentPart::Reasoning(ReasoningBlock::Redacted { data: "r".into() });
        let messages = [
            message(Role::User, "q"),
            Message {
                role: Role::Assistant,
                content: vec![
                    reasoning,
                    ContentPart::Text(" ".into()),
                    ContentPart::CachePoint(Default::default()),
                    ContentPart::Text("a".into()),
                    ContentPart::CachePoint(Default::default()),
                ],
            },
            message(Role::User, "q2"),
        ];
        let turns = converse_turns(&messages, text).unwrap();
        assert_eq!(
            turns[1].content,
            vec![
                ContentBlock::ReasoningContent(ReasoningContentBlock::RedactedContent("r")),
                ContentBlock::Text("a"),
                ContentBlock::CachePoint(CachePointBlock {
                    kind: CachePointType::Default,
                    ttl: None,
                }),
            ]
        );
    }

    #[test]
    fn an_assistant_first_after_empty_messages_is_named_by_its_own_index() {
        let messages = [message(Role::User, " "), message(Role::Assistant, "Hi!")];
        assert_eq!(
            converse_turns(&messages, text).unwrap_err(),
            ProviderError::TurnOrder {
                message_index: 1,
                message: USER_FIRST.into(),
            }
        );
    }

    #[test]
    fn reasoning_comes_first_in_a_merged_assistant_turn() {
        let reasoning = ContentPart::Reasoning(ReasoningBlock::Redacted { data: "r".into() });
        let messages = [
            message(Role::User, "q"),
            Message {
                role: Role::Assistant,
                content: vec![reasoning.clone(), ContentPart::Text("a".into())],
            },
            Message {
                role: Role::Assistant,
                content: vec![ContentPart::Text("b".into()), reasoning],
            },
        ];
        let turns = converse_turns(&messages, text).unwrap();
        let redacted = ContentBlock::ReasoningContent(ReasoningContentBlock::RedactedContent("r"));
        assert_eq!(
            turns[1].content,
            vec![
                redacted.clone(),
                redacted,
                ContentBlock::Text("a"),
                ContentBlock::Text("b")
            ]
        );
    }
}
