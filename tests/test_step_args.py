"""STEP's arguments are named once (webapp/store/step.py) and the script reads them by name."""

from __future__ import annotations

import re

from webapp.store import step
from webapp.store.scripts import LUA_DIR, source


def test_the_script_reads_exactly_the_fields_python_sends():
    lua = (LUA_DIR / "step.lua").read_text()
    read = set(re.findall(r"\bA\.([a-z_]+)", lua))
    assert read == set(step.STEP_FIELDS), read ^ set(step.STEP_FIELDS)


def test_the_argument_table_follows_the_field_order():
    text = source("step", STEP_ARGS="", NAMES_JSON="{}")
    assert "{{" not in text
    generated = step.step_script({}).script.decode()
    for index, name in enumerate(step.STEP_FIELDS, start=1):
        assert f"local A_{name} = ARGV[{index}]" in generated
    assert not re.search(r"\bA\.[a-z_]", generated)  # every read of a field is the local


def test_argv_puts_each_value_at_its_field_position():
    claim = step.Claim(*[f"c{i}" for i in range(len(step.Claim.__dataclass_fields__))])
    finish = step.Finish(*[f"f{i}" for i in range(len(step.Finish.__dataclass_fields__))])
    argv = step.argv(claim, finish)
    assert len(argv) == len(step.STEP_FIELDS)
    assert argv[step.STEP_FIELDS.index("worker_name")] == claim.worker_name
    assert argv[step.STEP_FIELDS.index("done_event")] == finish.done_event
    claimed_only = step.argv(claim, None)
    assert claimed_only[len(step.Claim.__dataclass_fields__) :] == [""] * len(step.Finish.__dataclass_fields__)
