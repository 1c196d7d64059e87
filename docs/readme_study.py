"""Write "The study, reproduced" (docs/reproduced.md, between `<!-- study:begin -->` and
`<!-- study:end -->`) and its summary in the README (the overview figure and the verdicts on the
study's conclusions, between `<!-- study-summary:begin -->` and `<!-- study-summary:end -->`),
never typing a number: per experiment, columns of the arm table of the committed report
(REPORT/NAME/summary.md), and around them the prose of study_prose.py, computed from the
committed runs of experiments/study/.

    python docs/readme_study.py            # then read the diff of README.md and docs/reproduced.md
    python docs/readme_study.py --check    # exit 1 if either differs from the report and runs
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # study_prose, beside this file
from study_prose import conclusions, load_study, prose  # noqa: E402

BEGIN, END = "<!-- study:begin -->", "<!-- study:end -->"  # in docs/reproduced.md
SUMMARY = "<!-- study-summary:begin -->", "<!-- study-summary:end -->"  # in README.md
FIGURE_ALT = "final test accuracy of every experiment of the study"
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
    parts = [f"![{FIGURE_ALT}]({figure})", ""]
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


def from_docs(text: str) -> str:
    """The same Markdown for a page in docs/: links relative to the repository get `../`."""
    text = re.sub(r"\]\((?!https?://|#|/)([^)\s]+)\)", r"](../\1)", text)
    return text.replace("](../docs/", "](")


def between(path: Path, markers: tuple[str, str], body: str) -> tuple[str, str]:
    """The file's text, and its text with `body` between the markers."""
    text = path.read_text()
    begin, end = markers
    if begin not in text or end not in text:
        raise SystemExit(f"{path}: add the markers {begin} and {end} where it goes")
    head, rest = text.split(begin, 1)
    return text, f"{head}{begin}\n{body}\n{end}{rest.split(end, 1)[1]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--report", type=Path, default=Path("results/report"))
    parser.add_argument("--readme", type=Path, default=Path("README.md"))
    parser.add_argument("--page", type=Path, default=Path("docs/reproduced.md"))
    parser.add_argument("--reference", type=Path, default=Path("study_reference.csv"))
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--experiments", type=Path, default=Path("experiments/study"))
    parser.add_argument("--check", action="store_true", help="only check, write nothing")
    args = parser.parse_args()
    figure = (args.report / "overview.png").as_posix()
    study = load_study(args.results, args.experiments, args.reference)
    tables = section(args.report, experiment_order(args.reference), figure)
    summary = f"![{FIGURE_ALT}]({figure})\n\n{conclusions(study)}"
    targets = [(args.page, (BEGIN, END), from_docs(prose(study, tables))),
               (args.readme, SUMMARY, summary)]  # fmt: skip
    for path, markers, body in targets:
        text, updated = between(path, markers, body)
        if args.check:
            if updated != text:
                raise SystemExit(
                    f"{path}: the study section differs from {args.report} and the runs "
                    f"under {args.results}; run `python docs/readme_study.py` and read the diff"
                )
            print(f"{path}: the study section matches {args.report} and {args.results}")
            continue
        path.write_text(updated)
        print(f"{path}: study section rewritten from {args.report} and {args.results}")


if __name__ == "__main__":
    main()
