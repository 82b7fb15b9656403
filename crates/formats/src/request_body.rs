//! A client's request body kept as the bytes it arrived in, with where each top-level member's
//! value lies in them.
//!
//! The gateway reads a handful of fields of a request (the model, the stream flags, a session
//! id) and forwards the rest untouched. Parsing the whole body into a `serde_json` tree and
//! writing the tree out again for the upstream cost an allocation per string, object and array
//! — thousands for a coding agent's conversation — and twice a pass over every byte. Here the
//! body is scanned once (checked to be one JSON object, no tree built), the fields the gateway
//! reads are parsed on their own, and a body for an upstream of the same dialect is the
//! received members copied as they are, with the gateway's overrides in place. A request that
//! must be converted to another dialect builds the tree then ([`RequestBody::to_map`]).
//!
//! A member given twice keeps the position of its first occurrence and the value of its last,
//! as parsing into a map would.

use bytes::Bytes;
use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::ops::Range;

use crate::dialect::RequestError;
use crate::shape::JsonStr;

/// A JSON object body, as received, with the place of each top-level member.
#[derive(Clone, PartialEq)]
pub struct RequestBody {
    raw: Bytes,
    members: Vec<Member>,
}

/// One top-level member: its name and where its value's text lies in the body.
#[derive(Debug, Clone, PartialEq)]
struct Member {
    key: Key,
    value: Range<usize>,
}

/// A member's name: where it lies in the body (between the quotes, no escapes in it), or, when
/// it was written with escapes, the name itself.
#[derive(Debug, Clone, PartialEq)]
enum Key {
    At(Range<usize>),
    Unescaped(Box<str>),
}

impl RequestBody {
    /// Checks that `raw` is one JSON object and notes where its members lie.
    ///
    /// # Errors
    /// With an empty field: the parser's message (with line and column) for a body that is not
    /// JSON, or "the request body must be a JSON object".
    pub fn parse(raw: Bytes) -> Result<Self, RequestError> {
        let members = match scan(&raw) {
            Ok(members) => members,
            Err(scan_error) => return Err(refusal(&raw, &scan_error)),
        };
        Ok(Self { raw, members })
    }

    /// An empty object (`{}`).
    #[must_use]
    pub fn empty() -> Self {
        Self {
            raw: Bytes::from_static(b"{}"),
            members: Vec::new(),
        }
    }

    /// The body as received.
    #[must_use]
    pub fn bytes(&self) -> &Bytes {
        &self.raw
    }

    /// How many distinct top-level members the body has.
    #[must_use]
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the body is `{}`.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Whether the body has a member named `key`.
    #[must_use]
    pub fn contains_key(&self, key: &str) -> bool {
        self.find(key).is_some()
    }

    /// The JSON text of member `key`'s value, as received.
    #[must_use]
    pub fn raw(&self, key: &str) -> Option<&str> {
        self.find(key).map(|member| self.text(&member.value))
    }

    /// The bytes of member `key`'s value, as received: for parsing a large value without
    /// first checking all of it is UTF-8 again (the parser checks what it borrows).
    #[must_use]
    pub fn raw_bytes(&self, key: &str) -> Option<&[u8]> {
        self.find(key).map(|member| &self.raw[member.value.clone()])
    }

    /// Member `key`'s value, parsed on its own: `None` when the member is absent, an error when
    /// it does not have the shape of `T`. Borrowing types (`&str`, `Cow<str>`, `&RawValue`)
    /// borrow from the body.
    #[must_use]
    pub fn get<'a, T: Deserialize<'a>>(&'a self, key: &str) -> Option<serde_json::Result<T>> {
        self.raw(key).map(serde_json::from_str)
    }

    /// The members in order: name and the JSON text of the value.
    pub fn members(&self) -> impl Iterator<Item = (&str, &str)> {
        self.members
            .iter()
            .map(|member| (self.name(&member.key), self.text(&member.value)))
    }

    /// The whole body as a `serde_json` map, for the conversion codecs.
    ///
    /// # Errors
    /// A value the scan accepted but a tree cannot hold (a number beyond `f64`, `1e400`).
    pub fn to_map(&self) -> serde_json::Result<Map<String, Value>> {
        serde_json::from_slice(&self.raw)
    }

