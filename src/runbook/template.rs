//! `${{ }}` templates.
//!
//! A template is literal text with embedded expressions. An expression is a reference
//! (`params.x`, `vars.x`, `objectives.rto`, `steps.ID.outputs.KEY`, `env.X`, `secrets.X`,
//! `run.id`, `run.elapsed`), a literal, or a comparison/boolean combination of those
//! (`==`, `!=`, `!`, `&&`, `||`, parentheses), which renders to `true` or `false`.
//!
//! Literals are strings (`'x'` or `"x"`), numbers (`3`, `1.5`) and `true` / `false`. Reference
//! segments may contain `-` (step ids do), so `steps.promote-db.outputs.lag` is one reference.
//! `==` compares numerically when both sides are numbers and as text otherwise; `!`, `&&` and
//! `||` treat `false` and the empty string as false and anything else as true.
//!
//! Parsing never panics and never recurses more than [`MAX_NESTING`] levels.

use std::fmt;

/// The namespaces a reference can start with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Namespace {
  Params,
  Vars,
  Objectives,
  Steps,
  Env,
  Secrets,
  Run,
}

impl Namespace {
  pub fn parse(name: &str) -> Option<Namespace> {
    Some(match name {
      "params" => Namespace::Params,
      "vars" => Namespace::Vars,
      "objectives" => Namespace::Objectives,
      "steps" => Namespace::Steps,
      "env" => Namespace::Env,
      "secrets" => Namespace::Secrets,
      "run" => Namespace::Run,
      _ => return None,
    })
  }

  pub fn as_str(&self) -> &'static str {
    match self {
      Namespace::Params => "params",
      Namespace::Vars => "vars",
      Namespace::Objectives => "objectives",
      Namespace::Steps => "steps",
      Namespace::Env => "env",
      Namespace::Secrets => "secrets",
      Namespace::Run => "run",
    }
  }
}

/// A dotted reference such as `steps.promote-db.outputs.lag`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
  pub namespace: Namespace,
  /// The segments after the namespace (`["promote-db", "outputs", "lag"]`).
  pub path: Vec<String>,
  /// Byte offset of the reference within the template text (for diagnostics).
  pub offset: usize,
}

impl fmt::Display for Reference {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.write_str(self.namespace.as_str())?;
    for segment in &self.path {
      write!(f, ".{segment}")?;
    }
    Ok(())
  }
}

/// Resolves references while rendering.
pub trait Scope {
  /// The value of a reference, or `None` when it is unknown at this point.
  fn resolve(&self, reference: &Reference) -> Option<String>;
}

/// A template could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TemplateError {
  pub message: String,
  /// Byte offset within the template text.
  pub offset: usize,
}

/// A template could not be rendered (a reference had no value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
  #[error("`{0}` has no value")]
  Unresolved(String),
  /// A condition rendered to something other than `true` or `false`.
  #[error("condition `{0}` rendered to `{1}`, not `true` or `false`")]
  NotABool(String, String),
}

/// Deepest nesting of `!` and parentheses accepted in one expression.
pub const MAX_NESTING: usize = 32;

#[derive(Debug, Clone, PartialEq)]
enum Expr {
  Reference(Reference),
  Text(String),
  Number(String),
  Bool(bool),
  Not(Box<Expr>),
  And(Box<Expr>, Box<Expr>),
  Or(Box<Expr>, Box<Expr>),
  /// `==` (`equal: true`) or `!=`.
  Compare {
    left: Box<Expr>,
    right: Box<Expr>,
    equal: bool,
  },
}

