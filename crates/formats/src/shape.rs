//! The shape of a JSON value, read without building it: whether it is null, empty or says
//! something. Hot paths that only need that (classifying stream chunks) skip the allocations of
//! a `serde_json::Value` tree this way.

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;

/// What a JSON value is, without its contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// `null`.
    Null,
    /// A string.
    Text {
        /// It is `""`.
        empty: bool,
    },
    /// An array.
    List {
        /// It has no element.
        empty: bool,
    },
    /// An object.
    Object {
        /// It has no field.
        empty: bool,
        /// One of its values says something (see [`Shape::says_something`]).
        any_says: bool,
    },
    /// A boolean or a number.
    Scalar,
}

impl Shape {
    /// Null, `""` and empty containers say nothing; anything else does.
    pub(crate) fn says_something(self) -> bool {
        match self {
            Shape::Null => false,
            Shape::Text { empty } | Shape::List { empty } | Shape::Object { empty, .. } => !empty,
            Shape::Scalar => true,
        }
    }
}

impl<'de> Deserialize<'de> for Shape {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ShapeVisitor)
    }
}

struct ShapeVisitor;

impl<'de> Visitor<'de> for ShapeVisitor {
    type Value = Shape;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Shape, E> {
        Ok(Shape::Null)
    }

    fn visit_none<E>(self) -> Result<Shape, E> {
        Ok(Shape::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Shape, D::Error> {
        Shape::deserialize(deserializer)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Shape, E> {
        Ok(Shape::Scalar)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Shape, E> {
        Ok(Shape::Scalar)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Shape, E> {
        Ok(Shape::Scalar)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Shape, E> {
        Ok(Shape::Scalar)
    }

    fn visit_str<E>(self, text: &str) -> Result<Shape, E> {
        Ok(Shape::Text {
            empty: text.is_empty(),
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
        let mut empty = true;
        while seq.next_element::<IgnoredAny>()?.is_some() {
            empty = false;
        }
        Ok(Shape::List { empty })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shape, A::Error> {
        let mut empty = true;
        let mut any_says = false;
        while let Some((_, value)) = map.next_entry::<IgnoredAny, Shape>()? {
            empty = false;
            any_says |= value.says_something();
        }
        Ok(Shape::Object { empty, any_says })
    }
}

/// A JSON string, borrowed from the input unless it holds escapes. (serde's own `Cow<str>`
/// always allocates: it borrows only for a struct field of exactly that type marked `borrow`,
/// not inside an `Option` nor as a map key.)
pub(crate) struct JsonStr<'a>(pub(crate) Cow<'a, str>);

impl JsonStr<'_> {
    /// The string.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for JsonStr<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StrVisitor<'a>(std::marker::PhantomData<&'a ()>);

        impl<'de: 'a, 'a> Visitor<'de> for StrVisitor<'a> {
            type Value = JsonStr<'a>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Self::Value, E> {
                Ok(JsonStr(Cow::Borrowed(text)))
            }

            fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
                Ok(JsonStr(Cow::Owned(text.to_owned())))
            }

            fn visit_string<E>(self, text: String) -> Result<Self::Value, E> {
                Ok(JsonStr(Cow::Owned(text)))
            }
        }

        deserializer.deserialize_str(StrVisitor(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::Shape;

    fn shape(json: &str) -> Shape {
        serde_json::from_str(json).expect("valid JSON")
    }

    #[test]
    fn shapes_tell_empty_values_from_ones_that_say_something() {
        assert_eq!(shape("null"), Shape::Null);
        assert_eq!(shape(r#""""#), Shape::Text { empty: true });
        assert_eq!(shape(r#""a\"b""#), Shape::Text { empty: false });
        assert_eq!(shape("[]"), Shape::List { empty: true });
        assert_eq!(shape("[null]"), Shape::List { empty: false });
        assert_eq!(shape("0"), Shape::Scalar);
        assert_eq!(shape("-1.5e3"), Shape::Scalar);
        assert_eq!(shape("false"), Shape::Scalar);
        assert_eq!(
            shape("{}"),
            Shape::Object {
                empty: true,
                any_says: false
            }
        );
        assert_eq!(
            shape(r#"{"role":"assistant","content":""}"#),
            Shape::Object {
                empty: false,
                any_says: true
            }
        );
        assert_eq!(
            shape(r#"{"content":"","tool_calls":[],"refusal":null}"#),
            Shape::Object {
                empty: false,
                any_says: false
            }
        );
        for nothing in ["null", r#""""#, "[]", "{}"] {
            assert!(!shape(nothing).says_something(), "{nothing}");
        }
        for something in ["0", "false", r#"" ""#, "[0]", r#"{"a":null}"#] {
            assert!(shape(something).says_something(), "{something}");
        }
    }
}
