"""Budgets: how much may be spent, on what, per period, and what happens when it is.

A budget has a *scope* (``overall``, or one ``app`` / ``session`` / ``agent`` / ``model`` /
``provider``), a *period* (the ``session``, or the calendar ``day`` / ``week`` (ISO, from Monday) /
``month`` in the history's time zone), an amount in a currency and an *enforcement*: ``warn`` (alerts
only), ``require_confirmation`` (the gate asks, the tray shows its dialog) or ``hard_stop`` (the gate
and ``check-threshold`` refuse).  Budgets nest: everything lives inside the ``overall`` budgets, and a
session inside its app's budgets; :func:`tightest` picks the one with the least left.

Budgets are kept as JSON in ``config_dir()/budgets.json`` (written atomically under a lock); spending
comes from the history (:mod:`mity_cost.core.spending.history`), and the running session's ledger when given.
A budget whose spending includes records no current price is known for ("unpriced") cannot be
trusted: the gate asks instead of passing.

Stdlib only.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, cast

from mity_cost.core import paths
from mity_cost.core.atomic import locked, write_json_atomic
from mity_cost.core.factory.figures import CATEGORIES, Ledger
from mity_cost.core.figures.totals import session_total
from mity_cost.core.gate.thresholds import Level, clean_levels, crossed, level_for
from mity_cost.core.money import Range, money_in
from mity_cost.core.settings import DEFAULT_EUR_PER_USD, DEFAULT_WARNING_LEVELS, DisplayCurrency, Settings
from mity_cost.core.spending.history import (
    CURRENCIES,
    AppResolver,
    History,
    Totals,
    model_text,
    model_value,
    rates_for,
)

if TYPE_CHECKING:
    from mity_cost.core.live.snapshot import Snapshot
    from mity_cost.core.spending.history import Dimension

Scope = Literal["overall", "app", "session", "agent", "model", "provider"]
Period = Literal["session", "day", "week", "month"]
Enforcement = Literal["warn", "require_confirmation", "hard_stop"]
Action = Literal["pass", "ask", "refuse"]

SCOPES: tuple[str, ...] = ("overall", "app", "session", "agent", "model", "provider")
PERIODS: tuple[str, ...] = ("session", "day", "week", "month")
ENFORCEMENTS: tuple[str, ...] = ("warn", "require_confirmation", "hard_stop")
FILE_VERSION = 1
APPROVAL_STEP = 0.10
"""An approved ask covers the spending asked for plus this fraction of the budget; then it asks again."""


class BudgetError(ValueError):
    """A budget that makes no sense (unknown scope, negative amount, missing target...)."""


@dataclass(frozen=True)
class Budget:
    """One budget.  ``target`` is the app/agent/model/provider name or session id; ``None`` for
    ``overall`` and, for ``session``, every session."""

    scope: Scope
    target: str | None
    period: Period
    amount: float
    currency: str = "USD"
    enforcement: Enforcement = "warn"
    warning_levels: tuple[int, ...] = DEFAULT_WARNING_LEVELS

    def __post_init__(self) -> None:
        if self.scope not in SCOPES:
            raise BudgetError(f"scope must be one of {', '.join(SCOPES)}, not {self.scope!r}")
        if self.period not in PERIODS:
            raise BudgetError(f"period must be one of {', '.join(PERIODS)}, not {self.period!r}")
        if self.enforcement not in ENFORCEMENTS:
            raise BudgetError(
                f"enforcement must be one of {', '.join(ENFORCEMENTS)}, not {self.enforcement!r}"
            )
        if self.currency not in CURRENCIES:
            raise BudgetError(f"currency must be USD or EUR, not {self.currency!r}")
        if isinstance(self.amount, bool) or not isinstance(self.amount, int | float):
            raise BudgetError("the amount must be a number")
        if not math.isfinite(self.amount) or self.amount < 0:
            raise BudgetError(f"the amount must be a finite number >= 0, not {self.amount!r}")
        if self.scope == "overall" and self.target is not None:
            raise BudgetError("an overall budget has no target")
        if self.scope not in ("overall", "session") and not self.target:
            article = "an" if self.scope[0] in "aeiou" else "a"
            raise BudgetError(f"{article} {self.scope} budget needs a target (which {self.scope})")
        object.__setattr__(self, "amount", float(self.amount))
        object.__setattr__(self, "warning_levels", clean_levels(self.warning_levels))

    @property
    def id(self) -> str:
        """``scope:target:period`` (``*`` for no target): one budget per combination."""
        return f"{self.scope}:{self.target or '*'}:{self.period}"

    @property
    def dimension(self) -> Dimension:
        """The history dimension the scope filters on (``overall`` for overall and session)."""
        return "overall" if self.scope in ("overall", "session") else cast("Dimension", self.scope)

    def describe(self) -> str:
        """``app shop-api, per month``."""
        what = {"overall": "everything", "session": "each session"}.get(self.scope, self.scope)
        if self.target:
            what = f"{self.scope} {self.target}"
        per = "per session" if self.period == "session" else f"per {self.period}"
        return f"{what}, {per}"

    def to_json(self) -> dict[str, Any]:
        """The stored form (camelCase)."""
        return {
            "id": self.id,
            "scope": self.scope,
            "target": self.target,
            "period": self.period,
            "amount": self.amount,
            "currency": self.currency,
            "enforcement": self.enforcement,
            "warningLevels": list(self.warning_levels),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Budget:
        """A budget from its stored form; :class:`BudgetError` when it is not valid."""
        if not isinstance(data, Mapping):
            raise BudgetError("a budget must be a JSON object")
        levels = data.get("warningLevels", list(DEFAULT_WARNING_LEVELS))
        if not isinstance(levels, list) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in levels
        ):
            raise BudgetError("warningLevels must be a list of percentages")
        target = data.get("target")
        if target is not None and not isinstance(target, str):
            raise BudgetError("target must be text or null")
        return cls(
            scope=data.get("scope"),  # type: ignore[arg-type]
            target=target or None,
            period=data.get("period"),  # type: ignore[arg-type]
            amount=data.get("amount"),  # type: ignore[arg-type]
            currency=str(data.get("currency", "USD")).upper(),
            enforcement=data.get("enforcement", "warn"),
            warning_levels=tuple(int(v) for v in levels),
        )


# --------------------------------------------------------------------------- storage


@dataclass(frozen=True)
class BudgetFile:
    """The budgets read from disk, and what was wrong with the file (an entry or all of it)."""

    budgets: tuple[Budget, ...] = ()
    problems: tuple[str, ...] = ()


def budgets_path() -> Path:
    """``config_dir()/budgets.json``."""
    return paths.budgets_file()


def load_budgets(path: Path | None = None) -> BudgetFile:
    """The saved budgets; a missing file is no budgets, a broken one is reported (never raised)."""
    target = path or budgets_path()
    try:
        data = json.loads(target.read_bytes())
    except FileNotFoundError:
        return BudgetFile()
    except (OSError, ValueError, RecursionError) as exc:
        return BudgetFile((), (f"budgets file {target} could not be read: {exc}",))
    entries = data.get("budgets") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        return BudgetFile((), (f"budgets file {target} has no 'budgets' list",))
    budgets: dict[str, Budget] = {}
    problems: list[str] = []
    for number, entry in enumerate(entries, 1):
        try:
            budget = Budget.from_json(entry)
        except BudgetError as exc:
            problems.append(f"budget #{number} in {target} ignored: {exc}")
            continue
        budgets[budget.id] = budget
    return BudgetFile(tuple(budgets.values()), tuple(problems))


def save_budgets(budgets: Iterable[Budget], path: Path | None = None) -> None:
    """Write the budgets atomically (replacing the file)."""
    target = path or budgets_path()
    write_json_atomic(
        target, {"version": FILE_VERSION, "budgets": [b.to_json() for b in budgets]}, mode=0o600
    )


def add_budget(budget: Budget, path: Path | None = None) -> bool:
    """Add a budget, replacing one with the same id; returns True when it replaced one.

    Refuses (``BudgetError``) to rewrite a file it cannot read, so a broken file is never lost.
    """
    target = path or budgets_path()
    with locked(target):
        current = load_budgets(target)
        if current.problems and not current.budgets and target.exists():
            raise BudgetError(f"not rewriting a budgets file that cannot be read: {current.problems[0]}")
        replaced = any(b.id == budget.id for b in current.budgets)
        kept = [budget if b.id == budget.id else b for b in current.budgets]
        if not replaced:
            kept.append(budget)
        save_budgets(kept, target)
    return replaced


def remove_budget(budget_id: str, path: Path | None = None) -> bool:
    """Remove a budget by id; returns False when there was none."""
    target = path or budgets_path()
    with locked(target):
        current = load_budgets(target)
        kept = [b for b in current.budgets if b.id != budget_id]
        if len(kept) == len(current.budgets):
            return False
        save_budgets(kept, target)
    return True


# --------------------------------------------------------------------------- periods


def period_window(period: Period, today: date) -> tuple[date, date, str]:
    """The calendar window containing ``today``: first day, last day (inclusive), and its key
    (``2026-11-22``, ``2026-W47``, ``2026-11``).  ``session`` has no window (``(today, today, "")``)."""
    if period == "day":
        return today, today, today.isoformat()
    if period == "week":
        start = today - timedelta(days=today.weekday())
        year, week, _ = today.isocalendar()
        return start, start + timedelta(days=6), f"{year}-W{week:02d}"
    if period == "month":
        start = today.replace(day=1)
        following = (start + timedelta(days=32)).replace(day=1)
        return start, following - timedelta(days=1), f"{today.year}-{today.month:02d}"
    return today, today, ""


# --------------------------------------------------------------------------- live sessions


@dataclass(frozen=True)
class LiveSession:
    """A session as its file says now (its ledger total is what the threshold uses)."""

    session_id: str
    total: Totals
    """The total by the one rule (``figures.totals``) in the session's own currency."""
    currency: str
    app: str | None = None
    models: frozenset[str] = frozenset()
    ledger: Ledger | None = None
    llm_enabled: bool = True

    def total_in(self, currency: str, eur_per_usd: float) -> Totals:
        """The total in another currency, by the same rule as every other consumer's (``==`` theirs)."""
        if self.ledger is None:
            scale = rates_for(currency, eur_per_usd).get(self.currency, 1.0)
            t = self.total
            return Totals(t.min * scale, t.expected * scale, t.max * scale, t.calls)
        value = session_total(self.ledger, _rule(currency, self.llm_enabled, eur_per_usd))
        return Totals(value.min, value.expected, value.max, self.total.calls)