    /// The body written out member by member: each value as received, or the text `replace`
    /// gives for its member's name; then `append`'s members, each a name and a value's JSON
    /// text. Names are written as received.
    #[must_use]
    pub fn rewrite<'r, 'a>(
        &self,
        replace: impl Fn(&str) -> Option<&'r [u8]>,
        append: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> Bytes {
        let mut out = Vec::with_capacity(self.raw.len() + 64);
        out.push(b'{');
        let mut first = true;
        let mut separate = |out: &mut Vec<u8>| {
            if !std::mem::take(&mut first) {
                out.push(b',');
            }
        };
        for member in &self.members {
            separate(&mut out);
            write_name(&mut out, &self.raw, &member.key);
            out.push(b':');
            match replace(self.name(&member.key)) {
                Some(value) => out.extend_from_slice(value),
                None => out.extend_from_slice(&self.raw[member.value.clone()]),
            }
        }
        for (name, value) in append {
            separate(&mut out);
            write_json_string(&mut out, name);
            out.push(b':');
            out.extend_from_slice(value);
        }
        out.push(b'}');
        Bytes::from(out)
    }

    fn find(&self, key: &str) -> Option<&Member> {
        self.members
            .iter()
            .find(|member| self.name(&member.key) == key)
    }

    fn name<'a>(&'a self, key: &'a Key) -> &'a str {
        match key {
            Key::At(range) => self.text(range),
            Key::Unescaped(name) => name,
        }
    }

    fn text(&self, range: &Range<usize>) -> &str {
        // Ranges are those of strings the scan borrowed from the body: valid UTF-8 on char
        // boundaries.
        std::str::from_utf8(&self.raw[range.clone()]).unwrap_or_default()
    }
}

impl fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.members()).finish()
    }
}

impl From<Map<String, Value>> for RequestBody {
    /// A body written from a map (requests built by code, tests).
    fn from(map: Map<String, Value>) -> Self {
        let raw = Bytes::from(serde_json::to_vec(&map).unwrap_or_else(|_| b"{}".to_vec()));
        Self::parse(raw).unwrap_or_else(|_| Self::empty())
    }
}

/// Appends `name` as a JSON string.
fn write_json_string(out: &mut Vec<u8>, name: &str) {
    // Serialising a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, name);
}

/// The bytes of a member's name as the program sees it (escapes resolved).
fn name_in<'a>(raw: &'a [u8], key: &'a Key) -> &'a [u8] {
    match key {
        Key::At(range) => &raw[range.clone()],
        Key::Unescaped(name) => name.as_bytes(),
    }
}

fn write_name(out: &mut Vec<u8>, raw: &[u8], key: &Key) {
    match key {
        Key::At(range) => {
            out.push(b'"');
            out.extend_from_slice(&raw[range.clone()]);
            out.push(b'"');
        }
        Key::Unescaped(name) => write_json_string(out, name),
    }
}

/// The members of the object `raw` holds, or why it does not hold one.
fn scan(raw: &[u8]) -> serde_json::Result<Vec<Member>> {
    let mut deserializer = serde_json::Deserializer::from_slice(raw);
    let members = deserializer.deserialize_map(MembersVisitor { base: raw })?;
    deserializer.end()?;
    Ok(members)
}

/// The error for a body [`scan`] refused: the parser's own message when it is not JSON at all
/// (which the scan's message for a non-object would hide), else that it is not an object.
fn refusal(raw: &[u8], scan_error: &serde_json::Error) -> RequestError {
    match serde_json::from_slice::<IgnoredAny>(raw) {
        Err(not_json) => RequestError::new("", not_json.to_string()),
        Ok(_) if scan_error.is_data() => {
            RequestError::new("", "the request body must be a JSON object")
        }
        Ok(_) => RequestError::new("", scan_error.to_string()),
    }
}

/// Members looked up by a linear search while a body has no more than this many.
const LINEAR_MEMBERS: usize = 16;

struct MembersVisitor<'a> {
    base: &'a [u8],
}

impl MembersVisitor<'_> {
    /// Where `part`, a slice of the body, lies in it.
    fn range_of(&self, part: &str) -> Range<usize> {
        let start = part.as_ptr() as usize - self.base.as_ptr() as usize;
        start..start + part.len()
    }
}

