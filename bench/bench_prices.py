"""Pricing a large session: aggregate per model (``PriceBook.price_groups``) against one call per record.

Builds a synthetic session of ``--records`` LLM records over every factory model plus two unknown
names, then times (best and median of ``--repeat``):

- genai-prices' import (in a fresh interpreter, so it is not already loaded),
- ``price_groups`` (tokens summed per model and price tier, one genai-prices call each),
- the per-record way (``PriceBook.quote`` for every record), on a sample scaled up,
- ``audit_records`` (price groups plus the per-record check against the factory's own table),

and checks the two totals agree.

    /work/venv/bin/python bench/bench_prices.py [--records 100000] [--repeat 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from typing import Any

from mity_cost.core.factory.documents import KNOWN_MODELS
from mity_cost.core.factory.rules import factory_llm_cost
from mity_cost.core.pricing.audit import audit_records
from mity_cost.core.pricing.prices import PriceBook, catalog


def _records(count: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    models: list[Any] = [*KNOWN_MODELS, {"unknown": "gpt-4o"}, {"unknown": "llama-3-70b"}]
    records = []
    for n in range(count):
        model = models[n % len(models)]
        tokens_in = rng.randint(200, 250_000)
        tokens_out = rng.randint(10, 8000)
        records.append(
            {
                "id": f"r{n}",
                "model": model,
                "inputTokens": tokens_in,
                "outputTokens": tokens_out,
                "cost": factory_llm_cost(model, tokens_in, tokens_out),
            }
        )
    return records


_MEDIANS: dict[str, float] = {}


def _best(repeat: int, func: Any, name: str = "") -> tuple[float, Any]:
    """The best time of ``repeat`` runs (its median is kept in ``_MEDIANS[name]``) and the result."""
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - started)
    if name:
        _MEDIANS[name] = statistics.median(times)
    return min(times), result


def _import_seconds() -> float:
    code = "import time; t = time.perf_counter(); import genai_prices.data; print(time.perf_counter() - t)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(done.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sample", type=int, default=5000, help="records priced one by one (scaled up)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    imports = min(_import_seconds() for _ in range(args.repeat))
    records = _records(args.records)
    book = PriceBook.load()
    catalog()  # load genai-prices before timing
    aggregate, groups = _best(args.repeat, lambda: book.price_groups(records), "priceGroups")
    sample = records[: min(args.sample, len(records))]

    def per_record() -> float:
        return sum(book.quote(r["model"], r["inputTokens"], r["outputTokens"]).price or 0.0 for r in sample)

    per_sample, sample_total = _best(args.repeat, per_record, "perRecordSample")
    per_call = per_sample / len(sample)
    audit, _lines = _best(args.repeat, lambda: audit_records(records, book), "audit")
    sample_groups = book.price_groups(sample)
    aggregate_sample_total = sum(g.current_cost or 0.0 for g in sample_groups)
    result = {
        "records": len(records),
        "genaiPricesImportSeconds": imports,
        "priceGroupsSeconds": aggregate,
        "perRecordMicroseconds": per_call * 1e6,
        "perRecordSecondsScaled": per_call * len(records),
        "speedup": per_call * len(records) / aggregate,
        "auditSeconds": audit,
        "priceGroupsMedianSeconds": _MEDIANS["priceGroups"],
        "perRecordMedianMicroseconds": _MEDIANS["perRecordSample"] / len(sample) * 1e6,
        "speedupOfMedians": _MEDIANS["perRecordSample"]
        / len(sample)
        * len(records)
        / _MEDIANS["priceGroups"],
        "auditMedianSeconds": _MEDIANS["audit"],
        "groups": len(groups),
        "sampleTotalsAgree": abs(aggregate_sample_total - sample_total) <= 1e-9 * max(1.0, sample_total),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"records: {len(records):,} over {len(groups)} models")
        print(f"genai-prices import (fresh interpreter): {imports * 1000:.0f} ms")
        median_groups, median_audit = _MEDIANS["priceGroups"] * 1000, _MEDIANS["audit"] * 1000
        print(
            f"price_groups (aggregate):                {aggregate * 1000:.1f} ms (median {median_groups:.1f})"
        )
        median_call = result["perRecordMedianMicroseconds"]
        print(f"per-record quote:                        {per_call * 1e6:.0f} us (median {median_call:.0f})")
        print(f"  -> {len(records):,} records one by one:   {per_call * len(records):.1f} s (scaled)")
        print(f"aggregate speed-up:                      {result['speedup']:.0f}x")
        print(f"audit_records (groups + table check):    {audit * 1000:.1f} ms (median {median_audit:.1f})")
        print(f"aggregate total == per-record sum (sample): {result['sampleTotalsAgree']}")
    return 0 if result["sampleTotalsAgree"] else 1


if __name__ == "__main__":
    sys.exit(main())
