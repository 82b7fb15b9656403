//! The wire formats a client or an upstream endpoint speaks.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// One of the six API formats. "CLI" variants are the pass-through dialects used by coding agents
/// (Claude Code, Codex, Gemini CLI); they carry the same payloads as their parents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ApiFormat {
    /// Anthropic Messages, `x-api-key` auth.
    Claude,
    /// Anthropic Messages as Claude Code sends it, bearer auth.
    ClaudeCli,
    /// OpenAI Chat Completions.
    #[serde(rename = "OPENAI")]
    OpenAi,
    /// OpenAI Responses (Codex).
    #[serde(rename = "OPENAI_CLI")]
    OpenAiCli,
    /// Google Gemini generateContent.
    Gemini,
    /// Gemini as the Gemini CLI sends it.
    GeminiCli,
}

impl ApiFormat {
    /// Every format, in a stable order.
    pub const ALL: [ApiFormat; 6] = [
        ApiFormat::Claude,
        ApiFormat::ClaudeCli,
        ApiFormat::OpenAi,
        ApiFormat::OpenAiCli,
        ApiFormat::Gemini,
        ApiFormat::GeminiCli,
    ];

    /// The canonical upper-case name stored in the database and shown in the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiFormat::Claude => "CLAUDE",
            ApiFormat::ClaudeCli => "CLAUDE_CLI",
            ApiFormat::OpenAi => "OPENAI",
            ApiFormat::OpenAiCli => "OPENAI_CLI",
            ApiFormat::Gemini => "GEMINI",
            ApiFormat::GeminiCli => "GEMINI_CLI",
        }
    }

    /// Whether both formats carry the same payloads (a format and its "CLI" variant): a request
    /// of one can be sent to an endpoint of the other unchanged.
    pub fn same_payloads(self, other: ApiFormat) -> bool {
        use ApiFormat::{Claude, ClaudeCli, Gemini, GeminiCli, OpenAi, OpenAiCli};
        matches!(
            (self, other),
            (Claude | ClaudeCli, Claude | ClaudeCli)
                | (Gemini | GeminiCli, Gemini | GeminiCli)
                | (OpenAi, OpenAi)
                | (OpenAiCli, OpenAiCli)
        )
    }

    /// The path an upstream of this format serves by default; `{model}` and `{action}` are
    /// placeholders filled per request.
    pub fn default_upstream_path(self) -> &'static str {
        match self {
            ApiFormat::Claude | ApiFormat::ClaudeCli => "/v1/messages",
            ApiFormat::OpenAi => "/v1/chat/completions",
            ApiFormat::OpenAiCli => "/v1/responses",
            ApiFormat::Gemini | ApiFormat::GeminiCli => "/v1beta/models/{model}:{action}",
        }
    }
}

impl fmt::Display for ApiFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A format name that is neither canonical nor a known alias.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown API format `{0}`; expected one of CLAUDE, CLAUDE_CLI, OPENAI, OPENAI_CLI, GEMINI, GEMINI_CLI"
)]
pub struct UnknownFormat(pub String);

impl FromStr for ApiFormat {
    type Err = UnknownFormat;

    /// Case-insensitive, with the aliases operators actually type. Unlike the reference, an
    /// unknown name is an error rather than a silent fall-back to CLAUDE.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase().replace('-', "_");
        let format = match lower.as_str() {
            "claude" | "anthropic" => ApiFormat::Claude,
            "claude_cli" | "claude_code" => ApiFormat::ClaudeCli,
            "openai" | "openai_chat" | "chat_completions" | "deepseek" | "qwen" => {
                ApiFormat::OpenAi
            }
            "openai_cli" | "responses" | "openai_responses" | "codex" => ApiFormat::OpenAiCli,
            "gemini" | "google" | "vertex" => ApiFormat::Gemini,
            "gemini_cli" => ApiFormat::GeminiCli,
            _ => return Err(UnknownFormat(s.to_owned())),
        };
        Ok(format)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_names_round_trip() {
        for format in ApiFormat::ALL {
            assert_eq!(format.as_str().parse::<ApiFormat>(), Ok(format));
            let json = serde_json::to_string(&format).expect("serialises");
            assert_eq!(json, format!("\"{}\"", format.as_str()));
        }
    }

    #[test]
    fn aliases_are_case_insensitive_and_unknown_is_an_error() {
        assert_eq!("Anthropic".parse(), Ok(ApiFormat::Claude));
        assert_eq!("responses".parse(), Ok(ApiFormat::OpenAiCli));
        assert_eq!("gemini-cli".parse(), Ok(ApiFormat::GeminiCli));
        assert!("mistral-native".parse::<ApiFormat>().is_err());
    }
}
