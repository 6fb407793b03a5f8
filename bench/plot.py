"""bench/results.png from bench/results.json: how cost grows (the README shows it).

python -m bench.plot [--results FILE] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on a build machine

import matplotlib.pyplot as plt

HERE = Path(__file__).parent


def draw(results: dict[str, Any], out: Path) -> None:
    growth = results["growth"]
    fig, ((rec, reads), (replay, hop)) = plt.subplots(2, 2, figsize=(12, 8.5))
    m = results["machine"]
    fig.suptitle(f"How cost grows — make bench on {m['cores']} cores, {m['memory_gib']} GiB, Python {m['python']}")

    events = [g["events"] for g in growth["recorder"]]
    rec.plot(events, [g["per_s"] for g in growth["recorder"]], "o-", color="tab:blue", label="rows/s")
    rec.set(xscale="log", xlabel="events recorded", ylabel="rows per second", title="Recorder: throughput and memory")
    rec.set_ylim(bottom=0)
    memory = rec.twinx()
    memory.plot(events, [g["peak_rss_mib"] for g in growth["recorder"]], "s--", color="tab:red", label="peak RSS")
    memory.set_ylabel("peak resident memory, MiB")
    memory.set_ylim(bottom=0)
    rec.legend(handles=rec.get_lines() + memory.get_lines(), loc="lower right")

    cells = [g["cells"] for g in growth["reads"]]
    reads.plot(cells, [g["first_ms"] for g in growth["reads"]], "o-", label="first request (built)")
    reads.plot(cells, [g["p50_ms"] for g in growth["reads"]], "o-", label="then p50")
    reads.plot(cells, [g["p99_ms"] for g in growth["reads"]], "o--", label="then p99")
    revalidated = [(g["cells"], g["revalidate_p50_ms"]) for g in growth["reads"] if g["revalidate_p50_ms"] is not None]
    if revalidated:
        reads.plot(*zip(*revalidated, strict=True), "o:", label="304 revalidation p50")
    reads.set(xscale="log", yscale="log", xlabel="cells in the job", ylabel="ms", title="GET /jobs/{id}/matrix")
    reads.legend()

    replay.plot(events, [g["replay_s_per_million"] for g in growth["recorder"]], "o-", color="tab:green")
    replay.set(
        xscale="log", xlabel="events in the topics", ylabel="seconds per million events", title="beacon replay recorder"
    )
    replay.set_ylim(bottom=0)

    if "regions" in results:
        r = results["regions"]
        labels = ["p50", "p99"]
        x = range(len(labels))
        hop.bar([i - 0.2 for i in x], [r["direct_p50_ms"], r["direct_p99_ms"]], 0.4, label="one cluster")
        hop.bar([i + 0.2 for i in x], [r["hop_p50_ms"], r["hop_p99_ms"]], 0.4, label="region → central (MM2)")
        hop.set_xticks(list(x), labels)
        hop.set(ylabel="produce → consume, ms", title=f"Regional hop at {r['per_second']}/s")
        hop.legend()
    else:
        hop.set_axis_off()

    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.plot", description=__doc__)
    parser.add_argument("--results", type=Path, default=HERE / "results.json")
    parser.add_argument("--out", type=Path, default=HERE / "results.png")
    a = parser.parse_args()
    draw(json.loads(a.results.read_text()), a.out)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