def live_session(
    doc: Mapping[str, Any], root: Path | None = None, *, llm_enabled: bool = True, app: str | None = None
) -> LiveSession | None:
    """A :class:`LiveSession` from a session document (validated or raw JSON); ``None`` if unusable."""
    session_id = doc.get("sessionId")
    currency = doc.get("currency")
    estimate = doc.get("sessionCost")
    if not isinstance(session_id, str) or currency not in CURRENCIES or not isinstance(estimate, Mapping):
        return None
    total = _item(estimate.get("total"))
    breakdown = estimate.get("breakdown")
    parts = [_item(breakdown.get(name)) if isinstance(breakdown, Mapping) else None for name in CATEGORIES]
    if total is None:
        return None
    ledger: Ledger | None = None
    if all(part is not None for part in parts):
        ledger = Ledger(str(currency), Range(*total), *(Range(*p) for p in parts if p is not None))
        own = session_total(ledger, _rule(str(currency), llm_enabled))
        total = (own.min, own.expected, own.max)
    elif not llm_enabled:
        return None  # no breakdown to leave the LLM part out of: not a total anyone could trust
    records = doc.get("llmUsage")
    models = frozenset(
        m
        for r in (records if isinstance(records, list) else [])
        if isinstance(r, Mapping)
        if (m := model_text(r.get("model")))
    )
    if app is None and root is not None:
        from mity_cost.core.factory.layout import safe_name
        from mity_cost.core.spending.history import read_runtime

        runtime = read_runtime(root.joinpath(".mity", "chat", session_id)) if safe_name(session_id) else None
        app = AppResolver.for_root(root, runtime).app_for(None)
    calls = len(records) if isinstance(records, list) else 0
    return LiveSession(
        session_id,
        Totals(*total, calls),
        str(currency),
        app,
        models if llm_enabled else frozenset(),
        ledger,
        llm_enabled,
    )


