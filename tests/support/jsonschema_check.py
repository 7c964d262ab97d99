"""An independent JSON Schema validator for the schema tests: Python's `jsonschema` package.

Reads one JSON document from the file named by argv[1]:
    {"schema": SCHEMA, "instances": {NAME: INSTANCE, ...}}
checks SCHEMA itself against the draft 2020-12 metaschema (exit 3 with the error when it is not
a valid schema), then prints one JSON object on stdout: {NAME: [ERROR, ...], ...}, an empty list
for an instance the schema accepts.
"""

import json
import sys

import jsonschema
from jsonschema import Draft202012Validator


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as handle:
        document = json.load(handle)
    schema = document["schema"]
    if jsonschema.validators.validator_for(schema) is not Draft202012Validator:
        print(f"$schema is not draft 2020-12: {schema.get('$schema')!r}", file=sys.stderr)
        return 3
    try:
        Draft202012Validator.check_schema(schema)
    except jsonschema.exceptions.SchemaError as error:
        print(f"not a valid draft 2020-12 schema: {error}", file=sys.stderr)
        return 3
    validator = Draft202012Validator(schema)
    verdicts = {}
    for name, instance in document["instances"].items():
        errors = validator.iter_errors(instance)
        verdicts[name] = sorted(
            f"{error.json_path}: {error.message}"[:300] for error in errors
        )
    json.dump(verdicts, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
