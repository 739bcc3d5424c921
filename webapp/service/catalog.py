"""The catalog of submittable job types, built from the allow-list in `jobs`.

Each function's signature and type hints become a strict pydantic model: the same model
validates submissions and gives the JSON Schema shown in the catalog. The catalog is also
what workers run: a job whose function is not in it is refused (`refusal`), whoever
enqueued it.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, get_type_hints

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from webapp.infra.errors import ValidationFailed
from webapp.service.submission import LimitOptions, RetryOptions
from webapp.service.validation import failed, json_integers


@dataclass(frozen=True)
class JobType:
    """A submittable job: its public name, function, and argument model."""

    name: str
    func: Callable
    params: type[BaseModel]
    positional: tuple[str, ...]
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def import_path(self) -> str:
        return f"{self.func.__module__}.{self.func.__qualname__}"

    @property
    def summary(self) -> str:
        return (inspect.getdoc(self.func) or "").split("\n", 1)[0]

    def schema(self) -> dict:
        return self.params.model_json_schema()

    def validate(self, args: list, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """Map positional and keyword arguments onto the parameters and check their types.

        Returns the keyword arguments to call the function with; raises ValidationFailed
        naming each argument that is wrong, missing or unknown.
        """
        if len(args) > len(self.positional):
            raise ValidationFailed(
                f"{self.name}() takes at most {len(self.positional)} positional argument(s) "
                f"({', '.join(self.positional) or 'none'}), {len(args)} given"
            )
        merged = dict(zip(self.positional, args, strict=False))
        for key, value in kwargs.items():
            if key in merged:
                raise ValidationFailed(f"{self.name}() got argument '{key}' both in args and kwargs")
            merged[key] = value
        try:
            model = self.params.model_validate(merged)
        except ValidationError as exc:
            raise failed(exc, f"invalid arguments for {self.name}: ", default="arguments") from None
        return {field: getattr(model, field) for field in type(model).model_fields}


def job_type_for(name: str, func: Callable) -> JobType:
    """Build the JobType of one allow-listed function from its signature and hints."""
    signature = inspect.signature(func)
    hints = get_type_hints(func, include_extras=True)
    fields: dict[str, Any] = {}
    positional: list[str] = []
    for param in signature.parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"job {name}: *args/**kwargs cannot be validated; name each parameter")
        if param.name not in hints:
            raise TypeError(f"job {name}: parameter '{param.name}' needs a type hint")
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (json_integers(hints[param.name]), default)
        if param.kind is not param.KEYWORD_ONLY:
            positional.append(param.name)
    model = create_model(
        f"{name}_params",
        __config__=ConfigDict(strict=True, extra="forbid"),
        **fields,
    )
    return JobType(name=name, func=func, params=model, positional=tuple(positional))


# Options a job type may set a default for (jobs.DEFAULT_OPTIONS); a submission may override them.
OPTION_NAMES = ("queue", "timeout", "result_ttl", "ttl", "failure_ttl", "retry", "webhook", "limit")


class Catalog(dict[str, JobType]):
    """The job types by public name, and what workers may run."""

    @cached_property
    def names_by_path(self) -> dict[str, str]:
        """Public name by the function's dotted path (how RQ records a job's function)."""
        return {job_type.import_path: job_type.name for job_type in self.values()}

    def refusal(self, func_name: str | None, extra_prefixes: Iterable[str] = ()) -> str | None:
        """Why a worker must not run a job calling `func_name`; None when it may.

        Only the catalog's functions run, plus those under a prefix an operator admitted for
        plain-RQ producers (WORKER_ALLOWED_PREFIXES). Nothing else is imported or called.
        """
        if func_name and func_name in self.names_by_path:
            return None
        if func_name and any(prefix and func_name.startswith(prefix) for prefix in extra_prefixes):
            return None
        return (
            f"{func_name or 'this job'!s} is not in the allow-list of job functions (jobs.ALLOWED: "
            f"{', '.join(sorted(self.names_by_path)) or 'none'}); it was not run. "
            "To run functions of plain-RQ producers, add their module prefix to WORKER_ALLOWED_PREFIXES."
        )


def build_catalog(allowed: Mapping[str, Callable], defaults: Mapping[str, Mapping[str, Any]] | None = None) -> Catalog:
    defaults = defaults or {}
    for name, options in defaults.items():
        if name not in allowed:
            raise TypeError(f"default options for {name!r}, which is not an allowed job")
        unknown = sorted(set(options) - set(OPTION_NAMES))
        if unknown:
            raise TypeError(f"job {name}: unknown default option(s) {unknown}; known: {', '.join(OPTION_NAMES)}")
        if options.get("limit") is not None:
            try:  # a fixed key shared by every submission of the type (README, "Limits per key")
                LimitOptions.model_validate(options["limit"])
            except ValidationError as exc:
                raise TypeError(f"job {name}: invalid default limit: {exc}") from None
    catalog = Catalog((name, job_type_for(name, func)) for name, func in allowed.items())
    for name, options in defaults.items():
        options = dict(options)
        if options.get("retry") is not None:
            options["retry"] = _default_retry(name, options["retry"])
        catalog[name] = dataclasses.replace(catalog[name], options=options)
    return catalog


def _default_retry(name: str, retry: Mapping[str, Any]) -> dict[str, Any]:
    """A job type's default retry, checked as a submission's is; a backoff gets its defaults filled in."""
    try:
        checked = RetryOptions.model_validate(retry)
    except ValidationError as exc:
        raise TypeError(f"job {name}: default retry {dict(retry)!r} is invalid: {exc}") from None
    if checked.backoff is None:
        return dict(retry)
    return {"max": checked.max, "backoff": checked.backoff.model_dump()}


def effective_options(job_type: JobType, config: Mapping[str, Any]) -> dict[str, Any]:
    """The options a submission of this type gets when it sets none: config, then the type's own.

    Every job gets DEFAULT_JOB_RETRIES re-runs (after an exception or its worker's death)
    unless its function says otherwise with a `retries` attribute (`fail.retries = 0`).
    """
    retries = int(getattr(job_type.func, "retries", config.get("DEFAULT_JOB_RETRIES", 0)))
    options: dict[str, Any] = {
        "queue": config["DEFAULT_QUEUE"],
        "timeout": config["JOB_TIMEOUT"],
        "result_ttl": config["RESULT_TTL"],
        "failure_ttl": config["FAILURE_TTL"],
        "ttl": None,
        "retry": {"max": retries, "intervals": []} if retries > 0 else None,
    }
    options.update(job_type.options)
    return options
