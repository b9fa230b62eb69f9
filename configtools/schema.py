"""The providers file against the models that read it: unknown and deprecated keys, provider types, limits,
duplicate names, capability typos and every value the models refuse, all at once, each with its line.

The keys known at each place come from the pydantic models themselves (`SwitchboardConfig`, each provider
type's `config_model`, and the models nested in them), so a key added to a model is known here at once and
there is no second list to keep in step.
"""

from __future__ import annotations

import re
import types
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from configtools.problems import Fix, Path_, Problem, ProblemKind, field_name
from configtools.similar import close_matches, did_you_mean
from configtools.source import Source
from providers import TASK_TYPES, Limits, ProviderConfig, VendorBatchSettings
from routing import ConfigError, SwitchboardConfig, parse_config, provider_class, provider_type_names

# `1000/hour`, `1000 per hour`, `50/min`, `2000/d`: the seed plan's way of writing a limit.
_RATE = re.compile(
    r"^\s*(\d+(?:\.\d+)?)\s*(?:/|per)\s*(minute|min|m|hour|hr|h|day|d)\s*$",
    re.IGNORECASE,
)
_UNITS = {"minute": "minute", "min": "minute", "m": "minute", "hour": "hour", "hr": "hour", "h": "hour"}
_UNITS |= {"day": "day", "d": "day"}
# Keys older setups used, and what they are now: (new key, how the value converts: None keeps it).
_RENAMED = {"cli_path": "executable", "claude_cli_path": "executable"}
_HINTS = {
    "missing": "add it",
    "int_parsing": "write a whole number",
    "int_from_float": "write a whole number",
    "float_parsing": "write a number",
    "bool_parsing": "write true or false",
    "literal_error": "use one of the values listed",
    "string_type": "write text",
    "list_type": "write a list, e.g. [a, b]",
    "dict_type": "write a mapping of keys to values",
    "model_type": "write a mapping of keys to values",
    "too_short": "add at least one",
}


def rate(text: str) -> tuple[float, str] | None:
    """(`1000`, `hour`) for `1000/hour` and its spellings; None for anything else."""
    match = _RATE.match(text)
    if match is None:
        return None
    amount = float(match.group(1))
    return amount, _UNITS[match.group(2).lower()]


def _number(amount: float) -> int | float:
    return int(amount) if amount == int(amount) else amount


@dataclass
class _Check:
    source: Source
    problems: list[Problem] = field(default_factory=list)
    # Paths already reported, so the models' own error for the same place is not shown twice.
    reported: set[Path_] = field(default_factory=set)
    capabilities: list[tuple[Path_, str]] = field(default_factory=list)

    def add(self, path: Path_, kind: ProblemKind, message: str, hint: str = "", fix: Fix | None = None) -> None:
        self.reported.add(path)
        self.problems.append(
            Problem(
                file=str(self.source.path),
                line=self.source.line(path),
                field=field_name(path),
                kind=kind,
                message=message,
                hint=hint,
                fix=fix,
            )
        )

    def covered(self, path: Path_) -> bool:
        return any(path[: len(done)] == done for done in self.reported)


def check_document(source: Source) -> tuple[SwitchboardConfig | None, list[Problem]]:
    """Every problem of the file itself (not of the environment), and the config when there is none."""
    check = _Check(source)
    check.problems.extend(source.problems)
    data = source.data
    if data is None:
        return None, check.problems
    top_fields = _fields(SwitchboardConfig)
    for key in data:
        if str(key) not in top_fields:
            _unknown_key(check, SwitchboardConfig, str(key), data[key], (), top_fields, data)
    for key, value in data.items():
        if str(key) in top_fields and key != "providers":
            _walk(check, top_fields[str(key)], value, (str(key),))
    valid = _check_providers(check, data.get("providers"), "providers" in data)
    _check_top_values(check, data, top_fields, valid)
    _check_capabilities(check)
    config = None
    if not check.problems:
        config = _final_config(check, data)
    return config, sorted(check.problems, key=lambda p: (p.line or 0, p.field))


def _final_config(check: _Check, data: dict[str, Any]) -> SwitchboardConfig | None:
    # The routing package's own reader, as every command uses it: what passes here is exactly what runs.
    try:
        return parse_config(data, str(check.source.path))
    except ConfigError as exc:  # a rule this module does not know yet: still reported, with its field
        for text in exc.problems:
            where, _, message = text.partition(": ")
            check.problems.append(
                Problem(
                    file=str(check.source.path),
                    line=check.source.line(tuple(where.split("."))),
                    field=where,
                    kind="invalid_value",
                    message=message,
                    hint="see README, Providers file",
                )
            )
        return None


