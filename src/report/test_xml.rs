//! Well-formedness checks for the XML the renderers write (tests only).

/// Tokenize `xml`, check that every element is closed in order, and return the names of all
/// elements in document order. Panics (failing the test) on any error.
pub fn check_well_formed(xml: &str) -> Vec<String> {
  let mut stack: Vec<String> = Vec::new();
  let mut elements = Vec::new();
  let mut roots = 0;
  for token in xmlparser::Tokenizer::from(xml) {
    let token = token.unwrap_or_else(|err| panic!("not well-formed: {err}\n{xml}"));
    match token {
      xmlparser::Token::ElementStart { local, .. } => {
        if stack.is_empty() {
          roots += 1;
        }
        stack.push(local.as_str().to_string());
        elements.push(local.as_str().to_string());
      }
      xmlparser::Token::ElementEnd { end, .. } => match end {
        xmlparser::ElementEnd::Open => {}
        xmlparser::ElementEnd::Empty => {
          stack.pop();
        }
        xmlparser::ElementEnd::Close(_, local) => {
          let open = stack.pop();
          assert_eq!(
            open.as_deref(),
            Some(local.as_str()),
            "</{}> closes <{open:?}>\n{xml}",
            local.as_str()
          );
        }
      },
      _ => {}
    }
  }
  assert!(stack.is_empty(), "unclosed elements {stack:?}\n{xml}");
  assert_eq!(roots, 1, "one root element\n{xml}");
  elements
}

pub fn count(elements: &[String], name: &str) -> usize {
  elements.iter().filter(|element| *element == name).count()
}