def live_sessions(snapshot: Snapshot, settings: Settings) -> dict[str, LiveSession]:
    """The :class:`LiveSession` of every loaded session of a watcher snapshot (for :func:`evaluate`),
    from the figures the loader computed (no record walk)."""
    out: dict[str, LiveSession] = {}
    for view in snapshot.sessions:
        if view.loaded is None:
            continue
        app = AppResolver.for_root(view.root, view.runtime).app_for(None)
        figures = view.loaded.figures
        own = session_total(figures.ledger, _rule(figures.currency, settings.llm_enabled))
        live = LiveSession(
            figures.session_id,
            Totals(own.min, own.expected, own.max, figures.calls),
            figures.currency,
            app,
            frozenset(figures.models) if settings.llm_enabled else frozenset(),
            figures.ledger,
            settings.llm_enabled,
        )
        out.setdefault(live.session_id, live)
    return out


def _rule(currency: str, llm_enabled: bool, eur_per_usd: float = DEFAULT_EUR_PER_USD) -> Settings:
    """Settings that make ``session_total`` answer in ``currency`` (the budgets' own currencies)."""
    return Settings(
        currency=cast(DisplayCurrency, currency), llm_enabled=llm_enabled, eur_per_usd=eur_per_usd
    )


def _item(value: object) -> tuple[float, float, float] | None:
    if not isinstance(value, Mapping):
        return None
    out = []
    for key in ("min", "expected", "max"):
        number = value.get(key)
        if isinstance(number, bool) or not isinstance(number, int | float) or not math.isfinite(number):
            return None
        out.append(float(number))
    return out[0], out[1], out[2]


