//! Converse's rules for the conversation: turns alternate between user and assistant, and
//! the first is the user's.
//!
//! The domain carries the conversation as the client gave it. Consecutive same-role
//! messages are common and harmless (a tool result followed by a user text, two user
//! texts), so they are merged into one turn, in order. An assistant first turn cannot be
//! fixed without inventing a user message, so it is refused before any call, as the
//! client's error.

use gateway_core::{ContentPart, Message, ProviderError, Role};

use crate::wire::{ContentBlock, ConversationRole, Message as WireMessage};

/// Why Bedrock would refuse an assistant first turn. The wording predates this module (the
/// OpenAI parser used to say it), so clients keep seeing the same error.
const USER_FIRST: &str = "the conversation must start with a user message (after any system or \
     developer messages): Bedrock requires the first turn to be the user's";

/// The Converse turns for `messages`, each part converted by `content_block`: same-role
/// neighbours merged, user first.
pub(crate) fn converse_turns<'a>(
    messages: &'a [Message],
    content_block: fn(&'a ContentPart) -> Result<ContentBlock<'a>, ProviderError>,
) -> Result<Vec<WireMessage<'a>>, ProviderError> {
    if let Some(first) = messages.first() {
        if first.role != Role::User {
            return Err(ProviderError::TurnOrder {
                message_index: 0,
                message: USER_FIRST.to_owned(),
            });
        }
    }
    let mut turns: Vec<WireMessage<'a>> = Vec::with_capacity(messages.len());
    for message in messages {
        let role = match message.role {
            Role::User => ConversationRole::User,
            Role::Assistant => ConversationRole::Assistant,
        };
        let blocks = message.content.iter().map(content_block);
        match turns.last_mut() {
            Some(last) if last.role == role => {
                for block in blocks {
                    last.content.push(block?);
                }
            }
            _ => turns.push(WireMessage {
                role,
                content: blocks.collect::<Result<_, _>>()?,
            }),
        }
    }
    Ok(turns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_core::ToolResult;

    fn text(part: &ContentPart) -> Result<ContentBlock<'_>, ProviderError> {
        match part {
            ContentPart::Text(text) => Ok(ContentBlock::Text(text)),
            other => panic!("only text in these tests: {other:?}"),
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
            ContentPart::ToolResult(_) => Ok(ContentBlock::Text("<result>")),
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
}
