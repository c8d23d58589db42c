"""Current list prices beside the factory's: genai-prices' bundled snapshot, then the user's overrides.

genai-prices is imported lazily (it takes a few tenths of a second) and only its snapshot bundled in
the wheel is used: mity-cost never starts its ``UpdatePrices`` thread and never reads the snapshot
such a thread may have installed, so no price ever comes from the network.  A price that cannot be
found is *unpriced* (``None``), never $0.  ``PriceBook.price_groups`` sums tokens per model first and
prices each model once (one genai-prices call per model and price tier, not per call).
"""

from __future__ import annotations

import importlib
import json
import math
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from mity_cost.core import paths
from mity_cost.core.factory.documents import ModelName, model_key, model_label
from mity_cost.core.factory.rules import FACTORY_PRICES

GENAI_PRICES = "genai-prices"
MAX_OVERRIDE_BYTES = 1024 * 1024
MTOK = 1_000_000

FACTORY_MODEL_NAMES: dict[str, str] = {
    "gpt52": "gpt-5.2",
    "gpt52pro": "gpt-5.2-pro",
    "gpt5mini": "gpt-5-mini",
    "gpt5nano": "gpt-5-nano",
    "gpt41": "gpt-4.1",
    "gpt41mini": "gpt-4.1-mini",
    "gpt41nano": "gpt-4.1-nano",
    "claudeopus45": "claude-opus-4-5",
    "claudeopus41": "claude-opus-4-1",
    "claudesonnet45": "claude-sonnet-4-5",
    "claudesonnet4": "claude-sonnet-4",
}
"""Each factory variant and the real model name it stands for."""

FACTORY_MODEL_PROVIDERS: dict[str, str] = {
    variant: "openai" if variant.startswith("gpt") else "anthropic" for variant in FACTORY_MODEL_NAMES
}
"""The genai-prices provider of each factory variant."""

_VARIANT_OF_NAME = {name: variant for variant, name in FACTORY_MODEL_NAMES.items()}


def factory_variant(model: ModelName) -> str:
    """The factory's price-table key of a record's model: its variant, or ``"unknown"``."""
    if isinstance(model, str) and model in FACTORY_PRICES and model != "unknown":
        return model
    return "unknown"


@dataclass(frozen=True)
class Quote:
    """The list price of some usage of one model; ``price is None`` means *unpriced* (never $0)."""

    price: float | None
    source: str
    as_of: str | None
    matched_model: str | None
    provider: str | None = None
    note: str = ""

    @property
    def priced(self) -> bool:
        """True when a price was found."""
        return self.price is not None

    def to_json(self) -> dict[str, Any]:
        """camelCase keys; ``price`` is ``null`` when unpriced."""
        return {
            "price": self.price,
            "priced": self.priced,
            "source": self.source,
            "asOf": self.as_of,
            "matchedModel": self.matched_model,
            "provider": self.provider,
            "note": self.note,
        }


@dataclass(frozen=True)
class Rates:
    """One model's list prices in USD per million tokens (the base tier), with where they come from."""

    name: str
    matched_model: str | None
    provider: str | None
    source: str
    as_of: str | None
    input_per_mtok: float
    output_per_mtok: float
    cache_read_per_mtok: float | None = None
    cache_write_per_mtok: float | None = None
    batch_input_per_mtok: float | None = None
    batch_output_per_mtok: float | None = None
    tier_note: str | None = None

    def to_json(self) -> dict[str, Any]:
        """camelCase keys."""
        return {
            "name": self.name,
            "matchedModel": self.matched_model,
            "provider": self.provider,
            "source": self.source,
            "asOf": self.as_of,
            "inputPerMtok": self.input_per_mtok,
            "outputPerMtok": self.output_per_mtok,
            "cacheReadPerMtok": self.cache_read_per_mtok,
            "cacheWritePerMtok": self.cache_write_per_mtok,
            "batchInputPerMtok": self.batch_input_per_mtok,
            "batchOutputPerMtok": self.batch_output_per_mtok,
            "tierNote": self.tier_note,
        }


