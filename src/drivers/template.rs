//! Command templates: `{name}` is replaced by the parameter `name`, `{{` and `}}` are literal
//! braces. A template is parsed once, when its profile is validated, so a typo in a placeholder
//! is a profile error rather than a failure in the middle of a measurement.

use std::collections::BTreeMap;
use std::fmt;

/// A parsed command template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Param(String),
}

/// Why a template cannot be parsed or rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A `{` without its `}`.
    #[error("`{{` at byte {position} is not closed (write `{{{{` for a literal brace)")]
    Unclosed {
        /// Byte offset of the `{`.
        position: usize,
    },
    /// A `}` without a `{` before it.
    #[error("`}}` at byte {position} has no opening `{{` (write `}}}}` for a literal brace)")]
    Unopened {
        /// Byte offset of the `}`.
        position: usize,
    },
    /// The text between the braces is not a parameter name.
    #[error(
        "`{{{name}}}` at byte {position} is not a parameter name (letters, digits and `_`, not starting with a digit)"
    )]
    BadName {
        /// Byte offset of the `{`.
        position: usize,
        /// The text between the braces.
        name: String,
    },
    /// Rendering needs a parameter that was not given.
    #[error("no value for parameter `{name}`")]
    Missing {
        /// The parameter.
        name: String,
    },
    /// A parameter value would split the command into several lines (or smuggle in another
    /// command after the terminator).
    #[error("value of parameter `{name}` contains a line break")]
    LineBreak {
        /// The parameter.
        name: String,
    },
}

impl Template {
    /// Parses a template.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = text.char_indices().peekable();
        while let Some((position, c)) = chars.next() {
            match c {
                '{' if chars.next_if(|&(_, n)| n == '{').is_some() => literal.push('{'),
                '}' if chars.next_if(|&(_, n)| n == '}').is_some() => literal.push('}'),
                '{' => {
                    let mut name = String::new();
                    let mut closed = false;
                    for (_, n) in chars.by_ref() {
                        if n == '}' {
                            closed = true;
                            break;
                        }
                        name.push(n);
                    }
                    if !closed {
                        return Err(TemplateError::Unclosed { position });
                    }
                    if !is_param_name(&name) {
                        return Err(TemplateError::BadName { position, name });
                    }
                    if !literal.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut literal)));
                    }
                    parts.push(Part::Param(name));
                }
                '}' => return Err(TemplateError::Unopened { position }),
                other => literal.push(other),
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(Template {
            source: text.to_owned(),
            parts,
        })
    }

    /// A template that renders exactly `text` (braces doubled).
    pub fn literal(text: &str) -> Template {
        Template {
            source: escape(text),
            parts: if text.is_empty() {
                Vec::new()
            } else {
                vec![Part::Text(text.to_owned())]
            },
        }
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The parameter names it refers to, in order of appearance (repeats included).
    pub fn placeholders(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|part| match part {
            Part::Param(name) => Some(name.as_str()),
            Part::Text(_) => None,
        })
    }

    /// Fills in the placeholders. Values must not contain CR or LF: the transport appends the
    /// terminator, and a line break inside a value would send a second, unintended command.
    pub fn render(&self, params: &BTreeMap<String, String>) -> Result<String, TemplateError> {
        let mut out = String::with_capacity(self.source.len());
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Param(name) => {
                    let value = params
                        .get(name)
                        .ok_or_else(|| TemplateError::Missing { name: name.clone() })?;
                    if value.contains(['\r', '\n']) {
                        return Err(TemplateError::LineBreak { name: name.clone() });
                    }
                    out.push_str(value);
                }
            }
        }
        Ok(out)
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// Doubles every brace so the text reads literally as a template.
pub fn escape(text: &str) -> String {
    text.replace('{', "{{").replace('}', "}}")
}

