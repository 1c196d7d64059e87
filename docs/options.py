"""Write the tables of run options in README.md and docs/study.md from RunConfig's declarations,
never by hand, between the markers `<!-- options:begin -->` and `<!-- options:end -->`.

    python docs/options.py            # then read the diff
    python docs/options.py --check    # exit 1 if a table differs from RunConfig
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # document this checkout's code, not an installed copy

from fmnist_ray.spec.config import (  # noqa: E402
    CONFIG_FIELDS,
    NEUTRAL,
    SEED_FIELD,
    RunConfig,
    allowed_values,
    choices,
    format_value,
)

BEGIN, END = "<!-- options:begin -->", "<!-- options:end -->"
SEED_NOTE = (
    "; in an experiment file, set by the top-level `seeds = [...]` (one run per seed), "
    "never in `[base]`, `[grid]` or `[[variants]]`"
)


def default_text(name: str) -> str:
    """The study's base-case value (LeNet-5 options: LeNet-5's), 'unset' for none."""
    value = getattr(RunConfig(), name)
    return "unset" if value is None else f"`{format_value(value)}`"


def allowed_text(name: str) -> str:
    literals = choices(name)
    text = ", ".join(f"`{c}`" for c in literals) if literals else allowed_values(name)
    return text + (SEED_NOTE if name == SEED_FIELD else "")


def meaning(name: str) -> str:
    text = RunConfig.model_fields[name].description or ""
    if name in NEUTRAL:
        text += (
            f" Added after the first results: at `{format_value(NEUTRAL[name])}` it is left "
            "out of the run id (docs/schema.md)."
        )
    return text


def readme_table() -> str:
    rows = [f"| `{n}` | {default_text(n)} | {allowed_text(n)} |" for n in CONFIG_FIELDS]
    return "\n".join(["| option | default | allowed |", "| --- | --- | --- |", *rows])


def study_table() -> str:
    rows = [
        f"| `{n}` | {default_text(n)} | {allowed_text(n)} | {meaning(n)} |" for n in CONFIG_FIELDS
    ]
    header = ["| option | default | allowed | meaning |", "| --- | --- | --- | --- |"]
    return "\n".join([*header, *rows])


TABLES = {REPO / "README.md": readme_table, REPO / "docs" / "study.md": study_table}


def updated(text: str, table: str, path: Path) -> str:
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{path}: add the markers {BEGIN} and {END} where the table goes")
    head, rest = text.split(BEGIN, 1)
    return f"{head}{BEGIN}\n{table}\n{END}{rest.split(END, 1)[1]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="only check, write nothing")
    args = parser.parse_args()
    stale = []
    for path, make in TABLES.items():
        text = path.read_text()
        new = updated(text, make(), path)
        if new != text:
            stale.append(path.relative_to(REPO).as_posix())
            if not args.check:
                path.write_text(new)
    if args.check and stale:
        raise SystemExit(f"{', '.join(stale)}: the options table differs from RunConfig")
    print(f"options tables {'rewritten' if stale else 'up to date'}: {', '.join(stale) or 'all'}")


if __name__ == "__main__":
    main()