impl Expr {
  fn collect<'a>(&'a self, out: &mut Vec<&'a Reference>) {
    match self {
      Expr::Reference(reference) => out.push(reference),
      Expr::Text(_) | Expr::Number(_) | Expr::Bool(_) => {}
      Expr::Not(inner) => inner.collect(out),
      Expr::And(left, right) | Expr::Or(left, right) => {
        left.collect(out);
        right.collect(out);
      }
      Expr::Compare { left, right, .. } => {
        left.collect(out);
        right.collect(out);
      }
    }
  }

  fn evaluate(&self, scope: &dyn Scope) -> Result<String, RenderError> {
    Ok(match self {
      Expr::Reference(reference) => scope
        .resolve(reference)
        .ok_or_else(|| RenderError::Unresolved(reference.to_string()))?,
      Expr::Text(text) | Expr::Number(text) => text.clone(),
      Expr::Bool(value) => value.to_string(),
      Expr::Not(inner) => (!truthy(&inner.evaluate(scope)?)).to_string(),
      Expr::And(left, right) => {
        (truthy(&left.evaluate(scope)?) && truthy(&right.evaluate(scope)?)).to_string()
      }
      Expr::Or(left, right) => {
        (truthy(&left.evaluate(scope)?) || truthy(&right.evaluate(scope)?)).to_string()
      }
      Expr::Compare { left, right, equal } => {
        let (left, right) = (left.evaluate(scope)?, right.evaluate(scope)?);
        let same = match (left.trim().parse::<f64>(), right.trim().parse::<f64>()) {
          (Ok(left), Ok(right)) => left == right,
          _ => left == right,
        };
        (same == *equal).to_string()
      }
    })
  }
}

fn truthy(value: &str) -> bool {
  !(value.is_empty() || value == "false")
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
  Literal(String),
  Expr(Expr),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
  source: String,
  parts: Vec<Part>,
}

impl Template {
  /// Parse template text.
  pub fn parse(text: &str) -> Result<Template, TemplateError> {
    let mut parts = Vec::new();
    let mut literal_start = 0;
    let mut position = 0;
    while let Some(found) = text[position..].find("${{") {
      let open = position + found;
      if open > literal_start {
        parts.push(Part::Literal(text[literal_start..open].to_string()));
      }
      let inner_start = open + 3;
      let close = find_close(text, inner_start).ok_or_else(|| TemplateError {
        message: "unclosed `${{` (expected `}}`)".into(),
        offset: open,
      })?;
      let tokens = lex(&text[inner_start..close], inner_start)?;
      if tokens.is_empty() {
        return Err(TemplateError {
          message: "empty `${{ }}`".into(),
          offset: open,
        });
      }
      let mut parser = ExprParser {
        tokens,
        position: 0,
        depth: 0,
        end: close,
      };
      let expr = parser.parse_or()?;
      if let Some(token) = parser.tokens.get(parser.position) {
        return Err(TemplateError {
          message: format!("unexpected `{}`", token.text),
          offset: token.offset,
        });
      }
      parts.push(Part::Expr(expr));
      position = close + 2;
      literal_start = position;
    }
    if literal_start < text.len() {
      parts.push(Part::Literal(text[literal_start..].to_string()));
    }
    Ok(Template {
      source: text.to_string(),
      parts,
    })
  }

  /// A template with no expressions.
  pub fn literal(text: impl Into<String>) -> Template {
    let text = text.into();
    Template {
      parts: vec![Part::Literal(text.clone())],
      source: text,
    }
  }

  /// The text as written.
  pub fn source(&self) -> &str {
    &self.source
  }

  /// Whether the template has no expressions.
  pub fn is_literal(&self) -> bool {
    self
      .parts
      .iter()
      .all(|part| matches!(part, Part::Literal(_)))
  }

  /// Every reference, in order.
  pub fn references(&self) -> Vec<&Reference> {
    let mut out = Vec::new();
    for part in &self.parts {
      if let Part::Expr(expr) = part {
        expr.collect(&mut out);
      }
    }
    out
  }

  /// Render with values from `scope`.
  pub fn render(&self, scope: &dyn Scope) -> Result<String, RenderError> {
    let mut out = String::new();
    for part in &self.parts {
      match part {
        Part::Literal(text) => out.push_str(text),
        Part::Expr(expr) => out.push_str(&expr.evaluate(scope)?),
      }
    }
    Ok(out)
  }

  /// Render a condition (`when:`): it must come out as `true` or `false`.
  pub fn render_bool(&self, scope: &dyn Scope) -> Result<bool, RenderError> {
    let text = self.render(scope)?;
    match text.trim() {
      "true" => Ok(true),
      "false" => Ok(false),
      _ => Err(RenderError::NotABool(self.source.clone(), text)),
    }
  }
}