@dataclass(frozen=True)
class ModelPrice:
    """One model's calls priced in aggregate: the factory's recorded cost beside the list price now."""

    key: str
    label: str
    name: str
    calls: int
    input_tokens: int
    output_tokens: int
    factory_cost: float
    current_cost: float | None
    source: str
    as_of: str | None
    matched_model: str | None
    provider: str | None = None
    note: str = ""

    @property
    def priced(self) -> bool:
        """True when the list price is known."""
        return self.current_cost is not None

    @property
    def difference(self) -> float | None:
        """List price minus the factory's cost (positive: the factory under-records); None if unpriced."""
        return None if self.current_cost is None else self.current_cost - self.factory_cost

    @property
    def difference_percent(self) -> float | None:
        """The difference as a percentage of the factory's cost (None if unpriced or the factory says 0)."""
        diff = self.difference
        if diff is None or self.factory_cost == 0:
            return None
        return diff / self.factory_cost * 100.0

    def to_json(self) -> dict[str, Any]:
        """camelCase keys; ``currentCost`` is ``null`` when unpriced."""
        return {
            "model": self.key,
            "label": self.label,
            "name": self.name,
            "calls": self.calls,
            "inputTokens": self.input_tokens,
            "outputTokens": self.output_tokens,
            "factoryCost": self.factory_cost,
            "currentCost": self.current_cost,
            "difference": self.difference,
            "differencePercent": self.difference_percent,
            "priced": self.priced,
            "source": self.source,
            "asOf": self.as_of,
            "matchedModel": self.matched_model,
            "provider": self.provider,
            "note": self.note,
        }


# --- genai-prices, bundled snapshot only -------------------------------------------------------


@dataclass
class Catalog:
    """genai-prices' bundled price data, loaded once per process."""

    version: str
    dates: tuple[date, ...]
    import_seconds: float
    snapshot: Any
    types: Any
    usage: Any

    @property
    def label(self) -> str:
        """``genai-prices 0.2.3``."""
        return f"{GENAI_PRICES} {self.version}"

    def as_of(self, at: datetime) -> str | None:
        """The data's date: its newest price change in effect at ``at`` (later ones are scheduled)."""
        day = at.astimezone(UTC).date()
        past = [d for d in self.dates if d <= day]
        return past[-1].isoformat() if past else None


_CATALOG: list[Catalog | str] = []
_CATALOG_LOCK = threading.Lock()


def _start_dates(providers: Sequence[Any]) -> tuple[date, ...]:
    """Every price start date in the data, sorted."""
    found: set[date] = set()
    for provider in providers:
        for model in provider.models:
            constraints = [c.constraint for c in model.prices] if isinstance(model.prices, list) else []
            constraints += [v.constraint for v in model.price_variants or ()]
            for constraint in constraints:
                start = getattr(constraint, "start_date", None)
                if isinstance(start, date):
                    found.add(start)
    return tuple(sorted(found))


def catalog() -> Catalog | str:
    """The bundled genai-prices data, or why it could not be loaded (a message)."""
    with _CATALOG_LOCK:
        if not _CATALOG:
            _CATALOG.append(_load_catalog())
    return _CATALOG[0]


def _load_catalog() -> Catalog | str:
    started = time.perf_counter()
    try:
        genai_prices = importlib.import_module("genai_prices")
        data = importlib.import_module("genai_prices.data")
        data_snapshot = importlib.import_module("genai_prices.data_snapshot")
        types = importlib.import_module("genai_prices.types")
    except ImportError as exc:
        return f"{GENAI_PRICES} is not available ({exc})"
    # Our own snapshot of the bundled data: a custom one set by an UpdatePrices thread (which
    # fetches from the network) is never consulted, and no such thread is ever started.
    snapshot = data_snapshot.DataSnapshot(providers=data.providers, from_auto_update=False)
    return Catalog(
        version=str(genai_prices.__version__),
        dates=_start_dates(data.providers),
        import_seconds=time.perf_counter() - started,
        snapshot=snapshot,
        types=types,
        usage=genai_prices.Usage,
    )