# --------------------------------------------------------------------------- prices


@functools.lru_cache(maxsize=1)
def default_pricer() -> Callable[[str], bool]:
    """``is_priced(model_text)``, cached per model.

    The factory's own variants (``gpt5mini``...) are priced (by its table and the catalogue).  A name
    it did not recognise (``unknown:<name>``) is asked of the price book (``core.prices``, loaded on
    first need); without a usable price book it counts as unpriced, since the factory charged it a
    flat fallback rather than a price.
    """
    book: list[Any] = []

    @functools.lru_cache(maxsize=512)
    def is_priced(model: str) -> bool:
        if ":" not in model:
            return True
        try:
            if not book:
                from mity_cost.core.pricing.prices import PriceBook

                book.append(PriceBook.load())
            return book[0].quote(model_value(model), 1000, 1000).price is not None
        except Exception:  # noqa: BLE001 - a price book failure must not look like a price
            return False

    return is_priced


def _price_stamp() -> str:
    """What the price answers depend on: the installed genai-prices and the user's override file."""
    import importlib.util
    import os

    parts: list[str] = []
    try:
        spec = importlib.util.find_spec("genai_prices")
        origin = spec.origin if spec is not None else None
        folder = os.path.dirname(origin) if origin else None
        parts.append(f"{folder}:{os.stat(folder).st_mtime_ns}" if folder else "no genai-prices")
    except (ImportError, ValueError, OSError):
        parts.append("no genai-prices")
    try:
        info = paths.price_override_file().stat()
        parts.append(f"{info.st_size}:{info.st_mtime_ns}")
    except OSError:
        parts.append("no overrides")
    return "|".join(parts)


def cached_pricer(history: History, fallback: Callable[[str], bool] | None = None) -> Callable[[str], bool]:
    """:func:`default_pricer` with its answers kept in the history, so a command does not load the
    price book for models it has already asked about.  The answers are dropped when genai-prices or
    the override file changes."""
    from mity_cost.core.spending.history import HistoryError

    base = fallback or default_pricer()
    stamp = _price_stamp()
    try:
        if history.get_meta("priced_stamp") != stamp:
            with history.transaction() as db:
                db.execute("DELETE FROM meta WHERE key LIKE 'priced:%'")
                db.execute("INSERT OR REPLACE INTO meta VALUES ('priced_stamp', ?)", (stamp,))
    except HistoryError:
        return base

    def is_priced(model: str) -> bool:
        if ":" not in model:
            return base(model)
        key = f"priced:{model}"
        try:
            known = history.get_meta(key)
        except HistoryError:
            known = None
        if known is not None:
            return known == "1"
        answer = base(model)
        with contextlib.suppress(HistoryError):
            history.set_meta(key, "1" if answer else "0")
        return answer

    return is_priced