# --- providers -------------------------------------------------------------------------------------------------


def _check_providers(check: _Check, raw: Any, given: bool) -> dict[str, ProviderConfig]:
    valid: dict[str, ProviderConfig] = {}
    if not given:
        check.add(
            ("providers",),
            "invalid_value",
            "missing: the file names no providers",
            "add `providers:` with at least one provider (`switchboard init` writes one)",
        )
        return valid
    if not isinstance(raw, dict) or not raw:
        check.add(
            ("providers",),
            "invalid_value",
            "must be a mapping of provider names to their settings, with at least one provider",
            "write `providers:` then one indented `name: {type: ...}` per provider",
        )
        return valid
    types_known = provider_type_names()
    for name, settings in raw.items():
        path: Path_ = ("providers", str(name))
        if not isinstance(settings, dict):
            check.add(path, "invalid_value", "must be a mapping of settings", "write `type:` and its keys under it")
            continue
        caps = settings.get("capabilities")
        if isinstance(caps, list):
            check.capabilities += [((*path, "capabilities", i), c) for i, c in enumerate(caps) if isinstance(c, str)]
        type_name = settings.get("type")
        if not type_name:
            check.add(
                (*path, "type"),
                "invalid_value",
                "missing: every provider needs a type",
                f"add `type:` with one of {', '.join(types_known)}",
            )
            continue
        try:
            model = provider_class(str(type_name)).config_model
        except KeyError:
            matches = close_matches(str(type_name), types_known)
            fix = None
            if len(matches) == 1:
                fix = Fix(path=(*path, "type"), value=matches[0], set_value=True, summary=f"type: {matches[0]}")
            check.add(
                (*path, "type"),
                "unknown_type",
                f"unknown provider type {type_name!r}{did_you_mean(str(type_name), types_known)}",
                f"write `type: {matches[0]}`"
                if len(matches) == 1
                else f"use one of {', '.join(types_known)} (or install the package that provides {type_name!r})",
                fix,
            )
            continue
        except (TypeError, ImportError) as exc:
            check.add((*path, "type"), "unknown_type", f"provider type {type_name!r} cannot be loaded: {exc}")
            continue
        before = len(check.problems)
        _walk(check, model, settings, path)
        try:
            parsed = model.model_validate(settings)
        except ValidationError as exc:
            _model_errors(check, exc, settings, path)
            continue
        if len(check.problems) == before:
            valid[str(name)] = parsed
    return valid


def _check_top_values(
    check: _Check, data: dict[str, Any], top_fields: Mapping[str, Any], valid: dict[str, ProviderConfig]
) -> None:
    known = {k: v for k, v in data.items() if str(k) in top_fields and k != "providers"}
    # The providers were checked one by one above; a stand-in lets the rest be checked even when none is valid.
    stand_in = valid or {"_": provider_class("local_mock").config_model.model_validate({"type": "local_mock"})}
    try:
        SwitchboardConfig.model_validate({**known, "providers": stand_in})
    except ValidationError as exc:
        _model_errors(check, exc, data, ())


def _model_errors(check: _Check, exc: ValidationError, data: Any, base: Path_) -> None:
    for error in exc.errors():
        if error["type"] == "extra_forbidden":  # reported by the walk, with a did-you-mean
            continue
        path = (*base, *_data_path(data, error["loc"]))
        if check.covered(path) and error["type"] != "missing":
            continue
        if error["type"] == "value_error" and "names must be unique" in error["msg"]:
            continue  # duplicate names are reported by the walk, each with its line
        got = error.get("input")
        shown = f" (got {got!r})" if error["type"] != "missing" and not isinstance(got, dict | list) else ""
        message = error["msg"].removeprefix("Value error, ")
        hint = _HINTS.get(error["type"], "")
        if error["type"] == "missing":
            message, hint = "missing: this key is required", f"add `{path[-1]}:`"
        if not hint and error["type"].startswith(("greater", "less")):
            hint = "use a value that is " + error["msg"].removeprefix("Input should be ")
        check.add(path, "invalid_value", f"{message}{shown}", hint or "see docs/providers.md for this key's values")