def _as_float(value: Any) -> float | None:
    """A Decimal price (or a tiered price's base) as a float."""
    if value is None:
        return None
    base = getattr(value, "base", value)
    return float(base) if isinstance(base, Decimal | int | float) else None


def _tier_starts(model_price: Any) -> tuple[int, ...]:
    """Every input-token threshold where a tiered price changes."""
    starts: set[int] = set()
    for value in vars(model_price).values():
        for tier in getattr(value, "tiers", None) or ():
            starts.add(int(tier.start))
    return tuple(sorted(starts))


def _flatten(cat: Catalog, model_price: Any, input_tokens: int, drop: tuple[str, ...] = ()) -> Any:
    """The prices one call with ``input_tokens`` pays, every tier resolved (so pricing is linear)."""
    flat: dict[str, Any] = {}
    for key, value in vars(model_price).items():
        if key.startswith("_") or key in drop:
            continue
        tiers = getattr(value, "tiers", None)
        if tiers is None:
            flat[key] = value
            continue
        applicable = value.base
        for tier in reversed(tiers):
            if input_tokens > tier.start:
                applicable = tier.price
                break
        flat[key] = applicable
    return cat.types.ModelPrice(**flat)


def _tier_note(cat: Catalog, model_price: Any) -> str | None:
    """``above 200,000 input tokens a call: $6 in / $22.5 out per 1M`` for tiered prices."""
    starts = _tier_starts(model_price)
    if not starts:
        return None
    flat = _flatten(cat, model_price, starts[0] + 1)
    return (
        f"above {starts[0]:,} input tokens a call: ${_fmt(getattr(flat, 'input_mtok', None))} in / "
        f"${_fmt(getattr(flat, 'output_mtok', None))} out per 1M"
    )


def _fmt(value: Any) -> str:
    number = _as_float(value)
    return "?" if number is None else f"{number:g}"


_BATCH = {"processing": "batch"}
_PER_REQUEST = "requests_kcount"


def _batch_active(model: Any, at: datetime) -> bool:
    for variant in model.price_variants or ():
        if variant.when == _BATCH and (variant.constraint is None or variant.constraint.active(at)):
            return True
    return False


# --- overrides -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Override:
    """A user's price for one model, USD per million tokens."""

    input_per_mtok: float
    output_per_mtok: float
    as_of: str | None = None
    cache_read_per_mtok: float | None = None


def _price_field(entry: Mapping[str, Any], name: str, required: bool) -> float | None:
    value = entry.get(name)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"'{name}' must be a number")
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"'{name}' must be a finite number >= 0")
    return number


def load_overrides(path: Path) -> tuple[dict[str, Override], list[str]]:
    """The override file's prices (keys lower-cased) and what is wrong with it; a missing file is fine.

    Entries with a missing or bad price are reported and left out whole (a partial override is
    never mixed with catalogue prices); the good entries are kept.
    """
    problems: list[str] = []
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_OVERRIDE_BYTES + 1)
    except FileNotFoundError:
        return {}, []
    except OSError as exc:
        return {}, [f"price overrides {path}: unreadable ({exc.strerror or exc})"]
    if len(data) > MAX_OVERRIDE_BYTES:
        return {}, [f"price overrides {path}: larger than {MAX_OVERRIDE_BYTES} bytes, ignored"]
    try:
        document = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        return {}, [f"price overrides {path}: not valid JSON ({exc}), ignored"]
    if not isinstance(document, dict):
        return {}, [f"price overrides {path}: expected an object of model -> prices, ignored"]
    overrides: dict[str, Override] = {}
    for raw_key, entry in document.items():
        key = str(raw_key).strip().lower()
        if not key:
            problems.append(f"price overrides {path}: an empty model name, ignored")
            continue
        if not isinstance(entry, dict):
            problems.append(f"price overrides {path}: '{raw_key}' is not an object, ignored")
            continue
        try:
            price_in = _price_field(entry, "input_per_mtok", required=True)
            price_out = _price_field(entry, "output_per_mtok", required=True)
            cache_read = _price_field(entry, "cache_read_per_mtok", required=False)
        except ValueError as exc:
            problems.append(f"price overrides {path}: '{raw_key}': {exc}, ignored")
            continue
        as_of = entry.get("as_of")
        overrides[key] = Override(
            input_per_mtok=price_in or 0.0,
            output_per_mtok=price_out or 0.0,
            as_of=str(as_of) if as_of is not None else None,
            cache_read_per_mtok=cache_read,
        )
    return overrides, problems