# --------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class BudgetStatus:
    """Where one budget stands now.  Amounts are in the budget's currency."""

    budget: Budget
    subject: str | None
    """What is measured: the target, or the session id for a per-session budget (``None``: no session)."""
    period_key: str
    start: date | None
    end: date | None
    spent: Totals
    unpriced_models: tuple[str, ...] = ()
    session_id: str | None = None
    session_app: str | None = None
    binding_id: str = ""
    """The id of the budget (this one or a parent) with the least left, in display currency."""
    remaining_display: float = 0.0
    display_currency: str = "USD"
    notes: tuple[str, ...] = field(default=())

    @property
    def label(self) -> str:
        """``app shop-api, per month``; a budget counted per session names the session it is about
        (``each session, per session (session 0bd0e762)``)."""
        budget = self.budget
        text = budget.describe()
        per_session = budget.scope == "session" or budget.period == "session"
        named = budget.scope == "session" and budget.target is not None
        if per_session and not named and self.session_id:
            text += f" (session {self.session_id[:8]})"
        return text

    @property
    def key(self) -> str:
        """Unique per budget and subject: the budget id, plus ``@session`` for per-session budgets."""
        if (self.budget.scope == "session" and self.budget.target is None) or self.budget.period == "session":
            return f"{self.budget.id}@{self.session_id or '-'}"
        return self.budget.id

    @property
    def amount(self) -> float:
        """The budget's amount."""
        return self.budget.amount

    @property
    def fraction(self) -> float:
        """Expected spending over the amount (infinite for a zero amount with spending)."""
        if self.budget.amount > 0:
            return self.spent.expected / self.budget.amount
        return math.inf if self.spent.expected > 0 else 0.0

    @property
    def remaining(self) -> float:
        """Amount minus expected spending (negative once over)."""
        return self.budget.amount - self.spent.expected

    @property
    def over(self) -> bool:
        """Spending is past the amount (strictly, on the expected value, as the factory's threshold)."""
        return self.spent.expected > self.budget.amount

    @property
    def level(self) -> Level:
        """The badge band of the fraction."""
        return level_for(self.fraction)

    @property
    def reached(self) -> tuple[int, ...]:
        """The warning levels (percent) reached."""
        return tuple(
            p for p in self.budget.warning_levels if crossed(self.spent.expected, self.budget.amount, p)
        )

    @property
    def unpriced(self) -> bool:
        """Some spending counted here has no current price: the figure cannot be trusted."""
        return bool(self.unpriced_models)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able view (for ``--json`` and the UI)."""
        return {
            "budget": self.budget.to_json(),
            "key": self.key,
            "subject": self.subject,
            "sessionId": self.session_id,
            "periodKey": self.period_key,
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "spent": self.spent.to_json(),
            "fraction": self.fraction if math.isfinite(self.fraction) else None,
            "remaining": self.remaining,
            "level": self.level.label,
            "over": self.over,
            "reached": list(self.reached),
            "unpricedModels": list(self.unpriced_models),
            "bindingId": self.binding_id,
            "notes": list(self.notes),
        }


def evaluate(
    budgets: Sequence[Budget],
    history: History,
    now: datetime | None = None,
    session_totals: Mapping[str, LiveSession] | None = None,
    *,
    session_id: str | None = None,
    settings: Settings | None = None,
    is_priced: Callable[[str], bool] | None = None,
) -> list[BudgetStatus]:
    """Where every budget stands at ``now``.

    ``session_totals`` holds the live sessions (their ledgers win over the history for per-session
    spending); per-session budgets are evaluated for each of them and for ``session_id``.
    Calendar budgets read the history (take the sessions in first).  Honours ``llm_enabled``.
    """
    settings = settings or Settings()
    moment = now or datetime.now().astimezone()
    today = history.today(moment)
    live = dict(session_totals or {})
    sessions = list(live)
    if session_id is not None and session_id not in live:
        sessions.append(session_id)
    kinds = ("llm", "execution") if settings.llm_enabled else ("execution",)
    pricer = is_priced or cached_pricer(history)
    statuses: list[BudgetStatus] = []
    for budget in budgets:
        per_session = budget.scope == "session" or budget.period == "session"
        if budget.scope == "session" and budget.target is not None:
            subjects: list[str | None] = [budget.target]
        elif per_session:
            subjects = list(sessions) or [None]
        else:
            subjects = [None]
        for sid in subjects:
            statuses.append(
                _status(budget, history, today, sid, live.get(sid or ""), kinds, settings, pricer)
            )
    return _bind(statuses, settings)


def _status(
    budget: Budget,
    history: History,
    today: date,
    sid: str | None,
    live: LiveSession | None,
    kinds: tuple[str, ...],
    settings: Settings,
    pricer: Callable[[str], bool],
) -> BudgetStatus:
    rates = rates_for(budget.currency, settings.eur_per_usd or DEFAULT_EUR_PER_USD)
    start, end, key = period_window(budget.period, today)
    window: tuple[date | None, date | None] = (None, None) if budget.period == "session" else (start, end)
    dim, value = budget.dimension, budget.target if budget.dimension != "overall" else None
    notes: list[str] = []
    info = history.session(sid) if sid else None
    app = live.app if live and live.app else (info.app if info else None)
    if budget.period == "session" or budget.scope == "session":
        key = f"session:{sid}" if budget.period == "session" else key
        if sid is None:
            spent, models = Totals(), set()
            notes.append("no session to measure")
        elif budget.period == "session" and dim == "overall" and live is not None:
            spent = live.total_in(budget.currency, settings.eur_per_usd or DEFAULT_EUR_PER_USD)
            models = set(live.models) | history.models_used(session_id=sid)
        else:
            by = None if dim == "overall" else dim
            groups = history.session_totals(sid, *window, rates=rates, kinds=kinds, by=by)
            spent = groups.get(value or "", Totals())
            models = (
                history.models_used(*window, dim=dim, value=value, session_id=sid)
                if "llm" in kinds
                else set()
            )
    else:
        spent = history.totals(dim, value, start, end, rates=rates, kinds=kinds)
        models = _models_in(history, start, end, dim, value, pricer) if "llm" in kinds else set()
    unpriced = tuple(sorted(m for m in models if not pricer(m)))
    return BudgetStatus(
        budget,
        sid if budget.scope == "session" or budget.period == "session" else budget.target,
        key,
        window[0],
        window[1],
        spent,
        unpriced,
        session_id=sid,
        session_app=app,
        notes=tuple(notes),
    )


def _models_in(
    history: History, start: date, end: date, dim: Dimension, value: str | None, pricer: Callable[[str], bool]
) -> set[str]:
    """The unpriced models among the window's records for a filter (cheap: roll-up first)."""
    everywhere = history.models_used(start, end)
    suspects = {m for m in everywhere if not pricer(m)}
    if not suspects or dim == "overall":
        return suspects
    if dim == "model":
        return suspects & {value or ""}
    found: set[str] = set()
    for model in suspects:
        rows = history.query(
            f"""SELECT 1 FROM records WHERE model = ? AND day BETWEEN ? AND ?
                  AND COALESCE({dim}, '') = ? LIMIT 1""",
            (model, start.isoformat(), end.isoformat(), value or ""),
        )
        if rows:
            found.add(model)
    return found