/// The byte offset of the `}}` closing an expression that starts at `from`, skipping quoted text.
fn find_close(text: &str, from: usize) -> Option<usize> {
  let bytes = text.as_bytes();
  let mut quote: Option<u8> = None;
  let mut index = from;
  while index < bytes.len() {
    let byte = bytes[index];
    match quote {
      Some(open) if byte == open => quote = None,
      Some(_) => {}
      None if byte == b'\'' || byte == b'"' => quote = Some(byte),
      None if byte == b'}' && bytes.get(index + 1) == Some(&b'}') => return Some(index),
      None => {}
    }
    index += 1;
  }
  None
}

#[derive(Debug, Clone, PartialEq)]
enum TokenKind {
  Reference(Reference),
  Text(String),
  Number(String),
  Bool(bool),
  Not,
  And,
  Or,
  Equal,
  NotEqual,
  Open,
  Close,
}

#[derive(Debug, Clone, PartialEq)]
struct Token {
  kind: TokenKind,
  text: String,
  offset: usize,
}

fn is_word(c: char) -> bool {
  c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.'
}

/// Split the inside of `${{ }}` (which starts at byte `base` of the template) into tokens.
fn lex(inner: &str, base: usize) -> Result<Vec<Token>, TemplateError> {
  let mut tokens = Vec::new();
  let mut chars = inner.char_indices().peekable();
  while let Some((index, c)) = chars.next() {
    let offset = base + index;
    let error = |message: String| TemplateError { message, offset };
    let symbol = |kind: TokenKind, text: &str| Token {
      kind,
      text: text.to_string(),
      offset,
    };
    let next = chars.peek().map(|(_, next)| *next);
    let token = match (c, next) {
      (c, _) if c.is_whitespace() => continue,
      ('(', _) => symbol(TokenKind::Open, "("),
      (')', _) => symbol(TokenKind::Close, ")"),
      ('=', Some('=')) => {
        chars.next();
        symbol(TokenKind::Equal, "==")
      }
      ('!', Some('=')) => {
        chars.next();
        symbol(TokenKind::NotEqual, "!=")
      }
      ('!', _) => symbol(TokenKind::Not, "!"),
      ('&', Some('&')) => {
        chars.next();
        symbol(TokenKind::And, "&&")
      }
      ('|', Some('|')) => {
        chars.next();
        symbol(TokenKind::Or, "||")
      }
      ('\'' | '"', _) => {
        let mut text = String::new();
        let mut closed = false;
        for (_, inside) in chars.by_ref() {
          if inside == c {
            closed = true;
            break;
          }
          text.push(inside);
        }
        if !closed {
          return Err(error("unterminated string".into()));
        }
        Token {
          text: format!("{c}{text}{c}"),
          kind: TokenKind::Text(text),
          offset,
        }
      }
      (c, _) if c.is_ascii_digit() => {
        let mut text = c.to_string();
        while let Some((_, next)) = chars.next_if(|(_, next)| next.is_ascii_digit() || *next == '.')
        {
          text.push(next);
        }
        if text.parse::<f64>().is_err() {
          return Err(error(format!("`{text}` is not a number")));
        }
        Token {
          kind: TokenKind::Number(text.clone()),
          text,
          offset,
        }
      }
      (c, _) if c.is_ascii_alphabetic() || c == '_' => {
        let mut text = c.to_string();
        while let Some((_, next)) = chars.next_if(|(_, next)| is_word(*next)) {
          text.push(next);
        }
        Token {
          kind: word(&text, offset)?,
          text,
          offset,
        }
      }
      (c, _) => return Err(error(format!("unexpected `{c}`"))),
    };
    tokens.push(token);
  }
  Ok(tokens)
}

/// A bare word: `true`, `false` or a reference.
fn word(text: &str, offset: usize) -> Result<TokenKind, TemplateError> {
  match text {
    "true" => return Ok(TokenKind::Bool(true)),
    "false" => return Ok(TokenKind::Bool(false)),
    _ => {}
  }
  let mut segments = text.split('.');
  let head = segments.next().unwrap_or_default();
  let Some(namespace) = Namespace::parse(head) else {
    const NAMES: [&str; 7] = [
      "params",
      "vars",
      "objectives",
      "steps",
      "env",
      "secrets",
      "run",
    ];
    let message = match super::suggest::did_you_mean(head, NAMES) {
      Some(name) => format!("unknown namespace `{head}` (did you mean `{name}`?)"),
      None => format!(
        "unknown namespace `{head}` (expected one of {})",
        NAMES.join(", ")
      ),
    };
    return Err(TemplateError { message, offset });
  };
  let path: Vec<String> = segments.map(str::to_string).collect();
  if path.iter().any(String::is_empty) {
    return Err(TemplateError {
      message: format!("malformed reference `{text}`"),
      offset,
    });
  }
  Ok(TokenKind::Reference(Reference {
    namespace,
    path,
    offset,
  }))
}

