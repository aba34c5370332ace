"""What an ensemble is, parsed from ``--model`` and checked against the catalogue.

Syntax (shell-safe: no ``*``, ``(``, ``[`` or spaces)::

    [COMBINER/]MEMBER+MEMBER[+MEMBER…]     MEMBER = NAME[:WEIGHT][@STEM,STEM…]

* ``htdemucs_ft+mdx_extra``: every stem is the average of the two models;
* ``htdemucs_ft:2+mdx_extra``: weighted average (2/3 and 1/3);
* ``max-spec/htdemucs_ft+mdx_extra``, ``min-spec/…``: per STFT bin, the
  estimate with the largest (smallest) magnitude;
* ``htdemucs_ft@drums,bass+htdemucs_6s``: a member gives only the stems named
  after ``@``; each stem is combined over the members that give it, so here
  drums and bass are averaged and guitar and piano come from htdemucs_6s alone.

A preset name (``presets.py``) stands for its definition. The stems of an
ensemble are the union of its members' stems, in the order the members name
them; ``no_X`` is the mix minus the ensemble's ``X``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from soundforge.engines.local.catalog import MODELS, ModelSpec, get_spec, resolve_outputs
from soundforge.engines.local.ensemble.presets import PRESETS
from soundforge.errors import InvalidOptionError

AVERAGE = "average"
MAX_SPEC = "max-spec"
MIN_SPEC = "min-spec"
COMBINERS: tuple[str, ...] = (AVERAGE, MAX_SPEC, MIN_SPEC)

EXAMPLE = "htdemucs_ft+mdx_extra, htdemucs_ft:2+mdx_extra or max-spec/htdemucs_ft+mdx_extra"


@dataclass(frozen=True)
class EnsembleMember:
    model: str
    weight: float = 1.0
    # The stems this member contributes; None = every stem of the model.
    only: tuple[str, ...] | None = None

    @property
    def stems(self) -> tuple[str, ...]:
        return self.only if self.only is not None else get_spec(self.model).stems

    def text(self) -> str:
        out = self.model
        if self.weight != 1.0:
            out += f":{self.weight:g}"
        if self.only is not None:
            out += "@" + ",".join(self.only)
        return out


@dataclass(frozen=True)
class EnsembleSpec:
    members: tuple[EnsembleMember, ...]
    combiner: str = AVERAGE
    preset: str | None = None  # the preset's name when it came from one

    @property
    def definition(self) -> str:
        """Canonical text of the ensemble: what the job key and the result record."""
        body = "+".join(member.text() for member in self.members)
        return body if self.combiner == AVERAGE else f"{self.combiner}/{body}"

    @property
    def name(self) -> str:
        return self.preset or self.definition

    @property
    def stems(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s for member in self.members for s in member.stems))

    def givers(self, stem: str) -> tuple[EnsembleMember, ...]:
        """The members whose estimates make ``stem``."""
        return tuple(member for member in self.members if stem in member.stems)

    def needs(self, outputs: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
        """member model → the sources it must estimate for ``outputs`` (members
        that give none of them are left out, and are neither loaded nor run)."""
        wanted = [name[3:] if name.startswith("no_") else name for name in outputs]
        needs: dict[str, tuple[str, ...]] = {}
        for member in self.members:
            mine = tuple(dict.fromkeys(s for s in wanted if s in member.stems))
            if mine:
                needs[member.model] = mine
        return needs

    def as_model_spec(self) -> ModelSpec:
        """The ensemble's name and stems in the catalogue's shape, so the
        catalogue's own rules (``resolve_outputs``) apply to it unchanged."""
        return replace(get_spec(self.members[0].model), name=self.name, stems=self.stems)


def is_ensemble(model: str) -> bool:
    """Whether ``--model`` names an ensemble (a preset or a ``+`` definition)."""
    return model in PRESETS or "+" in model or "/" in model


def parse_ensemble(text: str) -> EnsembleSpec:
    """The ensemble ``text`` names, checked against the catalogue; an
    ``InvalidOptionError`` that says what to write instead otherwise."""
    text = text.strip()
    preset = PRESETS.get(text)
    spec = _parse(preset.definition if preset else text, text)
    spec = replace(spec, preset=preset.name if preset else None)
    check_compatible(spec)
    return spec


