"""python -m analysis report DIR [--out OUT] | compare A B [--out OUT]: the reference study's
tables, tests and figures for one study, or two studies of one grid set side by side."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from analysis import compare
from analysis.load import load_experiment
from analysis.report import ReportError, ReportOptions, build


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m analysis",
        description="The paper's tables, tests and figures from an experiment directory. The manual: docs/report.md.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    report = sub.add_parser(
        "report",
        help="write report.md, CSV tables and PNG figures for an experiment directory",
        description="Every table of the report, what it asks and how to read it: docs/report.md.",
    )
    report.add_argument(
        "directory",
        type=Path,
        help="experiment directory (<storage-path>/<name>), or a trials.csv a report wrote (every table of the scores)",
    )
    report.add_argument("--out", type=Path, help="output folder (default: DIR/report)")
    report.add_argument(
        "--alpha", type=float, default=0.05, help="significance level; intervals are at 1 - alpha (default: 0.05)"
    )
    report.add_argument(
        "--board-power-w",
        type=float,
        default=300.0,
        help="GPU board power for the energy estimate where no counter was recorded (default: 300)",
    )
    report.add_argument("--carbon-kg-per-kwh", type=float, default=0.382, help="carbon intensity (default: 0.382)")
    both = sub.add_parser(
        "compare",
        help="the same study run on two machines: equal digests, shifts beyond the noise, "
        "differing environment; writes compare.md and CSVs",
        description="Did B reproduce A? docs/report.md#compare-did-b-reproduce-a",
    )
    both.add_argument("a", type=Path, help="experiment directory A")
    both.add_argument("b", type=Path, help="experiment directory B")
    both.add_argument("--out", type=Path, help="output folder (default: A/compare-<name of B>)")
    both.add_argument("--alpha", type=float, default=0.05, help="significance level (default: 0.05)")
    for sub_parser in (report, both):
        sub_parser.add_argument(
            "--margin",
            type=float,
            default=0.1,
            help="points: a shift under this counts as none in the equivalence test (default: 0.1)",
        )
    return parser


def main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 0 < args.alpha < 1:
        parser.exit(2, "error: --alpha: must be between 0 and 1\n")
    if not args.margin > 0:
        parser.exit(2, "error: --margin: must be a number of points > 0\n")
    if args.command == "report":
        for flag, value in (("--board-power-w", args.board_power_w), ("--carbon-kg-per-kwh", args.carbon_kg_per_kwh)):
            if not value >= 0:
                parser.exit(2, f"error: {flag}: must be a number >= 0\n")

    try:
        if args.command == "compare":
            print(compare.run(args.a, args.b, args.out, args.alpha, args.margin))
            return 0
        experiment = load_experiment(args.directory)
        out = args.out or experiment.path / "report"
        print(
            build(
                experiment,
                out,
                ReportOptions(
                    alpha=args.alpha,
                    board_power_w=args.board_power_w,
                    carbon_kg_per_kwh=args.carbon_kg_per_kwh,
                    margin_pts=args.margin,
                ),
            )
        )
    except (ReportError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; the output folder was left as it was", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
