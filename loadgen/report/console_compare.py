"""Report layer: a comparison on the console: a table per candidate (speedups with intervals,
paired wins, failures, the verdicts) and the lines that say what it means and what to doubt."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from loadgen.metrics.comparison import ComparedLevel, CompareResult, Speedup, candidate_verdict
from loadgen.report.console import invalid_levels, invalid_variants


def compare_table(baseline: str, candidate: str, rows: list[ComparedLevel]) -> Table:
    table = Table(title=f"{candidate} vs {baseline}: speedup (baseline ÷ candidate, 95% CI)", title_justify="left")
    with_acceptance = any(row.comparison.candidate_acceptance_rate is not None for row in rows)
    for column in ("level", "TTFT", "TPOT", "end-to-end", "tok/s ratio", "paired wins", "failed\nbase/cand"):
        table.add_column(column, justify="right")
    if with_acceptance:
        table.add_column("accepted", justify="right")
    table.add_column("valid", justify="left")

    def cell(entry: Speedup) -> str:
        return entry.text("no CI")  # the console's columns are narrow

    for row in rows:
        comparison = row.comparison
        wins = comparison.paired_candidate_faster
        speedup = comparison.e2e.speedup
        style = "dim" if speedup is None else "green" if speedup >= 1 else "red"
        ratio = comparison.throughput_ratio
        cells = [row.level, cell(comparison.ttft), cell(comparison.tpot),
                 cell(comparison.e2e), "–" if ratio is None else f"{ratio:.2f}",
                 "–" if wins is None else f"{wins:.0%}", comparison.requests.failed_text()]  # fmt: skip
        if with_acceptance:
            rate = comparison.candidate_acceptance_rate
            cells.append("–" if rate is None else f"{rate:.0%}")
        invalid = invalid_variants(comparison)
        cells.append(f"✗ {invalid}" if invalid else "ok")
        table.add_row(*cells, style="dim" if invalid else style)
    return table


def compare_lines(result: CompareResult, candidate: str) -> list[Text]:
    """What a candidate's rows mean (the crossover, or faster at every level) and what to doubt in them."""
    rows = result.rows(candidate)
    lines: list[Text] = []
    invalid = invalid_levels(rows)
    if invalid:
        lines.append(Text(f"INVALID levels, not a fair comparison: {', '.join(invalid)}: see each level's "
                          "summary.json validity", style="bold red"))  # fmt: skip
    unknown = [row for row in rows if row.comparison.e2e.speedup is None]
    lines += [Text(f"{row.level}: no speedup: {row.comparison.e2e.reason}", style="yellow") for row in unknown]
    verdict = candidate_verdict(rows, candidate)
    lines.append(Text(verdict.text, style="" if verdict.fair else "bold red"))
    return lines + _warnings(rows, candidate)


def _warnings(rows: list[ComparedLevel], candidate: str) -> list[Text]:
    lines = []
    cache_differs = [row.level for row in rows if row.comparison.cache_hits_differ]
    if cache_differs:
        lines.append(Text(f"warning: the variants' prefix-cache hits differ at {', '.join(cache_differs)} "
                          "(usage cached_tokens): TTFT is then not like for like; restart the servers or change "
                          "--seed between runs", style="bold yellow"))  # fmt: skip
    identical = [row.comparison.identical_outputs for row in rows]
    if any(share is not None and share < 1 for share in identical):
        shares = ", ".join("–" if s is None else f"{s:.0%}" for s in identical)
        lines.append(Text(f"warning: {candidate}'s answers differ from the baseline's for some prompts "
                          f"(identical: {shares})", style="bold yellow"))  # fmt: skip
    if any(not row.comparison.lengths_match for row in rows):
        lines.append(Text("warning: output lengths differ between variants: the comparison is not like for like "
                          "(use --ignore-eos or fixed lengths)", style="bold yellow"))  # fmt: skip
    return lines
