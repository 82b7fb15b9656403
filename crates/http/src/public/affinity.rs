//! Which client a request belongs to, for cache affinity. By default a client is its gateway
//! key; a coding agent runs many sessions on one key, each with its own upstream prompt cache,
//! so a session identity carried by the request is preferred when the front door's rules find
//! one: a configured header, OpenAI's `prompt_cache_key`, the Responses API's
//! `previous_response_id`, or Claude Code's `metadata.user_id` (whose `_session_` part names
//! the session).
//!
//! The affinity key is always prefixed by the gateway key id: two clients choosing the same
//! session name never share an entry.

use actix_web::HttpRequest;
use std::borrow::Cow;
use switchyard_formats::RequestBody;
use switchyard_formats::dialect::Dialect;

/// Longest session identity used (longer ones are cut, never rejected).
const MAX_SESSION_CHARS: usize = 200;

/// One way of finding a session identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionRule {
    /// The configured header.
    Header,
    /// Body `prompt_cache_key` (OpenAI chat and Responses).
    PromptCacheKey,
    /// Body `previous_response_id` (Responses).
    PreviousResponseId,
    /// Body `metadata.user_id` (Anthropic; Claude Code puts its session id there).
    MetadataUserId,
}

impl SessionRule {
    /// Parses a configured rule name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "header" => Some(SessionRule::Header),
            "prompt_cache_key" => Some(SessionRule::PromptCacheKey),
            "previous_response_id" => Some(SessionRule::PreviousResponseId),
            "metadata_user_id" => Some(SessionRule::MetadataUserId),
            _ => None,
        }
    }

    /// The rule's name, as configured and as labelled in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionRule::Header => "header",
            SessionRule::PromptCacheKey => "prompt_cache_key",
            SessionRule::PreviousResponseId => "previous_response_id",
            SessionRule::MetadataUserId => "metadata_user_id",
        }
    }
}

/// The session rules of every front door.
#[derive(Debug, Clone)]
pub struct SessionAffinity {
    /// Header carrying a session identity (lower-case), for [`SessionRule::Header`].
    pub header: Option<String>,
    /// Rules tried in order for OpenAI chat.
    pub chat: Vec<SessionRule>,
    /// … for OpenAI Responses.
    pub responses: Vec<SessionRule>,
    /// … for Anthropic messages.
    pub messages: Vec<SessionRule>,
    /// … for Gemini.
    pub gemini: Vec<SessionRule>,
}

impl Default for SessionAffinity {
    fn default() -> Self {
        use SessionRule::{Header, MetadataUserId, PreviousResponseId, PromptCacheKey};
        Self {
            header: Some("x-session-id".into()),
            chat: vec![Header, PromptCacheKey],
            responses: vec![Header, PreviousResponseId, PromptCacheKey],
            messages: vec![Header, MetadataUserId],
            gemini: vec![Header],
        }
    }
}

impl SessionAffinity {
    /// The affinity key of a request and the rule that chose it (`gateway_key` when none did).
    pub fn key_for(
        &self,
        dialect: Dialect,
        req: &HttpRequest,
        body: &RequestBody,
        gateway_key_id: &str,
    ) -> (String, &'static str) {
        let rules = match dialect {
            Dialect::Chat => &self.chat,
            Dialect::Responses => &self.responses,
            Dialect::Messages => &self.messages,
            Dialect::Gemini => &self.gemini,
        };
        for rule in rules {
            if let Some(session) = self.session(*rule, req, body) {
                let session = session.trim();
                let session: String = session.chars().take(MAX_SESSION_CHARS).collect();
                return (
                    switchyard_actors::orchestrator::session_affinity_key(
                        gateway_key_id,
                        rule.as_str(),
                        &session,
                    ),
                    rule.as_str(),
                );
            }
        }
        (gateway_key_id.to_owned(), "gateway_key")
    }

    fn session<'a>(
        &self,
        rule: SessionRule,
        req: &'a HttpRequest,
        body: &'a RequestBody,
    ) -> Option<Cow<'a, str>> {
        // A string member of the body (borrowed unless it has escapes); anything else is none.
        let text = |key: &str| body.get::<Cow<'a, str>>(key).and_then(Result::ok);
        let session = match rule {
            SessionRule::Header => {
                let name = self.header.as_deref()?;
                Cow::Borrowed(req.headers().get(name)?.to_str().ok()?)
            }
            SessionRule::PromptCacheKey => text("prompt_cache_key")?,
            SessionRule::PreviousResponseId => text("previous_response_id")?,
            SessionRule::MetadataUserId => {
                #[derive(serde::Deserialize)]
                struct Metadata<'m> {
                    #[serde(borrow)]
                    user_id: Option<Cow<'m, str>>,
                }
                let user = body.get::<Metadata<'a>>("metadata")?.ok()?.user_id?;
                match user {
                    Cow::Borrowed(user) => Cow::Borrowed(claude_code_session(user.trim())),
                    Cow::Owned(user) => Cow::Owned(claude_code_session(user.trim()).to_owned()),
                }
            }
        };
        (!session.trim().is_empty()).then_some(session)
    }
}

/// Claude Code sends `user_<hash>_account_<uuid>_session_<uuid>`: the session part identifies
/// the conversation. Any other value is used whole.
fn claude_code_session(user_id: &str) -> &str {
    user_id
        .rsplit_once("_session_")
        .map_or(user_id, |(_, session)| session)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;
    use serde_json::{Value, json};

    fn body(value: Value) -> RequestBody {
        match value {
            Value::Object(map) => map.into(),
            _ => RequestBody::empty(),
        }
    }

    #[test]
    fn the_first_rule_that_finds_a_session_wins_and_the_gateway_key_is_the_fallback() {
        let rules = SessionAffinity::default();
        let plain = TestRequest::default().to_http_request();
        let with_header = TestRequest::default()
            .insert_header(("x-session-id", "s-42"))
            .to_http_request();
        let cached = body(json!({"prompt_cache_key": "conv-7"}));

        assert_eq!(
            rules.key_for(Dialect::Chat, &plain, &cached, "gk"),
            ("gk|prompt_cache_key|conv-7".to_owned(), "prompt_cache_key")
        );
        assert_eq!(
            rules.key_for(Dialect::Chat, &with_header, &cached, "gk"),
            ("gk|header|s-42".to_owned(), "header")
        );
        assert_eq!(
            rules.key_for(Dialect::Gemini, &plain, &cached, "gk"),
            ("gk".to_owned(), "gateway_key")
        );
        let chained = body(json!({"previous_response_id": "resp_1", "prompt_cache_key": "c"}));
        assert_eq!(
            rules.key_for(Dialect::Responses, &plain, &chained, "gk").1,
            "previous_response_id"
        );
    }

    #[test]
    fn claude_code_sessions_are_read_from_metadata_user_id() {
        let rules = SessionAffinity::default();
        let plain = TestRequest::default().to_http_request();
        let claude_code = body(json!({"metadata": {
            "user_id": "user_ab12_account_0000-1111_session_9f8e-7d6c"
        }}));
        assert_eq!(
            rules.key_for(Dialect::Messages, &plain, &claude_code, "gk"),
            (
                "gk|metadata_user_id|9f8e-7d6c".to_owned(),
                "metadata_user_id"
            )
        );
        let other = body(json!({"metadata": {"user_id": "alice"}}));
        assert_eq!(
            rules.key_for(Dialect::Messages, &plain, &other, "gk").0,
            "gk|metadata_user_id|alice"
        );
    }
}
