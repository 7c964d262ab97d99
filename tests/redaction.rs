//! Redaction fails closed: every form of a secret is scrubbed, a secret that cannot be scrubbed
//! safely is refused before the run starts (exit 2, named but not shown), `secret: true`
//! parameters are redacted like secrets, and a resume never feeds `***` to a template.

use crate::support::Test;

const HEADER: &str = "apiVersion: drctl/v1\nkind: Runbook\nmetadata: { name: redaction }\n";

/// A run that prints the secret (to be redacted from its output) after a step that needs it.
fn echo_runbook() -> String {
  format!(
    "{HEADER}steps:\n\
     \x20 - id: echo\n\
     \x20   action: exec.command\n\
     \x20   with:\n\
     \x20     argv: [sh, -c, 'echo \"token=$TOKEN year=$YEAR\"']\n\
     \x20     env: {{ TOKEN: \"${{{{ secrets.TOKEN }}}}\", YEAR: \"${{{{ secrets.YEAR }}}}\" }}\n"
  )
}

/// Every file under the state directory, as text.
fn state_text(test: &Test) -> String {
  fn walk(dir: &std::path::Path, out: &mut String) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
      let path = entry.path();
      if path.is_dir() {
        walk(&path, out);
      } else {
        out.push_str(&String::from_utf8_lossy(
          &std::fs::read(&path).unwrap_or_default(),
        ));
      }
    }
  }
  let mut text = String::new();
  walk(&test.path().join(".drctl"), &mut text);
  text
}

#[test]
fn a_secret_equal_to_the_current_year_is_refused_before_the_run_and_never_unmasks_another() {
  let year = chrono::Utc::now().format("%Y").to_string();
  let test = Test::new()
    .file("echo.yaml", &echo_runbook())
    .env("TOKEN", "t0ken-Qx9-visible")
    .env("YEAR", &year);
  let run = test.run_args(["run", "echo.yaml", "--sim", "--yes"]);
  assert_eq!(run.code(), 2, "{}", run.stderr());
  assert!(
    run
      .stderr()
      .contains("secret `secrets.YEAR` cannot be redacted safely"),
    "{}",
    run.stderr()
  );
  assert!(!run.stderr().contains(&year), "{}", run.stderr());
  assert!(test.run_ids().is_empty(), "no run started");
  assert!(!state_text(&test).contains("t0ken-Qx9-visible"));
}

#[test]
fn secrets_too_short_or_part_of_the_record_structure_are_refused() {
  for value in ["ab", "step_started", "succeeded", "echo", "1234"] {
    let test = Test::new()
      .file("echo.yaml", &echo_runbook())
      .env("TOKEN", value)
      .env("YEAR", "not-a-year-at-all");
    let run = test.run_args(["run", "echo.yaml", "--sim", "--yes"]);
    assert_eq!(run.code(), 2, "{value}: {}", run.stderr());
    assert!(
      run
        .stderr()
        .contains("secret `secrets.TOKEN` cannot be redacted safely"),
      "{value}: {}",
      run.stderr()
    );
    assert!(test.run_ids().is_empty(), "{value}: no run started");
  }
}

#[test]
fn url_encoded_and_base64_forms_of_a_secret_are_redacted() {
  let secret = "p@ss/w+rd=x y&z";
  let runbook = format!(
    "{HEADER}steps:\n\
     \x20 - id: encode\n\
     \x20   action: exec.command\n\
     \x20   with:\n\
     \x20     argv: [sh, -c, 'printf %s \"$TOKEN\" | base64; printf x%s \"$TOKEN\" | base64; \
     printf xy%s \"$TOKEN\" | base64; python3 -c \"import os, urllib.parse as u; \
     print(u.quote(os.environ[\\\"TOKEN\\\"], safe=\\\"\\\")); \
     print(u.quote_plus(os.environ[\\\"TOKEN\\\"]))\"']\n\
     \x20     env: {{ TOKEN: \"${{{{ secrets.TOKEN }}}}\" }}\n"
  );
  let test = Test::new()
    .file("encode.yaml", &runbook)
    .env("TOKEN", secret);
  let run = test.run_args(["run", "encode.yaml", "--sim", "--yes"]);
  assert_eq!(run.code(), 0, "{}", run.stderr());
  let run_id = test.run_ids().pop().unwrap();
  let journal = test.journal(&run_id);
  assert!(journal.contains("***"), "{journal}");
  let status = test
    .run_args(["status", &run_id, "--output", "json"])
    .stdout();
  let report = test
    .run_args(["report", &run_id, "--format", "md"])
    .stdout();
  for text in [&journal, &status, &report, &run.stdout(), &run.stderr()] {
    for form in [
      "cEBzcy93K3JkPXggeSZ6",
      "eHBAc3MvdytyZD14IHkmeg",
      "eHlwQHNzL3crcmQ9eCB5Jno",
      "p%40ss%2Fw%2Brd%3Dx%20y%26z",
      "p%40ss%2Fw%2Brd%3Dx+y%26z",
    ] {
      // The characters that depend on the secret alone.
      let core = &form[1..form.len() - 1];
      assert!(!text.contains(core), "{form} in {text}");
    }
  }
}