impl<'de> Visitor<'de> for MembersVisitor<'de> {
    type Value = Vec<Member>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
        let mut members: Vec<Member> = Vec::new();
        // Past a few members, names are found again through a map, so that a body of many
        // thousand members costs linear time, not quadratic (SipHash: the names are the
        // client's).
        let mut seen: Option<HashMap<Box<[u8]>, usize>> = None;
        while let Some(JsonStr(name)) = map.next_key::<JsonStr<'de>>()? {
            let value: &'de RawValue = map.next_value()?;
            let value = self.range_of(value.get());
            let key = match name {
                Cow::Borrowed(name) => Key::At(self.range_of(name)),
                Cow::Owned(name) => Key::Unescaped(name.into_boxed_str()),
            };
            let name = name_in(self.base, &key);
            let earlier = match &seen {
                Some(seen) => seen.get(name).copied(),
                None => members
                    .iter()
                    .position(|other| name_in(self.base, &other.key) == name),
            };
            match earlier {
                Some(i) => members[i].value = value,
                None => {
                    if let Some(seen) = &mut seen {
                        seen.insert(name.into(), members.len());
                    }
                    members.push(Member { key, value });
                    if seen.is_none() && members.len() > LINEAR_MEMBERS {
                        seen = Some(
                            members
                                .iter()
                                .enumerate()
                                .map(|(i, m)| (name_in(self.base, &m.key).into(), i))
                                .collect(),
                        );
                    }
                }
            }
        }
        Ok(members)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(text: &str) -> RequestBody {
        RequestBody::parse(Bytes::copy_from_slice(text.as_bytes())).expect("an object")
    }

    #[test]
    fn members_are_found_in_order_with_their_text_as_received() {
        let body = parse(
            r#" {"model": "gpt-4o", "messages":[{"role":"user","content":"hi"}],
                "temperature": 0.70, "n": 12345678901234567890123} "#,
        );
        assert_eq!(body.len(), 4);
        assert_eq!(body.raw("model"), Some(r#""gpt-4o""#));
        assert_eq!(body.raw("temperature"), Some("0.70"));
        assert_eq!(body.raw("n"), Some("12345678901234567890123"));
        assert_eq!(body.raw("missing"), None);
        assert_eq!(
            body.members().map(|(name, _)| name).collect::<Vec<_>>(),
            ["model", "messages", "temperature", "n"]
        );
        let model: Option<serde_json::Result<&str>> = body.get("model");
        assert_eq!(model.map(Result::ok), Some(Some("gpt-4o")));
        assert!(body.get::<bool>("model").is_some_and(|r| r.is_err()));
    }

    #[test]
    fn a_rewrite_keeps_every_other_byte_of_each_value() {
        let body = parse(
            r#"{"model":"a","temperature":0.10,"big":1e400,"messages":[{"role":"user","content":"caf\u00e9 \"q\""}]}"#,
        );
        let out = body.rewrite(
            |name| (name == "model").then_some(&br#""b""#[..]),
            [("stream_options", &br#"{"include_usage":true}"#[..])],
        );
        assert_eq!(
            std::str::from_utf8(&out).expect("utf-8"),
            r#"{"model":"b","temperature":0.10,"big":1e400,"messages":[{"role":"user","content":"caf\u00e9 \"q\""}],"stream_options":{"include_usage":true}}"#
        );
    }

    #[test]
    fn a_name_given_twice_keeps_its_first_place_and_last_value() {
        let body = parse(r#"{"a":1,"b":2,"a":3,"\u0062":4}"#);
        assert_eq!(body.len(), 2);
        assert_eq!(body.raw("a"), Some("3"));
        assert_eq!(body.raw("b"), Some("4"));
        assert_eq!(
            serde_json::from_slice::<Value>(&body.rewrite(|_| None, [])).expect("JSON"),
            json!({"a": 3, "b": 4})
        );
    }

    #[test]
    fn many_members_are_scanned_in_linear_time_and_duplicates_still_collapse() {
        // 200,000 members, every name twice: quadratic matching would not finish here.
        let names = 100_000;
        let mut text = String::from("{");
        for round in 0..2 {
            for i in 0..names {
                text.push_str(&format!("\"m{i}\":{round},"));
            }
        }
        text.push_str("\"model\":\"x\"}");
        let body = parse(&text);
        assert_eq!(body.len(), names + 1);
        assert_eq!(body.raw("m0"), Some("1"));
        assert_eq!(body.raw("m99999"), Some("1"));
        assert_eq!(body.members().next(), Some(("m0", "1")));
    }

    #[test]
    fn escaped_names_are_found_and_written_back_escaped() {
        let body = parse(r#"{"mo\u0064el":"x","quo\"te":1}"#);
        assert_eq!(body.raw("model"), Some(r#""x""#));
        assert_eq!(body.raw("quo\"te"), Some("1"));
        let rewritten: Value = serde_json::from_slice(&body.rewrite(|_| None, [])).expect("JSON");
        assert_eq!(rewritten, json!({"model": "x", "quo\"te": 1}));
    }

    #[test]
    fn the_map_is_the_whole_body() {
        let text = r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"x"}]}],"x":{"deep":[1,2,3]}}"#;
        let expected: Value = serde_json::from_str(text).expect("JSON");
        let map = parse(text).to_map().expect("a tree");
        assert_eq!(Value::Object(map.clone()), expected);
        let built = RequestBody::from(map);
        assert_eq!(Value::Object(built.to_map().expect("a tree")), expected);
        assert_eq!(RequestBody::empty().to_map().expect("a tree"), Map::new());
        // Forwarded as received, but no tree holds it.
        assert!(parse(r#"{"n":1e400}"#).to_map().is_err());
    }

    #[test]
    fn what_is_not_one_json_object_is_refused_as_before() {
        let refused = |text: &str| {
            RequestBody::parse(Bytes::copy_from_slice(text.as_bytes()))
                .expect_err("refused")
                .message
        };
        for not_json in ["", "{", r#"{"a":}"#, r#"{"a":1} x"#, "nul", "\u{feff}{}"] {
            let expected = serde_json::from_str::<Value>(not_json)
                .expect_err("not JSON")
                .to_string();
            assert_eq!(refused(not_json), expected, "{not_json:?}");
            assert!(expected.contains("line 1 column"), "{expected}");
        }
        for not_object in ["[]", "[{}]", r#""text""#, "12", "null", "true"] {
            assert_eq!(
                refused(not_object),
                "the request body must be a JSON object",
                "{not_object:?}"
            );
        }
    }
}
