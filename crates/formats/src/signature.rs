//! Thinking signatures carried through clients of another dialect.
//!
//! A thinking signature is only meaningful to the provider that issued it: Anthropic rejects a
//! foreign one ("Invalid signature in thinking block"), Gemini too ("Corrupted thought
//! signature"), and OpenAI cannot decrypt another provider's reasoning. The neutral model
//! records the issuer in [`crate::ir::Thinking::source`], but a client only holds what the
//! gateway wrote into its answer and hands it back on its next turn. So when an answer (whole
//! or streamed) carries a signature issued by a provider of another dialect than the client's,
//! the encoder writes it marked with its issuer, `swy1.<tag>.<original>` (tags: `chat`,
//! `responses`, `messages`, `gemini`), with [`wrap`]. When the client sends it back, the
//! decoder reads it with [`unwrap`], which gives back the issuer and the original signature,
//! so a request encoder sends a signature only to the provider that issued it (and drops it
//! for any other). A signature of the client's own dialect is written as it came, unmarked: a
//! client talking to its own provider sees nothing unusual.
//!
//! Gemini clients hold `thoughtSignature` as base64 bytes (the google-genai SDK decodes it), so
//! the Gemini codec writes the marked form base64-encoded and recognises it on the way back.

use crate::dialect::Dialect;
use crate::ir::{Delta, Thinking};

/// The marker's prefix (`swy1.`), versioned so another scheme can be told apart later.
const MARKER: &str = "swy1.";

/// The tag of a dialect in the marker.
fn tag(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Chat => "chat",
        Dialect::Responses => "responses",
        Dialect::Messages => "messages",
        Dialect::Gemini => "gemini",
    }
}

fn from_tag(tag: &str) -> Option<Dialect> {
    Dialect::ALL
        .into_iter()
        .find(|dialect| self::tag(*dialect) == tag)
}

/// `signature`, issued by a provider of `source`, marked for a client of another dialect:
/// `swy1.<tag>.<signature>`.
#[must_use]
pub fn wrap(source: Dialect, signature: &str) -> String {
    format!("{MARKER}{}.{signature}", tag(source))
}

/// A signature as written for a client of `own` dialect, or written by its provider: a marked
/// one gives its issuer and the original; anything else (a malformed marker included) is taken
/// as it is, issued by `own`.
#[must_use]
pub fn unwrap(raw: &str, own: Dialect) -> (Option<Dialect>, String) {
    let marked = raw.strip_prefix(MARKER).and_then(|rest| {
        let (tag, original) = rest.split_once('.')?;
        Some((from_tag(tag)?, original)).filter(|(_, original)| !original.is_empty())
    });
    match marked {
        Some((source, original)) => (Some(source), original.to_owned()),
        None => (Some(own), raw.to_owned()),
    }
}

/// The signature to write into an answer for a client of `client` dialect: marked with its
/// issuer when that is another dialect (see the module documentation), as it is otherwise
/// (issuer unknown included: there is nothing to mark it with).
#[must_use]
pub fn for_client(source: Option<Dialect>, signature: &str, client: Dialect) -> String {
    match source {
        Some(source) if source != client => wrap(source, signature),
        _ => signature.to_owned(),
    }
}

/// The signature to send to an upstream of dialect `upstream`: only one its provider issued.
#[must_use]
pub fn for_upstream(
    source: Option<Dialect>,
    signature: Option<&str>,
    upstream: Dialect,
) -> Option<&str> {
    signature.filter(|_| source == Some(upstream))
}

/// The signature delta of a raw signature read by a decoder of `own` dialect (see [`unwrap`]).
#[must_use]
pub fn delta(raw: &str, own: Dialect) -> Delta {
    let (source, signature) = unwrap(raw, own);
    Delta::ThinkingSignature { source, signature }
}

/// The thinking block of a decoder of `own` dialect: its signature read with [`unwrap`], the
/// source unknown without one.
#[must_use]
pub fn thinking(text: String, raw: Option<&str>, own: Dialect) -> Thinking {
    let (source, signature) = match raw.map(|raw| unwrap(raw, own)) {
        Some((source, signature)) => (source, Some(signature)),
        None => (None, None),
    };
    Thinking {
        text,
        signature,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_and_unwrap_round_trip_for_every_dialect() {
        for source in Dialect::ALL {
            for own in Dialect::ALL {
                let wrapped = wrap(source, "EqQB.Cg+/=");
                assert_eq!(unwrap(&wrapped, own), (Some(source), "EqQB.Cg+/=".into()));
            }
        }
    }

    #[test]
    fn foreign_markers_name_their_issuer() {
        assert_eq!(wrap(Dialect::Messages, "EqQB"), "swy1.messages.EqQB");
        assert_eq!(
            unwrap("swy1.messages.EqQB", Dialect::Responses),
            (Some(Dialect::Messages), "EqQB".into())
        );
        assert_eq!(
            unwrap("swy1.responses.gAAAAABsealed", Dialect::Gemini),
            (Some(Dialect::Responses), "gAAAAABsealed".into())
        );
        assert_eq!(
            unwrap("swy1.gemini.CiQB-_==", Dialect::Messages),
            (Some(Dialect::Gemini), "CiQB-_==".into())
        );
    }

    #[test]
    fn unmarked_and_garbage_markers_are_the_clients_own() {
        for raw in [
            "EqQBCgIYAh",
            "gAAAAABsealed",
            "swy1.",
            "swy1.messages",
            "swy1.messages.",
            "swy1.openai.EqQB",
            "swy2.messages.EqQB",
            "SWY1.messages.EqQB",
            "xswy1.messages.EqQB",
        ] {
            assert_eq!(
                unwrap(raw, Dialect::Gemini),
                (Some(Dialect::Gemini), raw.to_owned()),
                "{raw}"
            );
        }
    }

    #[test]
    fn answers_mark_only_foreign_signatures_and_requests_send_only_own() {
        assert_eq!(
            for_client(Some(Dialect::Messages), "s", Dialect::Messages),
            "s"
        );
        assert_eq!(
            for_client(Some(Dialect::Messages), "s", Dialect::Gemini),
            "swy1.messages.s"
        );
        assert_eq!(for_client(None, "s", Dialect::Gemini), "s");
        assert_eq!(
            for_upstream(Some(Dialect::Gemini), Some("s"), Dialect::Gemini),
            Some("s")
        );
        assert_eq!(
            for_upstream(Some(Dialect::Messages), Some("s"), Dialect::Gemini),
            None
        );
        assert_eq!(for_upstream(None, Some("s"), Dialect::Gemini), None);
    }
}
