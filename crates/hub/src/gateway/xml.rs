//! A small element tree over quick-xml, bounded in size and depth, for the
//! UPnP description and SOAP answers (a few kilobytes each).

use quick_xml::events::Event;

use super::GatewayError;

/// Longest document accepted (a FRITZ!Box description is ~10 KiB).
pub const MAX_BYTES: usize = 256 * 1024;
const MAX_DEPTH: usize = 32;
const MAX_ELEMENTS: usize = 4096;

/// One element: its local name (namespace prefix dropped), its own text and
/// its children.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Element {
    pub name: String,
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    /// The first child called `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The trimmed text of the first child called `name`.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.trim())
    }

    /// Every element below this one, depth first.
    pub fn descendants(&self) -> Vec<&Element> {
        let mut out = Vec::new();
        let mut stack: Vec<&Element> = self.children.iter().rev().collect();
        while let Some(e) = stack.pop() {
            out.push(e);
            stack.extend(e.children.iter().rev());
        }
        out
    }

    /// The first element below this one called `name`.
    pub fn find(&self, name: &str) -> Option<&Element> {
        self.descendants().into_iter().find(|e| e.name == name)
    }
}

fn local(name: &str) -> String {
    name.rsplit(':').next().unwrap_or(name).to_string()
}

/// Parses `text` into its root element.
pub fn parse(text: &str) -> Result<Element, GatewayError> {
    if text.len() > MAX_BYTES {
        return Err(GatewayError::TooLarge(MAX_BYTES));
    }
    let bad = |m: String| GatewayError::BadXml(m);
    let mut reader = quick_xml::Reader::from_str(text);
    reader.config_mut().trim_text(false);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut count = 0usize;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| bad(format!("at byte {}: {e}", reader.error_position())))?;
        match event {
            Event::Start(_) | Event::Empty(_) if root.is_some() => {
                return Err(bad("content after the root element".into()));
            }
            Event::Start(e) => {
                count += 1;
                if stack.len() >= MAX_DEPTH || count > MAX_ELEMENTS {
                    return Err(bad("too deep or too many elements".into()));
                }
                stack.push(Element {
                    name: local(e.name().as_ref()),
                    ..Element::default()
                });
            }
            Event::Empty(e) => {
                count += 1;
                if count > MAX_ELEMENTS {
                    return Err(bad("too many elements".into()));
                }
                let el = Element {
                    name: local(e.name().as_ref()),
                    ..Element::default()
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::End(_) => {
                let el = stack
                    .pop()
                    .ok_or_else(|| bad("closing tag without an opening one".into()))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::Text(t) => {
                if let Some(el) = stack.last_mut() {
                    el.text.push_str(&t.xml10_content());
                }
            }
            Event::CData(t) => {
                if let Some(el) = stack.last_mut() {
                    el.text.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    _ => {
                        let name = r.xml10_content();
                        quick_xml::escape::resolve_predefined_entity(&name)
                            .ok_or_else(|| bad(format!("unknown entity &{name};")))?
                            .to_string()
                    }
                };
                if let Some(el) = stack.last_mut() {
                    el.text.push_str(&resolved);
                }
            }
            Event::DocType(_) => return Err(bad("document type declarations are refused".into())),
            Event::Eof => break,
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err(bad("the document ends inside an element".into()));
    }
    root.ok_or_else(|| bad("no root element".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_text_and_entities() {
        let root = parse(
            "<?xml version=\"1.0\"?><s:Envelope xmlns:s=\"x\"><s:Body><a>x &amp; &#65;</a><b/></s:Body></s:Envelope>",
        )
        .unwrap();
        assert_eq!(root.name, "Envelope");
        let body = root.child("Body").unwrap();
        assert_eq!(body.child_text("a"), Some("x & A"));
        assert!(body.child("b").is_some());
    }

    #[test]
    fn refuses_garbage_doctype_and_size() {
        assert!(parse("not xml at all").is_err());
        assert!(parse("<a><b></a>").is_err());
        assert!(parse("<a>").is_err());
        assert!(parse("").is_err());
        assert!(parse("<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>").is_err());
        let big = format!("<a>{}</a>", "x".repeat(MAX_BYTES));
        assert!(matches!(parse(&big), Err(GatewayError::TooLarge(_))));
        let deep = "<a>".repeat(100) + &"</a>".repeat(100);
        assert!(parse(&deep).is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,400}") {
            let _ = parse(&s);
        }

        #[test]
        fn never_panics_on_tags(s in "(<[a-z:]{1,4}>|</[a-z:]{1,4}>|<[a-z]/>|&[a-z#0-9]{0,5};|[a-z ]{0,5}){0,40}") {
            let _ = parse(&s);
        }
    }
}