def _parse(definition: str, typed: str) -> EnsembleSpec:
    combiner = AVERAGE
    body = definition
    if "/" in definition:
        combiner, _, body = definition.partition("/")
        if combiner not in COMBINERS:
            raise InvalidOptionError(
                f"Unknown ensemble combiner {combiner!r} in {typed!r}: use "
                f"{', '.join(COMBINERS)} before the slash, e.g. max-spec/htdemucs+htdemucs_ft."
            )
    parts = body.split("+")
    if any(not part.strip() for part in parts):
        raise InvalidOptionError(
            f"Ensemble {typed!r} has an empty member: join model names with one '+', "
            f"e.g. {EXAMPLE}."
        )
    members = tuple(_member(part.strip(), typed) for part in parts)
    if len(members) < 2:
        raise InvalidOptionError(
            f"An ensemble needs two or more models; {typed!r} names one. For one model, "
            f"use --model {members[0].model}; for an ensemble, e.g. {EXAMPLE}."
        )
    seen: set[str] = set()
    for member in members:
        if member.model in seen:
            raise InvalidOptionError(
                f"Model {member.model} appears twice in ensemble {typed!r}: name each model "
                f"once, and give it a weight ({member.model}:2) to count it more."
            )
        seen.add(member.model)
    if combiner != AVERAGE and any(member.weight != 1.0 for member in members):
        raise InvalidOptionError(
            f"Weights apply to the average only; {combiner} picks one estimate per "
            f"frequency bin. Remove the weights from {typed!r} or drop '{combiner}/'."
        )
    return EnsembleSpec(members, combiner)


def _member(text: str, typed: str) -> EnsembleMember:
    head, at, stem_text = text.partition("@")
    name, colon, weight_text = head.partition(":")
    name = name.strip()
    if name in PRESETS:
        raise InvalidOptionError(
            f"{name} is an ensemble preset; an ensemble's members must be models "
            f"({', '.join(MODELS)})."
        )
    if name not in MODELS:
        raise InvalidOptionError(
            f"Unknown model {name!r} in ensemble {typed!r}. Choose each member from: "
            f"{', '.join(MODELS)}."
        )
    weight = 1.0
    if colon:
        try:
            weight = float(weight_text)
        except ValueError:
            weight = math.nan
        if not math.isfinite(weight) or weight <= 0:
            raise InvalidOptionError(
                f"The weight of {name} in ensemble {typed!r} is {weight_text!r}; it must be "
                f"a positive number, e.g. {name}:2."
            )
    only: tuple[str, ...] | None = None
    if at:
        only = tuple(dict.fromkeys(s.strip() for s in stem_text.split(",") if s.strip()))
        model_stems = get_spec(name).stems
        if not only:
            raise InvalidOptionError(
                f"{name}@ in ensemble {typed!r} names no stem: list the stems it gives after "
                f"'@', e.g. {name}@{','.join(model_stems[:2])}."
            )
        for stem in only:
            if stem not in model_stems:
                raise InvalidOptionError(
                    f"Model {name} has no stem {stem!r} (in ensemble {typed!r}); its stems "
                    f"are {', '.join(model_stems)}."
                )
    return EnsembleMember(name, weight, only)


def check_compatible(spec: EnsembleSpec) -> None:
    """One decoding pass feeds every member, so they must hear the mix at the
    same sample rate and channel count."""
    rates = {member.model: get_spec(member.model).sample_rate for member in spec.members}
    if len(set(rates.values())) > 1:
        raise InvalidOptionError(ensemble_rate_message(spec.name, rates))


def ensemble_rate_message(name: str, rates: dict[str, int]) -> str:
    listed = ", ".join(f"{model} {rate} Hz" for model, rate in rates.items())
    return (
        f"The models of ensemble {name} work at different sample rates ({listed}); an "
        "ensemble runs them on one stream of the mix, so combine models of the same rate."
    )


def ensemble_outputs(
    spec: EnsembleSpec, stems: tuple[str, ...] | None, two_stems: str | None
) -> tuple[str, ...]:
    """The stem files a request of this ensemble produces (``resolve_outputs``'
    rules, with a message that names the members)."""
    given = spec.stems
    for stem in ((two_stems,) if two_stems is not None else stems) or ():
        if stem not in given:
            raise InvalidOptionError(
                f"No model of ensemble {spec.name} gives stem {stem!r}; its stems are "
                f"{', '.join(given)}. Add a model that gives it (htdemucs_6s has guitar "
                "and piano), or ask for another stem."
            )
    return resolve_outputs(spec.as_model_spec(), stems, two_stems)


def check_segment(spec: EnsembleSpec, segment: float | None) -> None:
    """``--segment`` applies to every member: each must take it."""
    if segment is None:
        return
    for member in spec.members:
        limit = get_spec(member.model).max_segment
        if limit is not None and segment > limit:
            raise InvalidOptionError(
                f"Option 'segment' is {segment:g} s; {member.model} (in ensemble {spec.name}) "
                f"allows at most {limit:g} s. Use a shorter segment or none."
            )


def check_ensemble_request(
    model: str, stems: tuple[str, ...] | None, two_stems: str | None, segment: float | None
) -> EnsembleSpec:
    """Everything about an ensemble request that can be checked before a job
    exists: members, combiner, sample rates, stems and segment."""
    spec = parse_ensemble(model)
    ensemble_outputs(spec, stems, two_stems)
    check_segment(spec, segment)
    return spec
