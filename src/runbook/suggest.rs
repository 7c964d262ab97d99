//! "Did you mean" suggestions: the closest candidate by edit distance.
//!
//! Names longer than [`MAX_LEN`] are never compared, so a pathological input cannot make a
//! suggestion cost more than a few thousand steps per candidate.

/// Names longer than this are not compared.
const MAX_LEN: usize = 64;

/// Levenshtein distance between two strings (in chars).
pub fn edit_distance(a: &str, b: &str) -> usize {
  let a: Vec<char> = a.chars().collect();
  let b: Vec<char> = b.chars().collect();
  let mut previous: Vec<usize> = (0..=b.len()).collect();
  let mut current = vec![0; b.len() + 1];
  for (i, ca) in a.iter().enumerate() {
    current[0] = i + 1;
    for (j, cb) in b.iter().enumerate() {
      let substitution = previous[j] + usize::from(ca != cb);
      current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
    }
    std::mem::swap(&mut previous, &mut current);
  }
  previous[b.len()]
}

/// The candidate closest to `name`, if it is close enough to be a plausible typo: at most a third
/// of the name's length (and at least one edit) away.
pub fn did_you_mean<'c, I>(name: &str, candidates: I) -> Option<String>
where
  I: IntoIterator<Item = &'c str>,
{
  if name.is_empty() || name.chars().count() > MAX_LEN {
    return None;
  }
  let limit = (name.chars().count() / 3).max(1);
  candidates
    .into_iter()
    .filter(|candidate| candidate.chars().count() <= MAX_LEN && *candidate != name)
    .map(|candidate| (edit_distance(name, candidate), candidate))
    .filter(|(distance, _)| *distance <= limit)
    .min_by_key(|(distance, _)| *distance)
    .map(|(_, candidate)| candidate.to_string())
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn distances() {
    assert_eq!(edit_distance("kitten", "sitting"), 3);
    assert_eq!(edit_distance("", "abc"), 3);
    assert_eq!(edit_distance("same", "same"), 0);
  }

  #[test]
  fn suggests_close_names_only() {
    let names = ["rds.promote_replica", "notify.slack"];
    assert_eq!(
      did_you_mean("rds.promte_replica", names).as_deref(),
      Some("rds.promote_replica")
    );
    assert_eq!(did_you_mean("s3.object_age", names), None);
    assert_eq!(did_you_mean(&"x".repeat(1000), names), None);
  }
}