# --- the price book ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    """What to look up for a model: its override keys, catalogue name and provider."""

    key: str
    label: str
    name: str
    provider: str | None
    override_keys: tuple[str, ...]


def _target(model: ModelName) -> _Target:
    key = model_key(model)
    label = model_label(model)
    if isinstance(model, str) and model in FACTORY_MODEL_NAMES:
        name = FACTORY_MODEL_NAMES[model]
        return _Target(key, label, name, FACTORY_MODEL_PROVIDERS[model], (model, name))
    name = label.strip()
    provider: str | None = None
    lowered = name.lower()
    keys = [key.lower(), lowered]
    if lowered in _VARIANT_OF_NAME:
        keys.append(_VARIANT_OF_NAME[lowered])
        provider = FACTORY_MODEL_PROVIDERS[_VARIANT_OF_NAME[lowered]]
    return _Target(key, label, name, provider, tuple(dict.fromkeys(keys)))


@dataclass(frozen=True)
class _Resolved:
    """Where a model's price comes from: an override, a catalogue model, or nowhere (a note says why)."""

    source: str
    as_of: str | None
    matched_model: str | None = None
    provider: str | None = None
    override: Override | None = None
    model: Any = None
    provider_info: Any = None
    note: str = ""

    @property
    def priced(self) -> bool:
        return self.override is not None or self.model is not None