def _parents(status: BudgetStatus, others: Sequence[BudgetStatus]) -> list[BudgetStatus]:
    """The budgets this one lives inside: every overall one; a session's app budgets."""
    out = []
    for other in others:
        if other is status:
            continue
        if other.budget.scope == "overall" and status.budget.scope != "overall":
            if other.budget.period != "session" or other.session_id == status.session_id:
                out.append(other)
        elif (
            other.budget.scope == "app"
            and status.budget.scope == "session"
            and status.session_app is not None
            and other.budget.target == status.session_app
            and (other.budget.period != "session" or other.session_id == status.session_id)
        ):
            out.append(other)
    return out


def _bind(statuses: list[BudgetStatus], settings: Settings) -> list[BudgetStatus]:
    display = settings.currency
    to_display = {c: rates_for(display, settings.eur_per_usd or DEFAULT_EUR_PER_USD)[c] for c in CURRENCIES}
    with_display = [
        replace(s, remaining_display=s.remaining * to_display[s.budget.currency], display_currency=display)
        for s in statuses
    ]
    out = []
    for status in with_display:
        chain = [status, *_parents(status, with_display)]
        binding = min(chain, key=lambda s: s.remaining_display)
        out.append(replace(status, binding_id=binding.key))
    return out


def tightest(status: BudgetStatus, statuses: Sequence[BudgetStatus]) -> BudgetStatus:
    """The status to show for a budget: itself, or the enclosing one with less left."""
    return next((s for s in statuses if s.key == status.binding_id), status)


def for_session(
    statuses: Sequence[BudgetStatus], session_id: str, app: str | None = None
) -> list[BudgetStatus]:
    """The statuses that new spending in this session would count against: overall and app budgets
    (calendar ones, or per-session ones measured on this session) and its session budgets.

    Agent, model and provider budgets are left out: the gate does not know which one the next
    operation will use.  They still raise alerts.
    """
    out = []
    for status in statuses:
        scope = status.budget.scope
        if status.budget.period == "session" and status.session_id != session_id:
            continue
        mine = scope == "session" and status.session_id == session_id
        its_app = scope == "app" and app is not None and status.budget.target == app
        if scope == "overall" or mine or its_app:
            out.append(status)
    return out


# --------------------------------------------------------------------------- the gate


@dataclass(frozen=True)
class Verdict:
    """What the gate should do about budgets: ``pass``, ``ask`` (the user confirms) or ``refuse``."""

    action: Action
    reason: str
    status: BudgetStatus | None = None
    warnings: tuple[str, ...] = ()
    asking: tuple[BudgetStatus, ...] = ()
    """The statuses that asked (to record an approval for, if the user approves)."""