/// Recursive descent over the tokens of one expression:
/// `or := and ("||" and)*`, `and := unary ("&&" unary)*`, `unary := "!" unary | compare`,
/// `compare := primary (("==" | "!=") primary)?`, `primary := "(" or ")" | literal | reference`.
struct ExprParser {
  tokens: Vec<Token>,
  position: usize,
  depth: usize,
  /// Offset of the closing `}}`, for "expected ... at the end" errors.
  end: usize,
}

impl ExprParser {
  fn peek(&self) -> Option<&TokenKind> {
    self.tokens.get(self.position).map(|token| &token.kind)
  }

  fn parse_or(&mut self) -> Result<Expr, TemplateError> {
    let mut left = self.parse_and()?;
    while self.peek() == Some(&TokenKind::Or) {
      self.position += 1;
      left = Expr::Or(Box::new(left), Box::new(self.parse_and()?));
    }
    Ok(left)
  }

  fn parse_and(&mut self) -> Result<Expr, TemplateError> {
    let mut left = self.parse_unary()?;
    while self.peek() == Some(&TokenKind::And) {
      self.position += 1;
      left = Expr::And(Box::new(left), Box::new(self.parse_unary()?));
    }
    Ok(left)
  }

  fn enter(&mut self) -> Result<(), TemplateError> {
    self.depth += 1;
    if self.depth > MAX_NESTING {
      let offset = self
        .tokens
        .get(self.position)
        .map_or(self.end, |token| token.offset);
      return Err(TemplateError {
        message: "expression is nested too deeply".into(),
        offset,
      });
    }
    Ok(())
  }

  fn parse_unary(&mut self) -> Result<Expr, TemplateError> {
    if self.peek() == Some(&TokenKind::Not) {
      self.position += 1;
      self.enter()?;
      let inner = self.parse_unary()?;
      self.depth -= 1;
      return Ok(Expr::Not(Box::new(inner)));
    }
    let left = self.parse_primary()?;
    let equal = match self.peek() {
      Some(TokenKind::Equal) => true,
      Some(TokenKind::NotEqual) => false,
      _ => return Ok(left),
    };
    self.position += 1;
    let right = self.parse_primary()?;
    Ok(Expr::Compare {
      left: Box::new(left),
      right: Box::new(right),
      equal,
    })
  }

  fn parse_primary(&mut self) -> Result<Expr, TemplateError> {
    let Some(token) = self.tokens.get(self.position).cloned() else {
      return Err(TemplateError {
        message: "expected a value".into(),
        offset: self.end,
      });
    };
    self.position += 1;
    Ok(match token.kind {
      TokenKind::Reference(reference) => Expr::Reference(reference),
      TokenKind::Text(text) => Expr::Text(text),
      TokenKind::Number(text) => Expr::Number(text),
      TokenKind::Bool(value) => Expr::Bool(value),
      TokenKind::Open => {
        self.enter()?;
        let inner = self.parse_or()?;
        self.depth -= 1;
        if self.peek() != Some(&TokenKind::Close) {
          let offset = self
            .tokens
            .get(self.position)
            .map_or(self.end, |token| token.offset);
          return Err(TemplateError {
            message: "expected `)`".into(),
            offset,
          });
        }
        self.position += 1;
        inner
      }
      _ => {
        return Err(TemplateError {
          message: format!("expected a value, found `{}`", token.text),
          offset: token.offset,
        })
      }
    })
  }
}

#[cfg(test)]
mod tests {
  use std::collections::HashMap;

  use super::*;

  struct Values(HashMap<String, String>);

