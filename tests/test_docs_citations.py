"""Every quirk code ("B11"), reference section ("§4.4", "App. A.3") and design section ("design §4") cited in
the repository resolves to a heading of docs/reference.md or docs/design.md."""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCANNED = ["fedgmr", "data_prep", "workflow", "paper_figures", "config", "benchmarks", "README.md"]
SUFFIXES = {".py", ".smk", ".yaml", ".yml", ".md", ".rst", ".txt", ""}
SKIP_PARTS = {"__pycache__", ".snakemake", "results"}

B_CODE = re.compile(r"(?<![\w-])B(\d{1,2})(?![\w-])")
SECTION = re.compile(r"(design(?:\.md)?\s*)?§\s?(\d+(?:\.\d+)*)")
APPENDIX = re.compile(r"\b(?:App\.|Appendix)\s+(A(?:\.\d+)?)\b")


def scanned_files():
    for entry in SCANNED:
        path = REPO / entry
        files = [path] if path.is_file() else sorted(path.rglob("*"))
        for f in files:
            if f.is_file() and f.suffix in SUFFIXES and not SKIP_PARTS & set(f.parts):
                yield f


def citations(text: str) -> tuple[set[str], set[str], set[str], set[str]]:
    """(B codes, reference sections, design sections, appendix sections) cited in `text`."""
    codes = {f"B{m.group(1)}" for m in B_CODE.finditer(text)}
    ref, design = set(), set()
    for m in SECTION.finditer(text):
        (design if m.group(1) else ref).add(m.group(2))
    appendix = {m.group(1) for m in APPENDIX.finditer(text)}
    return codes, ref, design, appendix


def headings(path: Path) -> list[str]:
    return [line.lstrip("#").strip() for line in path.read_text().splitlines() if line.startswith("#")]


def reference_anchors() -> tuple[set[str], set[str], set[str]]:
    codes, sections, appendix = set(), set(), set()
    for h in headings(REPO / "docs" / "reference.md"):
        if m := re.match(r"B(\d{1,2})\b", h):
            codes.add(f"B{m.group(1)}")
        if m := re.match(r"§(\d+(?:\.\d+)*)", h):
            sections.add(m.group(1))
        if m := re.match(r"App\. (A(?:\.\d+)?)", h):
            appendix.add(m.group(1))
    return codes, sections, appendix


def design_anchors() -> set[str]:
    return {m.group(1) for h in headings(REPO / "docs" / "design.md") if (m := re.match(r"(\d+)\.", h))}


def test_citation_parser_finds_each_kind():
    codes, ref, design, appendix = citations(
        "see B11 and (B2); reference §4.4, §10; design §3; App. A.3, Appendix A.5; not B12a nor sha-B7")
    assert codes == {"B11", "B2"}
    assert ref == {"4.4", "10"}
    assert design == {"3"}
    assert appendix == {"A.3", "A.5"}


def test_reference_covers_every_quirk_and_section_of_the_source():
    codes, sections, appendix = reference_anchors()
    assert codes == {f"B{i}" for i in range(1, 32)}
    assert {"1.6", "3.9", "4.4", "5.1", "6.5", "7.6", "9.3", "10"} <= sections
    assert {"A.1", "A.2", "A.3", "A.4", "A.5"} <= appendix


@pytest.mark.parametrize("path", list(scanned_files()), ids=lambda p: str(p.relative_to(REPO)))
def test_every_citation_resolves_in_docs(path):
    codes, ref, design, appendix = citations(path.read_text(errors="replace"))
    known_codes, known_sections, known_appendix = reference_anchors()
    missing = sorted(codes - known_codes) + [f"§{s}" for s in sorted(ref - known_sections)]
    missing += [f"design §{s}" for s in sorted(design - design_anchors())]
    missing += [f"App. {s}" for s in sorted(appendix - known_appendix)]
    assert not missing, f"{path.relative_to(REPO)} cites {missing}, absent from docs/reference.md / docs/design.md"