def gate_verdict(
    statuses: Sequence[BudgetStatus],
    extra: float = 0.0,
    *,
    extra_currency: str = "USD",
    approvals: Mapping[tuple[str, str], float] | None = None,
    eur_per_usd: float = DEFAULT_EUR_PER_USD,
    problems: Sequence[str] = (),
) -> Verdict:
    """Judge spending ``extra`` more against the statuses (normally :func:`for_session`'s).

    Over a ``hard_stop`` budget: refuse.  Over a ``require_confirmation`` one (and not approved up to
    that much in this period): ask.  Over a ``warn`` one: pass with a warning.  An enforcing budget
    that counts unpriced records asks (its figure cannot be trusted), and so do ``problems`` (a
    budgets file that cannot be read).  "Over" means the expected spending plus ``extra`` is
    strictly greater than the amount.
    """
    approvals = approvals or {}
    refuse: list[tuple[BudgetStatus, str]] = []
    ask: list[tuple[BudgetStatus, str]] = []
    warnings: list[str] = []
    for status in statuses:
        budget = status.budget
        add = extra * rates_for(budget.currency, eur_per_usd).get(extra_currency, 1.0)
        projected = status.spent.expected + add
        over = projected > budget.amount * (1 + 1e-12)
        money = f"{money_in(projected, budget.currency)} of {money_in(budget.amount, budget.currency)}"
        label = f"budget {budget.id} ({status.label})"
        if over and budget.enforcement == "hard_stop":
            refuse.append((status, f"{label} would be exceeded: {money} (hard stop)"))
            continue
        approved = approvals.get((status.key, status.period_key))
        covered = approved is not None and projected <= approved
        unpriced = f"counts records with no known price ({', '.join(status.unpriced_models)})"
        if over and budget.enforcement == "require_confirmation" and not covered:
            note = f"; it {unpriced}" if status.unpriced else ""
            ask.append((status, f"{label} would be exceeded: {money} (needs confirmation){note}"))
        elif status.unpriced and budget.enforcement != "warn" and not covered:
            ask.append((status, f"{label} {unpriced}: {money} is not reliable"))
        elif over:
            warnings.append(f"{label} exceeded: {money}")
        elif status.reached:
            warnings.append(f"{label} at {status.reached[-1]} %: {money}")
    if refuse:
        return Verdict("refuse", refuse[0][1], refuse[0][0], tuple(warnings), tuple(s for s, _ in ask))
    if problems:
        return Verdict("ask", "; ".join(problems), None, tuple(warnings))
    if ask:
        return Verdict(
            "ask", "; ".join(r for _, r in ask), ask[0][0], tuple(warnings), tuple(s for s, _ in ask)
        )
    reason = "; ".join(warnings) if warnings else "within every budget"
    return Verdict("pass", reason, None, tuple(warnings))


def approvals(history: History) -> dict[tuple[str, str], float]:
    """Recorded approvals: ``{(status key, period key): approved up to}``."""
    rows = history.query("SELECT budget_id, period_key, approved_up_to FROM budget_approvals")
    return {(str(r[0]), str(r[1])): float(r[2]) for r in rows}


def approve(
    history: History,
    asking: Iterable[BudgetStatus],
    extra: float = 0.0,
    *,
    extra_currency: str = "USD",
    eur_per_usd: float = DEFAULT_EUR_PER_USD,
    now: datetime | None = None,
) -> None:
    """Record that the user approved spending ``extra`` more against these budgets (after an ask).

    Each approval covers the spending asked for plus ``APPROVAL_STEP`` of the budget, in its period;
    past that the gate asks again.  Hard stops cannot be approved.
    """
    moment = (now or datetime.now().astimezone()).timestamp()
    rows = []
    for status in asking:
        if status.budget.enforcement == "hard_stop":
            continue
        add = extra * rates_for(status.budget.currency, eur_per_usd).get(extra_currency, 1.0)
        up_to = status.spent.expected + add + APPROVAL_STEP * status.budget.amount
        rows.append((status.key, status.period_key, up_to, moment))
    if rows:
        with history.transaction() as db:
            db.executemany(
                """INSERT INTO budget_approvals VALUES (?, ?, ?, ?)
                   ON CONFLICT (budget_id, period_key) DO UPDATE SET
                       approved_up_to = MAX(approved_up_to, excluded.approved_up_to),
                       approved_at = excluded.approved_at""",
                rows,
            )


# --------------------------------------------------------------------------- one session, end to end


class FoundSession(NamedTuple):
    """A session's ``cost.json`` read as raw JSON (``doc`` is ``None`` when it could not be)."""

    root: Path | None
    doc: dict[str, Any] | None
    problem: str | None
    stamp: tuple[int, int] | None
    """``(size, mtime_ns)`` of the file, taken before reading it."""