  impl Scope for Values {
    fn resolve(&self, reference: &Reference) -> Option<String> {
      self.0.get(&reference.to_string()).cloned()
    }
  }

  fn scope() -> Values {
    Values(
      [
        ("params.force", "false"),
        ("params.region", "us-west-2"),
        ("params.replicas", "3"),
        ("steps.promote-db.outputs.lag", "1.50"),
      ]
      .into_iter()
      .map(|(key, value)| (key.to_string(), value.to_string()))
      .collect(),
    )
  }

  fn render(text: &str) -> String {
    Template::parse(text).unwrap().render(&scope()).unwrap()
  }

  #[test]
  fn renders_references_and_literal_text() {
    assert_eq!(render("region ${{ params.region }}!"), "region us-west-2!");
    assert_eq!(render("${{steps.promote-db.outputs.lag}}"), "1.50");
    assert_eq!(render("plain"), "plain");
    assert_eq!(render(""), "");
    assert!(Template::parse("plain").unwrap().is_literal());
  }

  #[test]
  fn evaluates_conditions() {
    assert_eq!(render("${{ params.force == false }}"), "true");
    assert_eq!(render("${{ params.force != false }}"), "false");
    assert_eq!(render("${{ !params.force }}"), "true");
    assert_eq!(
      render("${{ params.region == 'us-west-2' && params.replicas == 3 }}"),
      "true"
    );
    assert_eq!(
      render("${{ params.region == \"x\" || (params.replicas != 4) }}"),
      "true"
    );
    assert_eq!(render("${{ steps.promote-db.outputs.lag == 1.5 }}"), "true");
    assert_eq!(render("${{ !(true && false) }}"), "true");
    assert_eq!(render("${{ 'a}}b' }}"), "a}}b");
    let condition = Template::parse("${{ params.force }}").unwrap();
    assert_eq!(condition.render_bool(&scope()), Ok(false));
    let not_bool = Template::parse("${{ params.region }}").unwrap();
    assert!(not_bool.render_bool(&scope()).is_err());
  }

  #[test]
  fn lists_references_with_offsets() {
    let template = Template::parse("a ${{ params.x == vars.y }} ${{steps.s-1.outputs.k}}").unwrap();
    let references: Vec<(String, usize)> = template
      .references()
      .iter()
      .map(|r| (r.to_string(), r.offset))
      .collect();
    assert_eq!(
      references,
      [
        ("params.x".to_string(), 6),
        ("vars.y".to_string(), 18),
        ("steps.s-1.outputs.k".to_string(), 31)
      ]
    );
  }

  #[test]
  fn reports_errors_with_offsets() {
    let error = |text: &str| Template::parse(text).unwrap_err();
    assert_eq!(error("abc ${{ params.x").offset, 4);
    assert!(error("abc ${{ params.x").message.contains("unclosed"));
    assert_eq!(error("${{ parms.x }}").offset, 4);
    assert!(error("${{ parms.x }}")
      .message
      .contains("did you mean `params`"));
    assert!(error("${{ }}").message.contains("empty"));
    assert!(error("${{ params.x == }}")
      .message
      .contains("expected a value"));
    assert!(error("${{ params.x params.y }}")
      .message
      .contains("unexpected"));
    assert!(error("${{ (params.x }}").message.contains("expected `)`"));
    assert!(error("${{ 'abc }}").message.contains("unclosed"));
    assert!(error("${{ params..x }}").message.contains("malformed"));
    assert!(error("${{ params.x # }}")
      .message
      .contains("unexpected `#`"));
  }

  #[test]
  fn deep_nesting_is_an_error_not_a_crash() {
    let deep = format!(
      "${{{{ {}true{} }}}}",
      "(".repeat(10_000),
      ")".repeat(10_000)
    );
    assert!(Template::parse(&deep)
      .unwrap_err()
      .message
      .contains("nested too deeply"));
    let nots = format!("${{{{ {}true }}}}", "!".repeat(10_000));
    assert!(Template::parse(&nots).is_err());
  }

  #[test]
  fn unresolved_references_fail_to_render() {
    let template = Template::parse("${{ env.MISSING }}").unwrap();
    assert_eq!(
      template.render(&scope()),
      Err(RenderError::Unresolved("env.MISSING".into()))
    );
  }
}
