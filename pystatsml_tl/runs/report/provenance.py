"""Where a report's numbers come from: commands, dates, machines, arithmetic, versions, images, seeds."""
from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any


def _values(runs: list[dict[str, Any]], describe) -> str:
    """The distinct values of ``describe(run)`` over the runs, each with its count when they differ."""
    counts: dict[str, int] = {}
    for m in runs:
        counts[describe(m)] = counts.get(describe(m), 0) + 1
    if len(counts) == 1:
        return next(iter(counts))
    return "; ".join(f"{value} ({count} runs)" for value, count in counts.items())


def provenance_items(runs: list[dict[str, Any]], commands: list[str]) -> list[str]:
    """Where the report's numbers come from, as bullet items: the commands, dates, machines (the
    CPU's bf16 units among them), device, arithmetic (fp32 or bf16), package, constraints,
    versions, images and seeds."""
    def prov(m: dict[str, Any]) -> dict[str, Any]:
        return m.get("provenance") or {}

    def machine(m: dict[str, Any]) -> str:
        p = prov(m)
        if not p:
            return "not recorded"
        units = f", bf16 units: {p['cpu_bf16_units']}" if "cpu_bf16_units" in p else ""
        return f"{p['host']}: {p['cpu']}, {p['cpu_threads']} threads{units}, GPU {p['gpu']}"

    def versions(m: dict[str, Any]) -> str:
        v = m.get("versions", {})
        return ", ".join(f"{k} {v[k]}" for k in ("torch", "torchvision", "numpy", "python") if k in v)

    def images(m: dict[str, Any]) -> str:
        d = m.get("data")
        if not d:
            return f"{m['parameters']['dataset']} (fingerprint not recorded)"
        sizes = ", ".join(f"{split} {n}" for split, n in d["sizes"].items())
        return f"`{Path(d['name']).name if '/' in d['name'] else d['name']}` ({sizes}), fingerprint {d['fingerprint']}"

    dates = sorted(prov(m)["date"] for m in runs if prov(m).get("date"))
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    items = [f"command: `{command}`" for command in commands]
    items += [f"report written {now}; runs from {dates[0]} to {dates[-1]}" if dates else f"report written {now}",
              f"machine: {_values(runs, machine)}",
              f"device: {_values(runs, lambda m: m['device'])}",
              f"arithmetic: {_values(runs, lambda m: m.get('precision', 'not recorded'))}",
              "package: " + _values(runs, lambda m: f"pystatsml-tl {m.get('versions', {}).get('pystatsml_tl', '?')}, "
                                    f"commit {prov(m).get('git_commit', 'not recorded')}"),
              f"constraints file: {_values(runs, lambda m: prov(m).get('constraints', 'not recorded'))}",
              f"versions: {_values(runs, versions)}",
              f"images: {_values(runs, images)}",
              "seeds: " + ", ".join(map(str, sorted({m['parameters']['seed'] for m in runs})))]
    return items
