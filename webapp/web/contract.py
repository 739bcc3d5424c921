"""The submission contract: one schema per job type, so a schema-valid submission is an accepted one.

`SubmitRequest` (webapp/service/submission.py) checks the shape of any submission; the catalog
then checks the arguments against the job type's signature, and the planner checks the options
against this server's maxima. The OpenAPI document says all of that at once: the submission is
a union discriminated by `name`, and each member carries its job type's own arguments.

A job's arguments may be given positionally (`args`), by keyword (`kwargs`) or both, but never
twice: each member lists the ways as `anyOf` branches, one per number of positional arguments
given (`k`): `args` then holds exactly the first `k` parameters, and `kwargs` the required ones
that remain and none of the first `k`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from webapp.service.access import KeyRing
from webapp.service.catalog import JobType
from webapp.service.submission import BackoffOptions, WebhookOptions
from webapp.service.webhooks import Secrets, url_pattern
from webapp.store.jobreads import JOB_ID_PATTERN

REF_PREFIX = "#/components/schemas/"
ARGUMENT_FIELDS = ("name", "args", "kwargs")
EXCLUSIVE_OPTIONS = (("enqueue_in", "enqueue_at"), ("depends_on", "enqueue_in"), ("depends_on", "enqueue_at"))


def _option_bounds(options: dict[str, Any], config: Mapping[str, Any], queues: Iterable[str]) -> None:
    """Put this server's maxima and choices into the options' schemas (they are 422s otherwise)."""

    def number(field: str, setting: str) -> None:
        if field not in options:
            return
        for branch in options[field].get("anyOf", [options[field]]):
            if branch.get("type") in ("integer", "number"):
                branch["maximum"] = config[setting]

    number("timeout", "MAX_JOB_TIMEOUT")
    number("result_ttl", "MAX_RESULT_TTL")
    number("failure_ttl", "MAX_FAILURE_TTL")
    number("ttl", "MAX_JOB_TTL")
    number("enqueue_in", "MAX_ENQUEUE_IN")
    for branch in options["queue"].get("anyOf", [options["queue"]]):
        if branch.get("type") == "string":
            branch.pop("maxLength", None)
            branch["enum"] = list(queues)
    options["retry"] = retry_option(config)
    if "webhook" in options:
        options["webhook"] = webhook_option(config)
    if "depends_on" not in options:
        return
    job_ids = {"type": "array", "items": {"type": "string", "pattern": JOB_ID_PATTERN.pattern}, "minItems": 1,
               "maxItems": config["MAX_DEPENDENCIES"]}  # fmt: skip
    options["depends_on"] = {
        "anyOf": [
            job_ids,
            {
                "type": "object",
                "properties": {"ids": job_ids, "allow_failure": {"type": "boolean"}},
                "required": ["ids"],
                "additionalProperties": False,
            },
            {"type": "null"},
        ],
        "description": "Jobs (ids) that must end before this one runs; they must exist and be visible to you.",
    }


def retry_option(config: Mapping[str, Any]) -> dict[str, Any]:
    """The `retry` option: fixed intervals, or a backoff (not both), within this server's maxima."""
    retries = {"type": "integer", "minimum": 0, "maximum": config["MAX_RETRIES"]}
    seconds = {"type": "number", "exclusiveMinimum": 0, "maximum": config["MAX_RETRY_INTERVAL"]}
    backoff = BackoffOptions.model_json_schema()
    backoff.pop("title", None)
    for prop in backoff["properties"].values():
        prop.pop("title", None)
    backoff["properties"]["base"].update(seconds)
    backoff["properties"]["max_delay"]["anyOf"] = [seconds, {"type": "null"}]
    return {
        "anyOf": [
            {
                "type": "object",
                "properties": {
                    "max": retries,
                    "intervals": {
                        "type": "array",
                        "items": {"type": "integer", "minimum": 0, "maximum": config["MAX_RETRY_INTERVAL"]},
                    },
                    "backoff": {"type": "null"},
                },
                "required": ["max"],
                "additionalProperties": False,
                "description": "Retry a failed job `max` times, waiting each interval in turn (the last repeats).",
            },
            {
                "type": "object",
                "properties": {"max": retries, "backoff": backoff},
                "required": ["max", "backoff"],
                "additionalProperties": False,
                "description": "Retry a failed job `max` times after exponential delays with jitter, "
                "drawn for each job when it is submitted (and again when it is retried through the API).",
            },
            {"type": "null"},
        ]
    }


