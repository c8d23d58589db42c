"""Settings: saved in the config folder, overridden by ``MITY_COST_*`` environment variables.

An invalid value never stops the app: it is reported in ``Settings.problems`` and the default is
used instead.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from mity_cost.core import paths
from mity_cost.core.atomic import write_json_atomic
from mity_cost.core.money import CURRENCY_SYMBOLS

DisplayCurrency = Literal["USD", "EUR"]

DEFAULT_THRESHOLD = 1.00
DEFAULT_EUR_PER_USD = 0.86
"""Default conversion rate (EUR for one USD), to be set by the user in the settings; shown wherever
a converted amount is."""
DEFAULT_WARNING_LEVELS: tuple[int, ...] = (50, 75, 90, 100)

ENV_THRESHOLD = "MITY_COST_THRESHOLD"
ENV_CURRENCY = "MITY_COST_CURRENCY"
ENV_LLM = "MITY_COST_LLM_ENABLED"

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


@dataclass(frozen=True)
class Settings:
    """What the user chose, after the environment has had its say."""

    threshold: float = DEFAULT_THRESHOLD
    currency: DisplayCurrency = "USD"
    llm_enabled: bool = True
    eur_per_usd: float = DEFAULT_EUR_PER_USD
    roots: tuple[str, ...] = ()
    warning_levels: tuple[int, ...] = DEFAULT_WARNING_LEVELS
    notifications: bool = True
    autostart: bool = False
    env_overrides: frozenset[str] = field(default=frozenset(), compare=False)
    problems: tuple[str, ...] = field(default=(), compare=False)

    @property
    def symbol(self) -> str:
        """``$`` or ``€``."""
        return CURRENCY_SYMBOLS[self.currency]

    def convert(self, amount: float, from_currency: str) -> float:
        """Convert an amount written in ``from_currency`` to the display currency."""
        if from_currency == self.currency:
            return amount
        if from_currency == "USD" and self.currency == "EUR":
            return amount * self.eur_per_usd
        if from_currency == "EUR" and self.currency == "USD":
            return amount / self.eur_per_usd
        return amount

    def conversion_note(self, from_currency: str) -> str | None:
        """What the UI says when it converted, or ``None`` when it did not."""
        if from_currency == self.currency:
            return None
        return f"converted from {from_currency} at 1 USD = {self.eur_per_usd:g} EUR (settings)"

    def to_saved(self) -> dict[str, Any]:
        """The JSON document saved in the config folder."""
        data = asdict(self)
        for key in ("env_overrides", "problems"):
            data.pop(key)
        data["roots"] = list(self.roots)
        data["warning_levels"] = list(self.warning_levels)
        return data


def parse_bool(text: str) -> bool | None:
    """``true/false/1/0/yes/no/on/off`` in any case; ``None`` for anything else."""
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    return None


def parse_amount(text: str) -> float | None:
    """A finite, non-negative number, or ``None``."""
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _saved_settings(data: Mapping[str, Any], problems: list[str]) -> Settings:
    base = Settings()
    values: dict[str, Any] = {}
    threshold = data.get("threshold")
    if threshold is not None:
        amount = parse_amount(str(threshold))
        if amount is None:
            problems.append(f"saved threshold {threshold!r} is not a non-negative number")
        else:
            values["threshold"] = amount
    currency = str(data.get("currency", base.currency)).upper()
    if currency in CURRENCY_SYMBOLS:
        values["currency"] = currency
    else:
        problems.append(f"saved currency {currency!r} is not USD or EUR")
    for key in ("llm_enabled", "notifications", "autostart"):
        if isinstance(data.get(key), bool):
            values[key] = data[key]
    rate = parse_amount(str(data.get("eur_per_usd", base.eur_per_usd)))
    if rate and rate > 0:
        values["eur_per_usd"] = rate
    else:
        problems.append("saved EUR rate is not a positive number")
    roots = data.get("roots", [])
    if isinstance(roots, list):
        values["roots"] = tuple(str(r) for r in roots if isinstance(r, str) and r)
    levels = data.get("warning_levels")
    if isinstance(levels, list):
        clean = sorted({int(v) for v in levels if isinstance(v, int | float) and 0 < v <= 1000})
        if clean:
            values["warning_levels"] = tuple(clean)
    return replace(base, **values)


def load_saved(path: Path | None = None) -> tuple[Settings, list[str]]:
    """The saved settings (defaults when there are none) and what was wrong with them."""
    problems: list[str] = []
    target = path or paths.settings_file()
    try:
        data = json.loads(target.read_bytes())
    except FileNotFoundError:
        return Settings(), problems
    except (OSError, ValueError) as exc:
        problems.append(f"settings file {target} could not be read ({exc}); using defaults")
        return Settings(), problems
    if not isinstance(data, dict):
        problems.append(f"settings file {target} is not a JSON object; using defaults")
        return Settings(), problems
    return _saved_settings(data, problems), problems


def apply_environment(settings: Settings, env: Mapping[str, str]) -> Settings:
    """Let ``MITY_COST_*`` variables win over the saved settings; report invalid values."""
    problems = list(settings.problems)
    overrides: set[str] = set(settings.env_overrides)
    values: dict[str, Any] = {}
    if ENV_THRESHOLD in env:
        amount = parse_amount(env[ENV_THRESHOLD])
        if amount is None:
            problems.append(
                f"{ENV_THRESHOLD}={env[ENV_THRESHOLD]!r} is not a non-negative number; "
                f"using {settings.threshold:.2f}"
            )
        else:
            values["threshold"] = amount
            overrides.add("threshold")
    if ENV_CURRENCY in env:
        currency = env[ENV_CURRENCY].strip().upper()
        if currency in CURRENCY_SYMBOLS:
            values["currency"] = currency
            overrides.add("currency")
        else:
            problems.append(
                f"{ENV_CURRENCY}={env[ENV_CURRENCY]!r} is not USD or EUR; using {settings.currency}"
            )
    if ENV_LLM in env:
        flag = parse_bool(env[ENV_LLM])
        if flag is None:
            problems.append(
                f"{ENV_LLM}={env[ENV_LLM]!r} is not true/false/1/0/yes/no; "
                f"using {str(settings.llm_enabled).lower()}"
            )
        else:
            values["llm_enabled"] = flag
            overrides.add("llm_enabled")
    return replace(settings, **values, env_overrides=frozenset(overrides), problems=tuple(problems))


def load_settings(env: Mapping[str, str] | None = None, path: Path | None = None) -> Settings:
    """Saved settings with the environment applied: what every part of the app uses."""
    saved, problems = load_saved(path)
    saved = replace(saved, problems=tuple(problems))
    return apply_environment(saved, os.environ if env is None else env)


def save_settings(settings: Settings, path: Path | None = None) -> None:
    """Save the settings atomically (environment overrides are not saved as such)."""
    write_json_atomic(path or paths.settings_file(), settings.to_saved(), mode=0o600)
