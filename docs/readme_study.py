"""Write the README's "The study, reproduced" (between `<!-- study:begin -->` and
`<!-- study:end -->`), never typing a number: the overview figure and, per experiment, columns
of the arm table of the committed report (REPORT/NAME/summary.md), and around them the prose of
study_prose.py, computed from the committed runs of experiments/study/.

    python docs/readme_study.py            # then read the diff of README.md
    python docs/readme_study.py --check    # exit 1 if README.md differs from the report and runs
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # study_prose, beside this file
from study_prose import load_study, prose  # noqa: E402

BEGIN, END = "<!-- study:begin -->", "<!-- study:end -->"
COLUMNS = ("arm", "seeds", "test acc (%)", "95% CI (%)", "reference (%)", "in 95% PI",
           "Holm p", "verdict")  # fmt: skip


def arm_table(summary: str) -> tuple[list[str], list[list[str]]]:
    """The first Markdown table of a summary page whose header starts with `arm`."""
    lines = summary.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| arm |"))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows[0], rows[2:]  # rows[1] is the alignment row


def description(summary: str) -> str:
    for line in summary.splitlines():
        if line.startswith("- **description**: "):
            return line.removeprefix("- **description**: ")
    return ""


def experiment_order(reference: Path) -> list[str]:
    """Experiments in the order the study published them."""
    with reference.open(newline="") as handle:
        return list(dict.fromkeys(row["experiment"] for row in csv.DictReader(handle)))


def section(report: Path, order: list[str], figure: str) -> str:
    parts = [f"![final test accuracy of every experiment of the study]({figure})", ""]
    for name in order:
        page = report / name / "summary.md"
        if not page.exists():
            continue
        text = page.read_text()
        header, rows = arm_table(text)
        keep = [header.index(column) for column in COLUMNS if column in header]
        parts += [f"**{name}**: {description(text)} ([summary]({page.as_posix()}))", ""]
        parts.append("| " + " | ".join(header[i] for i in keep) + " |")
        parts.append("|" + "|".join(":---" if header[i] in ("arm", "verdict") else "---:"
                                    for i in keep) + "|")  # fmt: skip
        parts += ["| " + " | ".join(row[i] for i in keep) + " |" for row in rows]
        parts.append("")
    return "\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--report", type=Path, default=Path("results/report"))
    parser.add_argument("--readme", type=Path, default=Path("README.md"))
    parser.add_argument("--reference", type=Path, default=Path("study_reference.csv"))
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--experiments", type=Path, default=Path("experiments/study"))
    parser.add_argument("--check", action="store_true", help="only check, write nothing")
    args = parser.parse_args()
    readme = args.readme.read_text()
    if BEGIN not in readme or END not in readme:
        raise SystemExit(f"{args.readme}: add the markers {BEGIN} and {END} where it goes")
    figure = (args.report / "overview.png").as_posix()
    tables = section(args.report, experiment_order(args.reference), figure)
    body = prose(load_study(args.results, args.experiments, args.reference), tables)
    head, rest = readme.split(BEGIN, 1)
    updated = f"{head}{BEGIN}\n{body}\n{END}{rest.split(END, 1)[1]}"
    if args.check:
        if updated != readme:
            raise SystemExit(
                f"{args.readme}: the study section differs from {args.report} and the runs "
                f"under {args.results}; run `python docs/readme_study.py` and read the diff"
            )
        print(f"{args.readme}: the study section matches {args.report} and {args.results}")
        return
    args.readme.write_text(updated)
    print(f"{args.readme}: study section rewritten from {args.report} and {args.results}")


if __name__ == "__main__":
    main()