def _data_path(data: Any, loc: Sequence[str | int]) -> Path_:
    """The part of a pydantic error location that names places in the data (union member tags dropped);
    a missing key's name is kept."""
    path: list[str | int] = []
    current = data
    for part in loc:
        if isinstance(current, dict) and (part in current or str(part) in current):
            current = current[part] if part in current else current[str(part)]
            path.append(part)
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            current = current[part]
            path.append(part)
        elif isinstance(current, dict) and isinstance(part, str) and part.isidentifier():
            path.append(part)
            break
    return tuple(path)


# --- the walk over the models' fields ----------------------------------------------------------------------------


def _fields(model: type[BaseModel]) -> dict[str, Any]:
    """The keys a model reads (aliases where it has them) and each one's annotation; excluded fields are not
    written in files."""
    return {
        (info.alias or name): info.annotation for name, info in model.model_fields.items() if info.exclude is not True
    }


def _nested(annotation: Any) -> Iterator[tuple[str, type[BaseModel]]]:
    """The models a field's value holds: ("model", M), ("list", M) or ("dict", M)."""
    origin = get_origin(annotation)
    if origin is Annotated:
        yield from _nested(get_args(annotation)[0])
    elif origin in (Union, types.UnionType):
        for arg in get_args(annotation):
            yield from _nested(arg)
    elif origin in (list, tuple, set, frozenset, Sequence):
        for kind, model in _nested((get_args(annotation) or (Any,))[0]):
            if kind == "model":
                yield "list", model
    elif origin in (dict, Mapping):
        args = get_args(annotation)
        for kind, model in _nested(args[1] if len(args) == 2 else Any):
            if kind == "model":
                yield "dict", model
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield "model", annotation


def _walk(check: _Check, annotation: Any, value: Any, path: Path_) -> None:
    for kind, model in _nested(annotation):
        if kind == "model":
            _walk_model(check, model, value, path)
        elif kind == "list" and isinstance(value, list):
            _duplicate_names(check, value, path)
            for index, item in enumerate(value):
                _walk_model(check, model, item, (*path, index))
        elif kind == "dict" and isinstance(value, dict):
            for key, item in value.items():
                _walk_model(check, model, item, (*path, str(key)))


def _walk_model(check: _Check, model: type[BaseModel], value: Any, path: Path_) -> None:
    if issubclass(model, Limits):
        _check_limits(check, value, path)
    if issubclass(model, VendorBatchSettings) and isinstance(value, bool):
        entry = {"enabled": value}
        check.add(
            path,
            "invalid_value",
            f"{path[-1]}: {str(value).lower()} is not how the batch API is turned on: it is a mapping of settings",
            f"write `{path[-1]}: {{enabled: {str(value).lower()}}}` (other keys: {', '.join(_fields(model))})",
            Fix(path=path, value=entry, set_value=True, summary=f"{path[-1]}: {entry}"),
        )
    if not isinstance(value, dict):
        return
    fields = _fields(model)
    for key, item in value.items():
        key = str(key)
        if (*path, key) in check.reported:
            continue
        if key not in fields:
            _unknown_key(check, model, key, item, path, fields, value)
        else:
            _walk(check, fields[key], item, (*path, key))


def _unknown_key(
    check: _Check,
    model: type[BaseModel],
    key: str,
    value: Any,
    path: Path_,
    fields: Mapping[str, Any],
    siblings: Mapping[str, Any] | None = None,
) -> None:
    here = (*path, key)
    given = siblings or {}
    place = "the top level" if not path else field_name(path)
    if key in _RENAMED and _RENAMED[key] in fields and _RENAMED[key] not in given:
        new = _RENAMED[key]
        check.add(
            here,
            "deprecated_key",
            f"{key!r} is an older name for {new!r}",
            f"rename it to {new!r}",
            Fix(path=here, key=new, summary=f"{key} -> {new}"),
        )
        return
    if key == "rate_limit" and "limits" in fields and "limits" not in given and isinstance(value, str) and rate(value):
        amount, unit = rate(value) or (0.0, "")
        new_value = {f"requests_per_{unit}": _number(amount)}
        check.add(
            here,
            "deprecated_key",
            f"the older `rate_limit: {value}`; limits are now a mapping of counts per window",
            f"write `limits: {{requests_per_{unit}: {_number(amount)}}}`",
            Fix(path=here, key="limits", value=new_value, set_value=True, summary="rate_limit -> limits"),
        )
        return
    if key == "rate_limit" and isinstance(value, str) and rate(value) and "limits" in given:
        amount, unit = rate(value) or (0.0, "")
        check.add(
            here,
            "deprecated_key",
            f"the older `rate_limit: {value}`, beside `limits`",
            f"add `requests_per_{unit}: {_number(amount)}` to `limits` and remove `rate_limit`",
        )
        return
    if key in ("api_keys", "api_key", "keys"):
        check.add(
            here,
            "unknown_key",
            "key values do not belong in the providers file",
            "put each key in an env var and name it with `api_key_env:` (or `subscriptions:` with one `api_key_env` "
            "each); `switchboard config migrate` does this for older files",
        )
        return
    matches = close_matches(key, fields)
    fix = Fix(path=here, key=matches[0], summary=f"{key} -> {matches[0]}") if len(matches) == 1 else None
    hint = (
        f"rename it to {matches[0]!r}" if len(matches) == 1 else f"remove it; known keys: {', '.join(sorted(fields))}"
    )
    if fix is not None and matches[0] in given:  # the right key is there already: a rename would make a duplicate
        fix, hint = None, f"merge it into {matches[0]!r}, which is also given, and remove it"
    check.add(here, "unknown_key", f"unknown key {key!r} in {place}{did_you_mean(key, fields)}", hint, fix)