@dataclass
class PriceBook:
    """List prices for the factory's models and any name: user overrides first, then genai-prices.

    Build one with ``PriceBook.load()``; it is cheap until the first catalogue price is needed.
    """

    overrides: dict[str, Override] = field(default_factory=dict)
    override_path: Path | None = None
    problems: list[str] = field(default_factory=list)
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    use_catalog: bool = True
    _resolved: dict[str, _Resolved] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, override_path: Path | None = None, *, use_catalog: bool = True) -> PriceBook:
        """The user's override file (``paths.price_override_file()`` by default) and genai-prices."""
        path = override_path if override_path is not None else paths.price_override_file()
        overrides, problems = load_overrides(path)
        return cls(overrides=overrides, override_path=path, problems=problems, use_catalog=use_catalog)

    @property
    def override_source(self) -> str:
        """``user override (<path>)``."""
        return f"user override ({self.override_path})" if self.override_path else "user override"

    def catalog_label(self) -> str:
        """``genai-prices 0.2.3`` or why it is missing."""
        cat = catalog() if self.use_catalog else "genai-prices not used"
        return cat.label if isinstance(cat, Catalog) else cat

    def catalog_as_of(self) -> str | None:
        """The newest price date in genai-prices' bundled data."""
        cat = catalog() if self.use_catalog else None
        return cat.as_of(self.at) if isinstance(cat, Catalog) else None

    def _resolve(self, model: ModelName) -> tuple[_Target, _Resolved]:
        target = _target(model)
        cached = self._resolved.get(target.key)
        if cached is not None:
            return target, cached
        resolved = self._resolve_target(target)
        self._resolved[target.key] = resolved
        return target, resolved

    def _resolve_target(self, target: _Target) -> _Resolved:
        for key in target.override_keys:
            found = self.overrides.get(key)
            if found is not None:
                return _Resolved(self.override_source, found.as_of, matched_model=key, override=found)
        if not self.use_catalog:
            return _Resolved("no price data", None, note=f"no price for '{target.name}'")
        cat = catalog()
        if not isinstance(cat, Catalog):
            return _Resolved(cat, None, note=cat)
        name, provider_id = target.name, target.provider
        if provider_id is None and "/" in name:
            prefix, rest = name.split("/", 1)
            if prefix and rest:
                try:
                    cat.snapshot.find_provider(None, prefix, None)
                except LookupError:
                    pass
                else:
                    name, provider_id = rest, prefix
        try:
            provider, info = cat.snapshot.find_provider_model(name, None, provider_id, None)
        except LookupError:
            return _Resolved(
                cat.label, cat.as_of(self.at), note=f"{cat.label} has no price for '{target.name}'"
            )
        return _Resolved(
            f"{cat.label} ({provider.id})",
            cat.as_of(self.at),
            matched_model=str(info.id),
            provider=str(provider.id),
            model=info,
            provider_info=provider,
        )

    def quote(
        self,
        model: ModelName,
        input_tokens: int,
        output_tokens: int,
        *,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        batch: bool = False,
    ) -> Quote:
        """The list price of one call (or of tokens summed over calls, when pricing is linear).

        ``model`` is a factory variant (``"gpt5mini"``), ``{"unknown": name}`` or any model name.
        ``input_tokens`` includes cached tokens.  With ``batch=True`` only a published batch price
        is used: without one the quote is unpriced.
        """
        if min(input_tokens, output_tokens, cache_read_tokens, cache_write_tokens) < 0:
            raise ValueError("token counts must be >= 0")
        if cache_read_tokens + cache_write_tokens > input_tokens:
            raise ValueError("cached tokens are part of the input tokens and cannot exceed them")
        _, resolved = self._resolve(model)
        if not resolved.priced:
            return Quote(None, resolved.source, resolved.as_of, None, None, resolved.note)
        if resolved.override is not None:
            if batch:
                return self._unpriced_like(resolved, "the override gives no batch price")
            rates = resolved.override
            cache_rate = rates.cache_read_per_mtok
            cached = cache_read_tokens if cache_rate is not None else 0
            price = (
                (input_tokens - cached) * rates.input_per_mtok
                + cached * (cache_rate or 0.0)
                + output_tokens * rates.output_per_mtok
            ) / MTOK
            return Quote(price, resolved.source, resolved.as_of, resolved.matched_model, None, "")
        cat = catalog()
        assert isinstance(cat, Catalog)
        if batch and not _batch_active(resolved.model, self.at):
            return self._unpriced_like(resolved, f"{cat.label} has no batch price for this model")
        usage = cat.usage(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cache_read_tokens=cache_read_tokens or None,
            cache_write_tokens=cache_write_tokens or None,
        )
        try:
            calc = resolved.model.calc_price(
                usage,
                resolved.provider_info,
                genai_request_timestamp=self.at,
                price_context=_BATCH if batch else None,
            )
        except ValueError as exc:
            return self._unpriced_like(resolved, f"{cat.label} could not price it ({exc})")
        return Quote(
            float(calc.total_price),
            resolved.source,
            resolved.as_of,
            resolved.matched_model,
            resolved.provider,
            "",
        )

    @staticmethod
    def _unpriced_like(resolved: _Resolved, note: str) -> Quote:
        return Quote(None, resolved.source, resolved.as_of, resolved.matched_model, resolved.provider, note)

    def rates(self, model: ModelName) -> Rates | None:
        """The model's list prices per million tokens, or None when unpriced."""
        target, resolved = self._resolve(model)
        if resolved.override is not None:
            found = resolved.override
            return Rates(
                target.name,
                resolved.matched_model,
                None,
                resolved.source,
                resolved.as_of,
                found.input_per_mtok,
                found.output_per_mtok,
                cache_read_per_mtok=found.cache_read_per_mtok,
            )
        if resolved.model is None:
            return None
        cat = catalog()
        assert isinstance(cat, Catalog)
        info = resolved.model
        standard = info.get_prices(self.at)
        batch = info.get_prices(self.at, _BATCH) if _batch_active(info, self.at) else None
        return Rates(
            target.name,
            resolved.matched_model,
            resolved.provider,
            resolved.source,
            resolved.as_of,
            _as_float(getattr(standard, "input_mtok", None)) or 0.0,
            _as_float(getattr(standard, "output_mtok", None)) or 0.0,
            cache_read_per_mtok=_as_float(getattr(standard, "cache_read_mtok", None)),
            cache_write_per_mtok=_as_float(getattr(standard, "cache_write_mtok", None)),
            batch_input_per_mtok=_as_float(getattr(batch, "input_mtok", None)) if batch else None,
            batch_output_per_mtok=_as_float(getattr(batch, "output_mtok", None)) if batch else None,
            tier_note=_tier_note(cat, standard),
        )

    def describe(self, model: ModelName) -> Quote:
        """Where the model's price comes from, without pricing anything (``price`` is None)."""
        _, resolved = self._resolve(model)
        return Quote(
            None, resolved.source, resolved.as_of, resolved.matched_model, resolved.provider, resolved.note
        )

    def price_groups(self, records: Iterable[Mapping[str, Any]]) -> list[ModelPrice]:
        """Price records per model in aggregate: tokens summed per model (and price tier), one call each.

        Each group carries the factory's recorded cost (the sum of the records' ``cost``), the list
        price now (None when unpriced) and their difference.  Most expensive (factory cost) first.
        """
        groups: dict[str, list[Any]] = {}
        for record in records:
            model = record["model"]
            key = model_key(model)
            slot = groups.get(key)
            if slot is None:
                slot = groups[key] = [model, 0, 0, 0, 0.0, []]
            slot[1] += 1
            slot[2] += record["inputTokens"]
            slot[3] += record["outputTokens"]
            slot[4] += record["cost"]
            slot[5].append((record["inputTokens"], record["outputTokens"]))
        priced = [self._price_group(key, *slot) for key, slot in groups.items()]
        return sorted(priced, key=lambda g: (-g.factory_cost, g.label))

    def _price_group(
        self,
        key: str,
        model: ModelName,
        calls: int,
        input_tokens: int,
        output_tokens: int,
        factory_total: float,
        per_call: list[tuple[int, int]],
    ) -> ModelPrice:
        target, resolved = self._resolve(model)
        current: float | None
        note = resolved.note
        if resolved.override is not None:
            current = self.quote(model, input_tokens, output_tokens).price
        elif resolved.model is not None:
            current, note = self._aggregate_catalog_price(resolved, per_call, input_tokens, output_tokens)
        else:
            current = None
        return ModelPrice(
            key=key,
            label=target.label,
            name=target.name,
            calls=calls,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            factory_cost=factory_total,
            current_cost=current,
            source=resolved.source,
            as_of=resolved.as_of,
            matched_model=resolved.matched_model,
            provider=resolved.provider,
            note=note,
        )

    def _aggregate_catalog_price(
        self, resolved: _Resolved, per_call: list[tuple[int, int]], input_tokens: int, output_tokens: int
    ) -> tuple[float | None, str]:
        cat = catalog()
        assert isinstance(cat, Catalog)
        standard = resolved.model.get_prices(self.at)
        starts = _tier_starts(standard)
        calls = len(per_call)
        if not starts:
            buckets: dict[int, list[int]] = {0: [calls, input_tokens, output_tokens]}
        else:
            buckets = {}
            for tokens_in, tokens_out in per_call:
                bucket = sum(1 for start in starts if tokens_in > start)
                slot = buckets.setdefault(bucket, [0, 0, 0])
                slot[0] += 1
                slot[1] += tokens_in
                slot[2] += tokens_out
        per_request = _as_float(getattr(standard, _PER_REQUEST, None))
        total = 0.0
        try:
            for bucket, (bucket_calls, tokens_in, tokens_out) in buckets.items():
                # A call size inside the bucket selects the bucket's tier prices; a price per request
                # is charged per call, not once for the summed tokens.
                representative = starts[bucket - 1] + 1 if bucket else 0
                flat = _flatten(cat, standard, representative, drop=(_PER_REQUEST,))
                usage = cat.usage(input_tokens=tokens_in, output_tokens=tokens_out)
                total += float(flat.calc_price(usage)["total_price"])
                if per_request:
                    total += bucket_calls * per_request / 1000.0
        except ValueError as exc:
            return None, f"{cat.label} could not price it ({exc})"
        note = "" if len(buckets) <= 1 else f"priced per call size: {len(buckets)} price tiers used"
        return total, note