def find_session_doc(session_id: str, roots: Sequence[Path]) -> FoundSession:
    """Read a session's ``cost.json`` (stdlib, bounded) under the first root that has it."""
    import os

    from mity_cost.core.factory.layout import session_path
    from mity_cost.core.gate.fastpath import QuickError, parse_json, read_bytes

    for root in roots:
        try:
            path = session_path(root, session_id)
        except ValueError as exc:
            return FoundSession(None, None, str(exc), None)
        try:
            info = os.stat(path)
        except OSError:
            continue
        try:
            doc = parse_json(read_bytes(path), path)
        except QuickError as exc:
            return FoundSession(root, None, exc.describe(), None)
        if not isinstance(doc, dict) or doc.get("sessionId") not in (session_id, path.parent.name):
            return FoundSession(root, None, f"{path}: not this session's cost file", None)
        return FoundSession(root, doc, None, (info.st_size, info.st_mtime_ns))
    return FoundSession(None, None, None, None)


def check_session(
    session_id: str,
    roots: Sequence[Path],
    extra: float = 0.0,
    *,
    currency: str | None = None,
    operation: str | None = None,
    settings: Settings | None = None,
    history: History | None = None,
    budget_path: Path | None = None,
    now: datetime | None = None,
    is_priced: Callable[[str], bool] | None = None,
) -> Verdict:
    """Judge ``extra`` more spending (in ``currency``, default the display currency) in a session
    against every budget it counts toward, the session's file read now.

    Takes the session's records into the history first (so calendar budgets include them), raises a
    ``task_estimate_high`` alert when the estimate would take a budget over, and never raises: an
    unreadable budgets file or history makes enforcing budgets ask.
    """
    from mity_cost.core.settings import load_settings
    from mity_cost.core.spending.history import HistoryError, read_runtime

    found = load_budgets(budget_path)
    if not found.budgets and not found.problems:
        return Verdict("pass", "no budgets")
    settings = settings or load_settings()
    currency = currency or settings.currency
    enforcing = any(b.enforcement != "warn" for b in found.budgets) or bool(found.problems)
    moment = now or datetime.now().astimezone()
    own = history is None
    try:
        store = history or History()
    except HistoryError as exc:
        action: Action = "ask" if enforcing else "pass"
        return Verdict(action, f"budgets cannot be checked: {exc}")
    try:
        root, doc, problem, stamp = find_session_doc(session_id, roots)
        live: dict[str, LiveSession] = {}
        problems = list(found.problems)
        if doc is not None and root is not None:
            session_dir = root.joinpath(".mity", "chat", session_id)
            apps = AppResolver.for_root(root, read_runtime(session_dir))
            store.ingest_document(doc, root, apps=apps, now=moment, file_stamp=stamp)
            current = live_session(doc, llm_enabled=settings.llm_enabled, app=apps.app_for(None))
            if current is not None:
                live[session_id] = current
        elif problem is not None:
            problems.append(f"the session's cost file cannot be read ({problem})")
        statuses = evaluate(
            found.budgets, store, moment, live, session_id=session_id, settings=settings, is_priced=is_priced
        )
        app = live[session_id].app if session_id in live else None
        if app is None:
            info = store.session(session_id)
            app = info.app if info else None
        mine = for_session(statuses, session_id, app)
        verdict = gate_verdict(
            mine,
            extra,
            extra_currency=currency,
            approvals=approvals(store),
            eur_per_usd=settings.eur_per_usd,
            problems=problems if enforcing else (),
        )
        if extra > 0:
            from mity_cost.core.spending.alerts import task_estimate_alert

            for status in mine:
                add = extra * rates_for(status.budget.currency, settings.eur_per_usd).get(currency, 1.0)
                task_estimate_alert(store, status, add, operation=operation, now=moment)
        return verdict
    except HistoryError as exc:
        return Verdict("ask" if enforcing else "pass", f"budgets cannot be checked: {exc}")
    finally:
        if own:
            store.close()


def approve_session(
    session_id: str,
    roots: Sequence[Path],
    extra: float = 0.0,
    *,
    currency: str | None = None,
    settings: Settings | None = None,
    history: History | None = None,
    budget_path: Path | None = None,
    now: datetime | None = None,
    is_priced: Callable[[str], bool] | None = None,
) -> int:
    """After the user approved an ask from :func:`check_session`: record the approval for every
    budget that asked, so the gate passes until ``APPROVAL_STEP`` more is spent; returns how many."""
    from mity_cost.core.settings import load_settings

    settings = settings or load_settings()
    verdict = check_session(
        session_id,
        roots,
        extra,
        currency=currency,
        settings=settings,
        history=history,
        budget_path=budget_path,
        now=now,
        is_priced=is_priced,
    )
    if not verdict.asking:
        return 0
    own = history is None
    store = history or History()
    try:
        approve(
            store,
            verdict.asking,
            extra,
            extra_currency=currency or settings.currency,
            eur_per_usd=settings.eur_per_usd,
            now=now,
        )
    finally:
        if own:
            store.close()
    return len(verdict.asking)
