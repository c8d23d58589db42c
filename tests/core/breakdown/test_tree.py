"""The breakdown tree: its figures are the summary's and the groupings' figures, for every example."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest

from mity_cost.core.breakdown.nodes import SESSION_FEATURES_APP, ListPrice, Node, same_shape
from mity_cost.core.breakdown.sections import session_features
from mity_cost.core.breakdown.tree import build_tree
from mity_cost.core.factory.documents import ModelName, model_key
from mity_cost.core.factory.layout import session_files
from mity_cost.core.figures.summary import features_by_app, group_executions, group_records, summarize
from mity_cost.core.live.snapshot import SessionView
from mity_cost.core.pricing.prices import Override, PriceBook, Quote
from mity_cost.core.settings import Settings
from tests.conftest import EXAMPLES
from tests.core.breakdown_helpers import (
    BIGGEST,
    WITH_INFRA,
    add_call,
    features_of,
    rewrite,
    session_file,
    view_of,
)


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def example_views(root: Path) -> list[SessionView]:
    return [view_of(entry.path, root) for entry in session_files(root)]


def section(tree: Node, key: str) -> Node:
    found = tree.child(key)
    assert found is not None, f"no {key} section"
    return found


def test_sections_equal_the_summary_for_every_example(example_root: Path) -> None:
    settings = Settings()
    features = features_of(example_root)
    views = example_views(example_root)
    assert len(views) == 6
    for view in views:
        assert view.loaded is not None
        summary = summarize(view.loaded.figures, settings)
        tree = build_tree(view, features, settings)
        assert tree.cost == summary.total
        assert tree.tokens == summary.total_tokens and tree.calls == summary.llm_calls
        llm = section(tree, "llm")
        assert llm.cost is not None and close(llm.cost.expected, summary.llm_cost)
        assert llm.calls == summary.llm_calls and llm.tokens == summary.total_tokens
        compute = section(tree, "compute")
        assert compute.cost is not None and close(compute.cost.expected, summary.compute_cost)
        infra = section(tree, "infra")
        assert infra.cost == summary.monthly and infra.monthly
        assert [n.key for n in tree.children] == ["llm", "compute", "infra", "features"]


def test_models_agents_and_calls_equal_the_groupings(example_root: Path) -> None:
    settings = Settings()
    for view in example_views(example_root):
        assert view.loaded is not None
        records = view.loaded.doc["llmUsage"]
        llm = section(build_tree(view, (), settings), "llm")
        groups = group_records(records, "model")
        assert [m.key for m in llm.children] == [g.key for g in groups]
        for model, group in zip(llm.children, groups, strict=True):
            assert model.label == group.label and model.calls == group.calls
            assert model.tokens == group.tokens
            assert model.cost is not None and close(model.cost.expected, group.cost)
            assert model.cost.min == model.cost.expected == model.cost.max  # an LLM cost has no range
            of_model = [r for r in records if model_key(r["model"]) == group.key]
            agents = group_records(of_model, "agent")
            assert sorted(a.key for a in model.children) == sorted(a.key for a in agents)
            for agent in model.children:
                expected = next(a for a in agents if a.key == agent.key)
                assert agent.calls == expected.calls == len(agent.children)
                assert agent.cost is not None and close(agent.cost.expected, expected.cost)
                calls = math.fsum(c.cost.expected for c in agent.children if c.cost is not None)
                assert close(calls, expected.cost)
                assert all(c.kind == "call" and c.calls == 1 for c in agent.children)


def test_executions_equal_group_executions(example_root: Path) -> None:
    view = view_of(session_file(example_root, WITH_INFRA), example_root)
    assert view.loaded is not None
    compute = section(build_tree(view, (), Settings()), "compute")
    groups = group_executions(view.loaded)
    assert [n.key for n in compute.children] == [g.kind for g in groups]
    for node, group in zip(compute.children, groups, strict=True):
        assert node.cost == group.cost and node.calls == group.runs == len(node.children)
        runs = [run.cost for run in node.children if run.cost is not None]
        assert close(math.fsum(r.expected for r in runs), group.cost.expected)
        assert all(run.when is not None for run in node.children)  # dated by when first seen


def test_infrastructure_categories_notes_and_assumptions(example_root: Path) -> None:
    path = session_file(example_root, WITH_INFRA)
    raw = json.loads(path.read_text())["infraCost"]
    infra = section(build_tree(view_of(path, example_root), (), Settings()), "infra")
    categories = {n.key: n for n in infra.children if n.kind == "category"}
    assert set(categories) == {"compute", "storage", "network", "misc"}
    for name, node in categories.items():
        item = raw["breakdown"][name]
        assert node.cost is not None and node.monthly
        assert (node.cost.min, node.cost.expected, node.cost.max) == (
            item["min"],
            item["expected"],
            item["max"],
        )
        if "notes" in item:
            assert item["notes"] in node.notes
    assumptions = infra.child("assumptions")
    assert assumptions is not None
    assert [a.label for a in assumptions.children] == raw["assumptions"]
    assert all(a.cost is None for a in assumptions.children)


def test_features_equal_the_expected_feature_figures(example_root: Path) -> None:
    features = features_of(example_root)
    view = view_of(session_file(example_root, BIGGEST), example_root)
    tree = section(build_tree(view, features, Settings()), "features")
    expected = [json.loads(line) for line in (EXAMPLES / "expected-features.jsonl").read_text().splitlines()]
    apps = {a.key: a for a in tree.children}
    for row in expected:
        app = apps[row["app"]]
        feature = app.child(row["featureId"])
        assert feature is not None
        one_time, monthly = feature.children
        assert one_time.cost is not None and close(one_time.cost.expected, row["oneTimeExpected"])
        assert (
            monthly.cost is not None
            and close(monthly.cost.expected, row["monthlyExpected"])
            and monthly.monthly
        )
        assert feature.cost == one_time.cost
    grouped = features_by_app(features)
    for group in grouped:
        assert apps[group.app].cost == group.one_time
    assert tree.cost is not None
    assert close(tree.cost.expected, math.fsum(g.one_time.expected for g in grouped))


def test_features_of_other_roots_are_left_out(example_root: Path, real_root: Path) -> None:
    features = features_of(example_root)
    view = view_of(next(e.path for e in session_files(real_root)), real_root)
    assert session_features(view, features) == []
    tree = section(build_tree(view, features, Settings()), "features")
    assert tree.children == () and any("no feature" in n for n in tree.notes)


def test_session_feature_costs_are_listed(example_root: Path) -> None:
    path = session_file(example_root, WITH_INFRA)
    feature = json.loads(next(example_root.rglob("user-authentication.json")).read_text())
    feature["featureId"] = "In-session feature"
    rewrite(path, lambda doc: doc["featureCosts"].update({"In-session feature": feature}))
    tree = section(build_tree(view_of(path, example_root), (), Settings()), "features")
    app = tree.child(SESSION_FEATURES_APP)
    assert app is not None and [f.key for f in app.children] == ["In-session feature"]


def test_paths_are_unique_and_stable(example_root: Path) -> None:
    view = view_of(session_file(example_root, BIGGEST), example_root)
    features = features_of(example_root)
    first = build_tree(view, features, Settings())
    second = build_tree(view, features, Settings())
    paths = [path for path, _ in first.walk()]
    assert len(paths) == len(set(paths)) > 150
    assert same_shape(first, second)
    for path, node in first.walk():
        assert first.find(path) is node


def test_long_groups_keep_the_newest_calls_and_sum_the_rest(example_root: Path) -> None:
    view = view_of(session_file(example_root, BIGGEST), example_root)
    assert view.loaded is not None
    full = build_tree(view, (), Settings())
    capped = build_tree(view, (), Settings(), max_rows=3)
    for path, node in capped.walk():
        if node.kind != "agent":
            continue
        original = full.find(path)
        assert original is not None and original.calls == node.calls
        listed = [c for c in node.children if c.kind == "call"]
        assert len(listed) == min(3, node.calls or 0)
        times = [c.when for c in listed if c.when is not None]
        assert len(times) == len(listed) and times == sorted(times, reverse=True)  # newest first
        total = math.fsum(c.cost.expected for c in node.children if c.cost is not None)
        assert node.cost is not None and close(total, node.cost.expected)
        if (node.calls or 0) > 3:
            earlier = node.child("earlier")
            assert earlier is not None and earlier.calls == (node.calls or 0) - 3


def test_repeated_ids_get_unique_keys_and_a_note(example_root: Path) -> None:
    path = session_file(example_root, "f0e1d2c3-b4a5-4968-8776-655443322110")

    def duplicate(doc: dict[str, object]) -> None:
        record = dict(doc["llmUsage"][0])  # type: ignore[index]
        add_call(
            doc, model=record["model"], cost=record["cost"], agent=record.get("agent"), record_id=record["id"]
        )

    rewrite(path, duplicate)
    llm = section(build_tree(view_of(path, example_root), (), Settings()), "llm")
    calls = [n for _, n in llm.walk() if n.kind == "call"]
    keys = [n.key for n in calls]
    assert len(keys) == len(set(keys)) == 3
    assert any(k.endswith("#2") for k in keys)
    assert any("repeats" in note for n in calls for note in n.notes)
    assert any("inconsistent" in note or "repeated" in note for note in llm.notes)


def test_llm_disabled_leaves_llm_out_of_the_total_but_shows_it(example_root: Path) -> None:
    view = view_of(session_file(example_root, BIGGEST), example_root)
    assert view.loaded is not None
    settings = Settings(llm_enabled=False)
    tree = build_tree(view, (), settings)
    assert tree.cost == summarize(view.loaded.figures, settings).total
    llm = section(tree, "llm")
    assert llm.cost is not None and llm.cost.expected > 0
    assert any("left out" in note for note in llm.notes)


def test_amounts_are_converted_to_the_display_currency(example_root: Path) -> None:
    view = view_of(session_file(example_root, WITH_INFRA), example_root)
    usd = build_tree(view, features_of(example_root), Settings())
    eur = build_tree(view, features_of(example_root), Settings(currency="EUR", eur_per_usd=0.5))
    for (path, a), (_, b) in zip(usd.walk(), eur.walk(), strict=True):
        if a.cost is not None:
            assert b.cost is not None
            assert close(b.cost.expected, a.cost.expected * 0.5), path
    assert any("converted from USD" in note for note in eur.notes)


def test_unloaded_session_is_an_empty_tree(tmp_path: Path) -> None:
    view = SessionView("k", tmp_path, tmp_path / "s1", None)
    tree = build_tree(view, (), Settings())
    assert tree.children == () and tree.label == "s1"


# --- list prices ---------------------------------------------------------------------------------


def price_book() -> PriceBook:
    """gpt41 priced at $2 / $8 per million tokens; every other model unpriced (no catalogue)."""
    return PriceBook(overrides={"gpt41": Override(2.0, 8.0)}, use_catalog=False)


def test_list_prices_are_priced_or_unpriced_never_zero(example_root: Path) -> None:
    view = view_of(session_file(example_root, BIGGEST), example_root)
    assert view.loaded is not None
    book = price_book()
    llm = section(build_tree(view, (), Settings(), book), "llm")
    gpt41 = llm.child("gpt41")
    assert gpt41 is not None and gpt41.list_price is not None
    records = [r for r in view.loaded.doc["llmUsage"] if r["model"] == "gpt41"]
    tokens_in = sum(r["inputTokens"] for r in records)
    tokens_out = sum(r["outputTokens"] for r in records)
    expected = book.quote("gpt41", tokens_in, tokens_out).price
    assert expected is not None and close(gpt41.list_price.amount or 0.0, expected)
    for agent in gpt41.children:
        for call in agent.children:
            assert call.list_price is not None and call.list_price.amount is not None
            assert call.tokens is not None
    other = next(m for m in llm.children if m.key != "gpt41")
    assert other.list_price is not None and other.list_price.amount is None
    assert all(c.list_price is not None and c.list_price.amount is None for _, c in other.walk())
    assert llm.list_price is not None and llm.list_price.partial
    assert close(llm.list_price.amount or 0.0, expected)
    assert section(build_tree(view, (), Settings(), book), "compute").list_price is None


def test_list_price_in_euros_and_without_a_book(example_root: Path) -> None:
    view = view_of(session_file(example_root, BIGGEST), example_root)
    usd = section(build_tree(view, (), Settings(), price_book()), "llm").child("gpt41")
    eur = section(build_tree(view, (), Settings(currency="EUR", eur_per_usd=0.5), price_book()), "llm").child(
        "gpt41"
    )
    assert usd is not None and eur is not None and usd.list_price and eur.list_price
    assert close(eur.list_price.amount or 0.0, (usd.list_price.amount or 0.0) * 0.5)
    bare = section(build_tree(view, (), Settings()), "llm")
    assert all(n.list_price is not None and n.list_price.amount is None for _, n in bare.walk())


@pytest.mark.parametrize(
    ("amount", "factory", "differs"),
    [
        (1.0, 1.0, False),
        (1.1, 1.0, False),
        (1.11, 1.0, True),
        (0.89, 1.0, True),
        (None, 1.0, False),
        (0.1, 0.0, True),
    ],
)
def test_difference_marker_beyond_ten_percent(amount: float | None, factory: float, differs: bool) -> None:
    price = ListPrice(amount, factory)
    assert price.differs is differs
    if amount is not None and factory > 0:
        assert price.difference_percent is not None
        assert close(price.difference_percent, (amount - factory) / factory * 100)


def test_figures_only_changes_keep_the_shape(example_root: Path) -> None:
    path = session_file(example_root, BIGGEST)
    before = build_tree(view_of(path, example_root), (), Settings())

    def bump(doc: dict[str, object]) -> None:
        doc["llmUsage"][0]["cost"] += 1e-7  # type: ignore[index]  # too little to reorder any row

    rewrite(path, bump)
    after = build_tree(view_of(path, example_root), (), Settings())
    assert same_shape(before, after) and before != after
    rewrite(path, lambda doc: add_call(doc))
    grown = build_tree(view_of(path, example_root), (), Settings())
    assert not same_shape(after, grown)
    assert replace(grown, children=()).key == ""


def test_fast_list_prices_equal_the_price_books_exact_ones(example_root: Path) -> None:
    """Group prices from token sums equal ``price_groups``; call prices equal ``quote`` (with tiers)."""
    path = session_file(example_root, BIGGEST)
    # One call past claude-sonnet-4-5's long-context tier, where a call's whole price changes.
    rewrite(path, lambda doc: add_call(doc, model="claudesonnet45", input_tokens=250_000, agent="Big"))
    view = view_of(path, example_root)
    assert view.loaded is not None
    book = PriceBook.load()
    tree = build_tree(view, (), Settings(), book)
    records = view.loaded.doc["llmUsage"]
    checked = 0
    for node_path, node in tree.walk():
        if node.kind != "agent":
            continue
        _, model, agent = node_path
        mine = [
            r for r in records if model_key(r["model"]) == model and (r.get("agent") or "(none)") == agent
        ]
        exact = book.price_groups(mine)[0].current_cost
        assert node.list_price is not None and (node.list_price.amount is None) is (exact is None), node_path
        if exact is not None:
            assert node.list_price.amount is not None
            assert math.isclose(node.list_price.amount, exact, rel_tol=1e-9), node_path
            checked += 1
    assert checked > 5
    big = tree.find(("llm", "claudesonnet45", "Big"))
    assert big is not None and big.children[0].list_price is not None
    quote = book.quote("claudesonnet45", 250_000, 500).price
    assert quote is not None and big.children[0].list_price.amount is not None
    assert math.isclose(big.children[0].list_price.amount, quote, rel_tol=1e-9)


class _SkewedBook(PriceBook):
    """A price book whose per-token rates do not explain its quotes (a per-request fee, say)."""

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
        found = super().quote(model, input_tokens, output_tokens)
        return replace(found, price=None if found.price is None else found.price + 0.5)


def test_prices_that_are_not_linear_use_the_exact_path(example_root: Path) -> None:
    view = view_of(session_file(example_root, BIGGEST), example_root)
    assert view.loaded is not None
    book = _SkewedBook(overrides={"gpt41": Override(2.0, 8.0)}, use_catalog=False)
    gpt41 = section(build_tree(view, (), Settings(), book), "llm").child("gpt41")
    assert gpt41 is not None
    for agent in gpt41.children:
        records = [
            r
            for r in view.loaded.doc["llmUsage"]
            if r["model"] == "gpt41" and (r.get("agent") or "(none)") == agent.key
        ]
        assert agent.list_price is not None
        assert agent.list_price.amount == book.price_groups(records)[0].current_cost
        call = agent.children[0]
        record = next(r for r in records if r["id"] == call.key)
        assert call.list_price is not None
        assert (
            call.list_price.amount == book.quote("gpt41", record["inputTokens"], record["outputTokens"]).price
        )
