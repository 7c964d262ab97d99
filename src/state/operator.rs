//! Who runs drctl: the operating-system account of the process, recorded in every run's
//! journal next to the backend's caller identity (`cloud::CallerIdentity`).

/// The name of the account the process runs as: the password database's entry for the
/// effective uid, then `$USER`/`$LOGNAME`, then `uid N`. The uid comes first because `$USER` can
/// be unset (cron, systemd units, containers) or stale (`su`).
pub fn os_user() -> String {
  let uid = effective_uid();
  if let Some(name) = uid.and_then(|uid| {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd_name(&passwd, uid)
  }) {
    return name;
  }
  for variable in ["USER", "LOGNAME"] {
    if let Some(name) = std::env::var(variable).ok().filter(|name| !name.is_empty()) {
      return name;
    }
  }
  uid.map_or_else(|| "unknown".into(), |uid| format!("uid {uid}"))
}

/// The process's effective uid: `/proc/self` is owned by it.
#[cfg(unix)]
fn effective_uid() -> Option<u32> {
  use std::os::unix::fs::MetadataExt;
  std::fs::metadata("/proc/self").ok().map(|meta| meta.uid())
}

#[cfg(not(unix))]
fn effective_uid() -> Option<u32> {
  None
}

/// The name of `uid` in `/etc/passwd`-formatted text (`name:x:uid:gid:...`).
fn passwd_name(passwd: &str, uid: u32) -> Option<String> {
  passwd.lines().find_map(|line| {
    let mut fields = line.split(':');
    let name = fields.next()?;
    let found: u32 = fields.nth(1)?.parse().ok()?;
    (found == uid && !name.is_empty()).then(|| name.to_string())
  })
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn a_uid_is_looked_up_in_the_password_database() {
    let passwd =
      "root:x:0:0:root:/root:/bin/bash\n# comment\nalice:x:1000:1000::/home/alice:/bin/sh\n";
    assert_eq!(passwd_name(passwd, 0).as_deref(), Some("root"));
    assert_eq!(passwd_name(passwd, 1000).as_deref(), Some("alice"));
    assert_eq!(passwd_name(passwd, 1001), None);
  }

  #[test]
  fn the_process_has_a_user() {
    let user = os_user();
    assert!(!user.is_empty());
    assert_ne!(user, "unknown");
  }
}
