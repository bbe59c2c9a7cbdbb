"""Check a command's --json output against the schema README documents
(gradscope/cli/schema.json; tests/test_cli_output.py checks README shows the same one)."""
import json
import os

import jsonschema

import gradscope.cli

SCHEMA_PATH = os.path.join(os.path.dirname(gradscope.cli.__file__), "schema.json")


def schema() -> dict:
    with open(SCHEMA_PATH, encoding="utf-8") as f:
        return json.load(f)


def check_output(text: str, command: str) -> dict:
    """Parse a command's stdout, validate it against the schema and its command name; returns it."""
    payload = json.loads(text)
    jsonschema.Draft202012Validator(schema()).validate(payload)
    assert payload["command"] == command, (payload["command"], command)
    return payload