def _check_limits(check: _Check, value: Any, path: Path_) -> None:
    fields = _fields(Limits)
    if isinstance(value, str):
        parsed = rate(value)
        if parsed is None:
            return  # the model's error says a mapping is needed
        amount, unit = parsed
        entry = {f"requests_per_{unit}": _number(amount)}
        check.add(
            path,
            "bad_limit",
            f"{value!r} is not how limits are written: they are a mapping of counts per window",
            f"write `{path[-1]}: {{requests_per_{unit}: {_number(amount)}}}`",
            Fix(path=path, value=entry, set_value=True, summary=f"{path[-1]}: {entry}"),
        )
        return
    if not isinstance(value, dict):
        return
    for key, item in value.items():
        key = str(key)
        if not isinstance(item, str):
            continue
        parsed = rate(item)
        measure = key.split("_per_")[0] if "_per_" in key else "requests"
        if parsed is None:
            check.add(
                (*path, key),
                "bad_limit",
                f"{item!r} is not a number",
                f"write a count, e.g. `requests_per_hour: 1000` (keys: {', '.join(fields)})",
            )
            continue
        amount, unit = parsed
        target = f"{measure}_per_{unit}" if f"{measure}_per_{unit}" in fields else f"requests_per_{unit}"
        if target in value and target != key:
            fix = None
        else:
            renamed = target if target != key else None
            fix = Fix(
                path=(*path, key),
                key=renamed,
                value=_number(amount),
                set_value=True,
                summary=f"{target}: {_number(amount)}",
            )
        check.add(
            (*path, key),
            "bad_limit",
            f"{item!r}: a limit is a count, its window is in the key",
            f"write `{target}: {_number(amount)}`",
            fix,
        )


def _duplicate_names(check: _Check, items: list[Any], path: Path_) -> None:
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            continue
        name = item["name"]
        if name in seen:
            first = check.source.line((*path, seen[name], "name"))
            check.add(
                (*path, index, "name"),
                "duplicate",
                f"the name {name!r} is used twice (first at line {first})",
                "give each one a name of its own",
            )
        else:
            seen[name] = index


def _check_capabilities(check: _Check) -> None:
    """A capability one typo away from a task type Switchboard knows, or from one the file uses more often."""
    counts = Counter(cap for _, cap in check.capabilities)
    first_line = {}
    for path, cap in check.capabilities:
        first_line.setdefault(cap, check.source.line(path) or 0)
    for path, cap in check.capabilities:
        if cap in TASK_TYPES:
            continue
        known = close_matches(cap, TASK_TYPES)
        if not known:
            used = [
                other
                for other in close_matches(cap, counts)
                if other not in TASK_TYPES and (counts[other], -first_line[other]) > (counts[cap], -first_line[cap])
            ]
            known = used
        if not known:
            continue
        fix = (
            Fix(path=path, value=known[0], set_value=True, summary=f"{cap} -> {known[0]}") if len(known) == 1 else None
        )
        check.add(
            path,
            "capability",
            f"{cap!r} is not a task type Switchboard knows or this file uses elsewhere{did_you_mean(cap, known)}",
            f"rename it to {known[0]!r}" if len(known) == 1 else "use the task type your batches give",
            fix,
        )


__all__ = ["check_document", "rate"]