/// Parameter names: ASCII letters, digits and `_`, not starting with a digit.
pub fn is_param_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn renders_placeholders_and_braces() {
        let cases = [
            ("OUT {value} {unit}, {frequency} Hz", "OUT 10 V, 0 Hz"),
            ("CONF:VOLT:DC {value}", "CONF:VOLT:DC 10"),
            ("{{literal}} {unit}", "{literal} V"),
            ("}}{{", "}{"),
            ("{value}{value}", "1010"),
            ("", ""),
            ("NO PARAMS", "NO PARAMS"),
        ];
        let p = params(&[("value", "10"), ("unit", "V"), ("frequency", "0")]);
        for (text, expected) in cases {
            let t = Template::parse(text).unwrap();
            assert_eq!(t.render(&p).unwrap(), expected, "{text:?}");
            assert_eq!(t.as_str(), text);
            assert_eq!(t.to_string(), text);
        }
        let t = Template::parse("OUT {value} {unit}, {value}").unwrap();
        assert_eq!(
            t.placeholders().collect::<Vec<_>>(),
            ["value", "unit", "value"]
        );
    }

    #[test]
    fn parse_errors() {
        let cases = [
            ("OUT {value", TemplateError::Unclosed { position: 4 }),
            ("OUT value}", TemplateError::Unopened { position: 9 }),
            (
                "OUT {}",
                TemplateError::BadName {
                    position: 4,
                    name: String::new(),
                },
            ),
            (
                "OUT {1x}",
                TemplateError::BadName {
                    position: 4,
                    name: "1x".into(),
                },
            ),
            (
                "OUT {a b}",
                TemplateError::BadName {
                    position: 4,
                    name: "a b".into(),
                },
            ),
            (
                "{a{b}",
                TemplateError::BadName {
                    position: 0,
                    name: "a{b".into(),
                },
            ),
            ("{{{", TemplateError::Unclosed { position: 2 }),
        ];
        for (text, expected) in cases {
            assert_eq!(Template::parse(text).unwrap_err(), expected, "{text:?}");
        }
        assert_eq!(
            Template::parse("x}").unwrap_err().to_string(),
            "`}` at byte 1 has no opening `{` (write `}}` for a literal brace)"
        );
    }

    #[test]
    fn render_errors() {
        let t = Template::parse("OUT {value} {unit}").unwrap();
        assert_eq!(
            t.render(&params(&[("value", "1")])).unwrap_err(),
            TemplateError::Missing {
                name: "unit".into()
            }
        );
        assert_eq!(
            t.render(&params(&[("value", "1\n*RST"), ("unit", "V")]))
                .unwrap_err(),
            TemplateError::LineBreak {
                name: "value".into()
            }
        );
    }

    #[test]
    fn literal_templates() {
        for text in ["", "a{b}c", "{{", "PLAIN"] {
            let t = Template::literal(text);
            assert_eq!(t.render(&BTreeMap::new()).unwrap(), text);
            assert_eq!(Template::parse(t.as_str()).unwrap(), t);
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics(text in any::<String>()) {
            if let Ok(t) = Template::parse(&text) {
                let p: BTreeMap<String, String> =
                    t.placeholders().map(|n| (n.to_owned(), "x".to_owned())).collect();
                prop_assert!(t.render(&p).is_ok());
                prop_assert_eq!(t.as_str(), text.as_str());
            }
        }

        #[test]
        fn escaped_text_round_trips(text in any::<String>()) {
            let t = Template::parse(&escape(&text)).unwrap();
            prop_assert_eq!(t.placeholders().count(), 0);
            prop_assert_eq!(t.render(&BTreeMap::new()).unwrap(), text);
        }

        #[test]
        fn placeholders_round_trip(
            pieces in proptest::collection::vec(("[^\r\n]{0,8}", "[a-z_][a-z0-9_]{0,6}"), 0..5),
            value in "[^\r\n]{0,8}",
        ) {
            let mut source = String::new();
            let mut expected = String::new();
            for (text, name) in &pieces {
                source.push_str(&escape(text));
                source.push('{');
                source.push_str(name);
                source.push('}');
                expected.push_str(text);
                expected.push_str(&value);
            }
            let t = Template::parse(&source).unwrap();
            let p: BTreeMap<String, String> =
                pieces.iter().map(|(_, n)| (n.clone(), value.clone())).collect();
            prop_assert_eq!(t.render(&p).unwrap(), expected);
            let names: Vec<&str> = pieces.iter().map(|(_, n)| n.as_str()).collect();
            prop_assert_eq!(t.placeholders().collect::<Vec<_>>(), names);
        }
    }
}
