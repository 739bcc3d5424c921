"""Arguments are checked against each job function's signature and type hints."""

from __future__ import annotations

from typing import Annotated

import pytest
from annotated_types import Ge

import jobs
from webapp.infra.errors import ValidationFailed
from webapp.service.catalog import build_catalog, job_type_for


@pytest.fixture(scope="module")
def catalog():
    return build_catalog(jobs.ALLOWED)


def test_every_allowed_job_has_a_summary_and_an_object_schema(catalog):
    assert {"add", "sleep", "fail", "task_get"} <= set(catalog)
    for job_type in catalog.values():
        assert job_type.summary
        assert job_type.schema()["type"] == "object"


def test_positional_and_keyword_arguments_map_onto_parameters(catalog):
    assert catalog["add"].validate([2], {"b": 3}) == {"a": 2, "b": 3}
    assert catalog["sleep"].validate([], {}) == {"seconds": 5.0}
    assert catalog["sleep"].validate([2], {}) == {"seconds": 2}


@pytest.mark.parametrize(
    ("args", "kwargs", "named"),
    [
        (["2", 3], {}, "a"),  # no string-to-int coercion
        ([True, 3], {}, "a"),  # booleans are not integers
        ([1.5, 3], {}, "a"),
        ([1], {}, "b"),  # missing
        ([1, 2], {"c": 3}, "c"),  # unknown
    ],
)
def test_wrong_arguments_are_refused_naming_the_argument(catalog, args, kwargs, named):
    with pytest.raises(ValidationFailed) as caught:
        catalog["add"].validate(args, kwargs)
    assert named in caught.value.message
    assert any(detail["argument"] == named for detail in caught.value.details)


def test_too_many_positional_arguments(catalog):
    with pytest.raises(ValidationFailed, match="at most 2 positional"):
        catalog["add"].validate([1, 2, 3], {})


def test_an_argument_given_twice(catalog):
    with pytest.raises(ValidationFailed, match="both in args and kwargs"):
        catalog["add"].validate([1, 2], {"a": 1})


def test_bounds_in_the_signature_are_enforced_and_in_the_schema(catalog):
    with pytest.raises(ValidationFailed, match="seconds"):
        catalog["sleep"].validate([-1], {})
    schema = catalog["sleep"].schema()["properties"]["seconds"]
    assert schema["minimum"] == 0 and schema["maximum"] == 3600


def test_functions_without_hints_or_with_star_args_are_rejected_at_start_up():
    def untyped(a):
        return a

    def starred(*values: int):
        return values

    with pytest.raises(TypeError, match="type hint"):
        job_type_for("untyped", untyped)
    with pytest.raises(TypeError, match=r"\*args"):
        job_type_for("starred", starred)


def test_annotated_bounds_work_for_new_job_types():
    def positive(n: Annotated[int, Ge(1)]) -> int:
        return n

    job_type = job_type_for("positive", positive)
    assert job_type.validate([3], {}) == {"n": 3}
    with pytest.raises(ValidationFailed):
        job_type.validate([0], {})
