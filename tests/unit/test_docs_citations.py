"""Every "METHOD x.y" citation in the repository resolves to a section heading of docs/method.md.

Code comments, configs, benchmarks, scripts, tests and records cite the method as "METHOD 12",
"METHOD 8.2", "METHOD 3.4-3.6", "METHOD 1.5, 5.4", "METHOD 7.2 and 12" or "METHOD.md section 11";
docs/method.md carries those sections under headings "## 12. ..." / "### 8.2 ...". The test FAILS when a
citation names a section that docs/method.md lacks (a renumbered or deleted section, or a typo such as
"METHOD 7.8"), listing file:line and the missing number. A range within one section ("3.4-3.6") needs
every subsection it spans. Pure text scanning, well under a second.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
METHOD_DOC = REPO / "docs" / "method.md"

# Where citations live; files are read only with these suffixes (experiments/ holds large binaries).
SCANNED = ("src", "conf", "benchmarks", "scripts", "tests", "docs", "experiments", "README.md")
TEXT_SUFFIXES = {".py", ".yaml", ".yml", ".md", ".txt", ".sh", ".toml", ".cfg"}
SKIPPED_DIRS = {"__pycache__", ".pytest_cache", "samples", "outputs"}

_NUMBER = r"\d+(?:\.\d+)?"
# "METHOD 3.4-3.6", "METHOD 1.5, 5.4", "METHOD 7.2 and 12", "METHOD.md section 11", "docs METHOD.md section 12".
CITATION = re.compile(rf"METHOD(?:\.md)?\s+(?:section\s+)?({_NUMBER}(?:\s*(?:[-–,]|and)\s*{_NUMBER})*)")
HEADING = re.compile(rf"^#{{2,3}}\s+({_NUMBER})\.?\s", re.MULTILINE)


def method_sections(text: str) -> set[str]:
    """Section numbers of the '## N.' and '### N.M' headings of a markdown text, e.g. {'3', '3.4'}."""
    return set(HEADING.findall(text))


def cited_sections(citation: str) -> list[str]:
    """Section numbers named by the number part of one citation ('3.4-3.6' -> ['3.4', '3.5', '3.6'])."""
    sections: list[str] = []
    for part in re.split(r"\s*(?:,|and)\s*", citation.strip()):
        ends = re.split(r"\s*[-–]\s*", part)
        if len(ends) == 2 and "." in ends[0] and ends[0].split(".")[0] == ends[1].split(".")[0]:
            major, first = ends[0].split(".")
            last = int(ends[1].split(".")[1])
            sections += [f"{major}.{minor}" for minor in range(int(first), last + 1)]
        else:
            sections += ends
    return sections


def dangling_citations(text: str, sections: set[str], where: str) -> list[str]:
    """'where:line: METHOD <cited> -> missing N' for each cited number of `text` not in `sections`."""
    problems = []
    for match in CITATION.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        for number in cited_sections(match.group(1)):
            if number not in sections:
                problems.append(f"{where}:{line}: METHOD {match.group(1)} -> missing {number}")
    return problems


def _scanned_files() -> list[Path]:
    files = []
    for entry in SCANNED:
        root = REPO / entry
        if root.is_file():
            files.append(root)
            continue
        for path in root.rglob("*"):
            parts = set(path.relative_to(REPO).parts)
            if (
                path.suffix in TEXT_SUFFIXES
                and path.is_file()
                and not parts & SKIPPED_DIRS
                and not any(p.endswith(".egg-info") for p in parts)
                and path.resolve() not in {METHOD_DOC.resolve(), Path(__file__).resolve()}
            ):
                files.append(path)
    return files


def test_every_method_citation_resolves_to_a_section_of_docs_method_md():
    """Catches: a citation of a section that docs/method.md does not have (renumbered, deleted, typo)."""
    sections = method_sections(METHOD_DOC.read_text(encoding="utf-8"))
    problems: list[str] = []
    citations = 0
    for path in _scanned_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        citations += len(CITATION.findall(text))
        problems += dangling_citations(text, sections, str(path.relative_to(REPO)))
    # The scan must see the citations at all (a broken pattern or file walk would pass vacuously);
    # there were 83 when this test was written.
    assert citations >= 40, f"found only {citations} METHOD citations: is the scan or the pattern broken?"
    assert not problems, "citations without a section in docs/method.md:\n" + "\n".join(problems)


def test_checker_reports_a_missing_section_and_accepts_present_ones():
    """Catches: a checker that never fails (pattern or heading parser matching nothing or everything)."""
    doc = "# t\n## 3. Network\n### 3.4 Trunk\n### 3.5 Blocks\n## 12. Definitions\n"
    sections = method_sections(doc)
    assert sections == {"3", "3.4", "3.5", "12"}
    tag = "METH" + "OD"  # kept out of this file's own text so the repository scan does not see it
    assert dangling_citations(f"x ({tag} 3.4) y {tag} 12's [3.6, 4.0] Å", sections, "f") == []
    missing = dangling_citations(f"a\nb ({tag} 3.4-3.6, 12 and 9)", sections, "f")
    assert missing == [
        f"f:2: {tag} 3.4-3.6, 12 and 9 -> missing 3.6",
        f"f:2: {tag} 3.4-3.6, 12 and 9 -> missing 9",
    ]


def test_citation_forms_used_in_the_repository_parse_to_their_sections():
    """Catches: lists, ranges and the 'METHOD.md section N' form being read as fewer or wrong sections."""
    tag = "METH" + "OD"
    cases = {
        f"({tag} 2.3-2.6) and": ["2.3", "2.4", "2.5", "2.6"],
        f"({tag} 1.5, 5.4): 1000": ["1.5", "5.4"],
        f"({tag} 7.2 and 12).": ["7.2", "12"],
        f"({tag} 3, 10): D 384, 5 IPA": ["3", "10"],
        f"docs {tag}.md section 12": ["12"],
        f"{tag} 12's [3.6, 4.0] Å": ["12"],
        f"({tag} 8.2: translations": ["8.2"],
    }
    for text, expected in cases.items():
        (match,) = CITATION.finditer(text)
        assert cited_sections(match.group(1)) == expected, text