def webhook_option(config: Mapping[str, Any]) -> dict[str, Any]:
    """The `webhook` option as this server takes it: URLs on its allowed hosts (the pattern
    check_url applies), or only null where webhooks are off or nothing could sign them."""
    allowed = config["WEBHOOK_ALLOWED_HOSTS"]
    keys_in_use = KeyRing.from_config(config).enabled
    if not allowed or (not keys_in_use and not Secrets(config["WEBHOOK_SECRETS"]).for_owner(None)):
        return {"type": "null", "description": "Webhooks are off here (WEBHOOK_ALLOWED_HOSTS, WEBHOOK_SECRETS)."}
    schema = WebhookOptions.model_json_schema()
    schema.pop("title", None)
    schema["properties"]["url"]["pattern"] = url_pattern(allowed)
    for prop in schema["properties"].values():
        prop.pop("title", None)
    # With keys, a key without a secret (WEBHOOK_SECRETS) is refused with a 422 all the same.
    return {"anyOf": [schema, {"type": "null"}], "description": WebhookOptions.__doc__}


def _ways_to_pass(job_type: JobType, params: dict) -> list[dict]:
    """One `anyOf` branch per number of positional arguments given."""
    required = set(params.get("required", []))
    branches = []
    for k in range(len(job_type.positional) + 1):
        given = list(job_type.positional[:k])
        remaining = sorted(name for name in required if name not in given)
        branch: dict[str, Any] = {"properties": {}}
        if k:
            branch["required"] = ["args"]
            branch["properties"]["args"] = {"minItems": k, "maxItems": k}
        else:
            branch["properties"]["args"] = {"maxItems": 0}
        kwargs: dict[str, Any] = {}
        if given:
            kwargs["properties"] = {name: False for name in given}
        if remaining:
            kwargs["required"] = remaining
            branch.setdefault("required", []).append("kwargs")
        if kwargs:
            branch["properties"]["kwargs"] = kwargs
        branches.append(branch)
    return branches


def member_schema(job_type: JobType, params: dict, options: dict[str, Any]) -> dict:
    """The submission schema of one job type."""
    properties = {name: copy.deepcopy(params.get("properties", {}).get(name, {})) for name in job_type.positional}
    member = {
        "type": "object",
        "title": f"Submit {job_type.name}",
        "description": job_type.summary,
        "properties": {
            "name": {"const": job_type.name},
            "args": {
                "type": "array",
                "prefixItems": [properties[name] for name in job_type.positional],
                "items": False,
                "description": f"Positional arguments, in order: {', '.join(job_type.positional) or 'none'}.",
            },
            "kwargs": {
                "type": "object",
                "properties": copy.deepcopy(params.get("properties", {})),
                "additionalProperties": False,
                "description": "Arguments by name.",
            },
            **copy.deepcopy(options),
        },
        "required": ["name"],
        "additionalProperties": False,
        "anyOf": _ways_to_pass(job_type, params),
    }
    # Options that exclude each other (the planner's rules), where the submission has them.
    exclusive = [pair for pair in EXCLUSIVE_OPTIONS if all(field in options for field in pair)]
    if exclusive:
        member["not"] = {"anyOf": [{"required": list(pair)} for pair in exclusive]}
    return member


def submission_components(
    base: dict,
    catalog: Mapping[str, JobType],
    config: Mapping[str, Any],
    queues: Iterable[str],
    ref_template: str,
    union: str = "Submission",
) -> dict[str, dict]:
    """The component schemas of a submission union (`union`), its members and their $defs.

    `base` is the generic model's own JSON Schema (SubmitRequest's, or a schedule's job): its
    option fields (everything but name, args and kwargs) are kept, with this server's bounds.
    """
    fields = base["properties"].items()
    options = {name: copy.deepcopy(schema) for name, schema in fields if name not in ARGUMENT_FIELDS}
    for schema in options.values():
        schema.pop("title", None)
    _option_bounds(options, config, queues)
    description = base.get("description", "")
    components: dict[str, dict] = {}
    mapping = {}
    for job_type in catalog.values():
        params = job_type.params.model_json_schema(ref_template=ref_template)
        components.update(params.pop("$defs", {}))
        name = f"{union}_{job_type.name}"
        components[name] = member_schema(job_type, params, options)
        mapping[job_type.name] = REF_PREFIX + name
    components[union] = {
        "title": union,
        "description": description or "A job: its name (see GET /api/functions), its arguments and options.",
        "oneOf": [{"$ref": ref} for ref in mapping.values()],
        "discriminator": {"propertyName": "name", "mapping": mapping},
    }
    return components
