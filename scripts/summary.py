"""Print what `make test` ran and how it ended, from the files under .cache/results.

Exit status: 0 when every stage passed and every molecule scenario's verifier
ran at least one test, 1 otherwise.
"""

from __future__ import annotations

import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def junit_counts(path: Path) -> dict[str, int]:
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for suite in suites:
        for key in counts:
            counts[key] += int(suite.get(key, 0))
    return counts


def lines(path: Path) -> list[str]:
    return path.read_text(errors="replace").splitlines() if path.exists() else []


def main(results: Path) -> int:
    stages = {}
    for row in lines(results / "stages.tsv"):
        name, rc, seconds = row.split("\t")
        stages[name] = (int(rc), int(seconds))

    report = []
    passed = failed = 0

    def add(name: str, ok: bool, detail: str) -> None:
        nonlocal passed, failed
        report.append((name, "ok" if ok else "FAILED", detail))
        if ok:
            passed += 1
        else:
            failed += 1

    def stage_detail(name: str) -> str:
        return f"{stages[name][1]} s" if name in stages else "not run"

    def stage_ok(name: str) -> bool:
        return name in stages and stages[name][0] == 0

    add("setup", stage_ok("setup"), f"venv, Docker engine, Compose plugin, test images ({stage_detail('setup')})")

    findings = [ln for ln in lines(results / "yamllint.txt") if re.match(r"^\S+:\d+:\d+:", ln)]
    add("yamllint", stage_ok("yamllint"), f"{len(findings)} findings ({stage_detail('yamllint')})")

    findings = [ln for ln in lines(results / "ansible-lint.txt") if re.match(r"^\S+:\d+(:\d+)?: ", ln)]
    profile = next((ln for ln in lines(results / "ansible-lint.txt") if "profile" in ln.lower()), "").strip()
    add("ansible-lint", stage_ok("ansible-lint"), f"{len(findings)} findings, production profile ({stage_detail('ansible-lint')})"
        + (f" - {profile}" if profile and findings else ""))

    add("changelog fragments", stage_ok("changelog"), f"antsibull-changelog lint ({stage_detail('changelog')})")
    add("generated docs", stage_ok("docs"), f"role README tables, CHANGELOG.rst up to date ({stage_detail('docs')})")

    sanity = lines(results / "sanity.txt")
    ran = sum(1 for ln in sanity if ln.startswith("Running sanity test"))
    failed_tests = []
    for index, line in enumerate(sanity):
        if "sanity test(s) listed below" in line:
            failed_tests = [name for name in sanity[index + 1:] if re.match(r"^[a-z0-9-]+$", name)]
            break
    add("ansible-test sanity", stage_ok("sanity"),
        f"{ran} tests run, {len(failed_tests)} failed{' (' + ', '.join(failed_tests) + ')' if failed_tests else ''} ({stage_detail('sanity')})")

    unit_xml = results / "unit.xml"
    if unit_xml.exists():
        c = junit_counts(unit_xml)
        bad = c["failures"] + c["errors"]
        add("pytest (unit + collection build)", stage_ok("unit") and bad == 0 and c["tests"] > 0,
            f"{c['tests'] - bad - c['skipped']} passed, {bad} failed, {c['skipped']} skipped ({stage_detail('unit')})")
    else:
        add("pytest (unit + collection build)", False, "no results")

    cuda = [ln for ln in lines(results / "check-cuda.txt") if re.match(r"^cuda \S+: (PASS|FAIL)", ln)]
    add("CUDA compile (llamacpp_cmake_flags)", stage_ok("check-cuda") and bool(cuda),
        f"{', '.join(ln.split(' (')[0] for ln in cuda) or 'no result'} ({stage_detail('check-cuda')})")

    images = ("engine-image-cpu", "engine-image-vllm-cpu", "engine-image-vulkan")
    add("engine images", all(stage_ok(name) for name in images),
        "llama.cpp cpu and vulkan images (llamacpp_image role, built and checked), vLLM CPU image (vllm_image role) "
        f"(cpu {stage_detail(images[0])} then vulkan {stage_detail(images[2])}, vLLM {stage_detail(images[1])} beside them)")

    scenarios = sorted(p.parent.name for p in Path("molecule").glob("*/molecule.yml"))
    for scenario in scenarios:
        status = lines(results / f"molecule-{scenario}.status")
        verify_xml = results / f"verify-{scenario}.xml"
        c = junit_counts(verify_xml) if verify_xml.exists() else {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        if status and status[0].startswith("skipped"):
            add(f"molecule {scenario}", True,
                f"skipped: passed on {status[0].split(maxsplit=2)[2]} with the same inputs (GPUFLEET_FORCE=1 runs it)")
            continue
        if status and status[0].startswith("notrun"):
            add(f"molecule {scenario}", False, f"not run: {status[0].split(maxsplit=1)[1]}")
            continue
        ok = bool(status) and status[0].startswith("passed") and c["tests"] > 0 and c["failures"] + c["errors"] == 0
        took = f"{status[0].split()[1]} s" if status else "not run"
        # The base sequence has a check step; a scenario with its own test_sequence may leave it out.
        config = Path("molecule", scenario, "molecule.yml").read_text(encoding="utf-8")
        check = "test_sequence" not in config or re.search(r"^\s*-\s*check\s*$", config, re.M)
        steps = "converge, idempotence (changed=0), check, verify" if check else "converge, idempotence (changed=0), verify"
        add(f"molecule {scenario}", ok, f"{steps}: {c['tests']} testinfra tests ({took})")

    width = max(len(row[0]) for row in report)
    for name, verdict, detail in report:
        print(f"  {name:<{width}}  {verdict:<6}  {detail}")
    print(f"checks: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