#[test]
fn a_secret_param_is_redacted_and_a_resume_needs_it_again() {
  let runbook = format!(
    "{HEADER}params:\n\
     \x20 password: {{ type: string, required: true, secret: true }}\n\
     steps:\n\
     \x20 - id: first\n\
     \x20   action: exec.command\n\
     \x20   retry: {{ attempts: 1 }}\n\
     \x20   with: {{ argv: [sh, -c, 'test -f marker || {{ touch marker; exit 1; }}'] }}\n\
     \x20 - id: use\n\
     \x20   action: exec.command\n\
     \x20   needs: [first]\n\
     \x20   with:\n\
     \x20     argv: [sh, -c, 'test \"$PW\" = \"$WANT\" || exit 7; echo \"pw=$PW\"']\n\
     \x20     env: {{ PW: \"${{{{ params.password }}}}\", WANT: \"${{{{ env.WANT_PW }}}}\" }}\n"
  );
  let secret = "s3cret-Pass-word";
  let test = Test::new()
    .file("param.yaml", &runbook)
    .env("WANT_PW", secret);
  let run = test.run_args([
    "run",
    "param.yaml",
    "--sim",
    "--yes",
    "-p",
    &format!("password={secret}"),
  ]);
  assert_eq!(run.code(), 1, "{}", run.stderr());
  let run_id = test.run_ids().pop().unwrap();
  assert!(test.journal(&run_id).contains(r#""password":"***""#));
  // Without the value, the resume is refused: the journal has only `***`.
  let refused = test.run_args(["resume", &run_id, "--yes"]);
  assert_eq!(refused.code(), 2, "{}", refused.stderr());
  assert!(
    refused
      .stderr()
      .contains("pass it again with `-p password=VALUE`"),
    "{}",
    refused.stderr()
  );
  let resumed = test.run_args([
    "resume",
    &run_id,
    "--yes",
    "-p",
    &format!("password={secret}"),
  ]);
  assert_eq!(resumed.code(), 0, "{}", resumed.stderr());
  let journal = test.journal(&run_id);
  assert!(journal.contains("pw=***"), "{journal}");
  let status = test
    .run_args(["status", &run_id, "--output", "json"])
    .stdout();
  for text in [
    journal,
    status,
    run.stdout(),
    run.stderr(),
    resumed.stdout(),
    resumed.stderr(),
    state_text(&test),
  ] {
    assert!(!text.contains(secret), "{text}");
  }
}

#[test]
fn a_resume_refuses_an_output_it_only_has_redacted() {
  let runbook = format!(
    "{HEADER}steps:\n\
     \x20 - id: read\n\
     \x20   action: exec.command\n\
     \x20   with:\n\
     \x20     argv: [sh, -c, 'echo \"$TOKEN\"']\n\
     \x20     env: {{ TOKEN: \"${{{{ secrets.TOKEN }}}}\" }}\n\
     \x20 - id: gate\n\
     \x20   action: exec.command\n\
     \x20   needs: [read]\n\
     \x20   retry: {{ attempts: 1 }}\n\
     \x20   with: {{ argv: [sh, -c, 'test -f marker || {{ touch marker; exit 1; }}'] }}\n\
     \x20 - id: use\n\
     \x20   action: exec.command\n\
     \x20   needs: [gate]\n\
     \x20   with:\n\
     \x20     argv: [sh, -c, 'test \"$OUT\" != \"***\" || exit 7']\n\
     \x20     env: {{ OUT: \"${{{{ steps.read.outputs.stdout }}}}\" }}\n"
  );
  let test = Test::new()
    .file("outputs.yaml", &runbook)
    .env("TOKEN", "t0ken-from-env-42");
  let run = test.run_args(["run", "outputs.yaml", "--sim", "--yes"]);
  assert_eq!(run.code(), 1, "{}", run.stderr());
  let run_id = test.run_ids().pop().unwrap();
  let resumed = test.run_args(["resume", &run_id, "--yes"]);
  assert_eq!(resumed.code(), 1, "{}", resumed.stderr());
  assert!(
    resumed
      .stderr()
      .contains("step `use` needs `${{ steps.read.outputs.stdout }}`, which held a secret"),
    "{}",
    resumed.stderr()
  );
  assert!(
    !test.journal(&run_id).contains("exit code 7"),
    "`***` never reached the command"
  );
}

#[test]
fn a_run_warns_about_every_unset_secret_it_renders() {
  let test = Test::new()
    .file("echo.yaml", &echo_runbook())
    .env("TOKEN", "t0ken-Qx9-visible");
  let run = test.run_args(["run", "echo.yaml", "--sim", "--yes"]);
  assert_eq!(run.code(), 0, "{}", run.stderr());
  assert!(
    run
      .stderr()
      .contains("warning: secret `YEAR` is not set in the environment; it renders empty"),
    "{}",
    run.stderr()
  );
  assert!(!run.stderr().contains("secret `TOKEN` is not set"));
}

#[test]
fn a_secret_in_an_exec_argv_is_a_validation_warning_pointing_to_env() {
  let runbook = format!(
    "{HEADER}params:\n\
     \x20 key: {{ type: string, secret: true }}\n\
     steps:\n\
     \x20 - id: call\n\
     \x20   action: exec.command\n\
     \x20   with:\n\
     \x20     argv: [curl, -H, \"Authorization: ${{{{ secrets.TOKEN }}}}\", \"${{{{ params.key }}}}\"]\n"
  );
  let test = Test::new().file("argv.yaml", &runbook);
  let run = test.run_args(["validate", "argv.yaml"]);
  assert_eq!(run.code(), 0, "{}", run.stderr());
  let stderr = run.stderr();
  assert!(
    stderr.contains(
      "warning: argv.yaml:10:24: secret `secrets.TOKEN` in an `exec.command` argv: any local \
       user can read a command line"
    ),
    "{stderr}"
  );
  assert!(stderr.contains("= key: steps[0].with.argv[2]"), "{stderr}");
  assert!(stderr.contains("pass it in `env:` instead"), "{stderr}");
  assert!(
    stderr.contains("secret `params.key` in an `exec.command` argv"),
    "{stderr}"
  );
}
