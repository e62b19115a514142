"""The release page (`make release-page`): release.md next to the manifest, links relative to it."""

from __future__ import annotations

import json
from pathlib import Path

from release.manifest import Manifest


def _gate_section(manifest: Manifest, path: Path) -> list[str]:
    record = json.loads(path.read_text())
    verdict = "passed" if record.get("passed") else "FAILED"
    lines = [f"### Gate: {record.get('environment')} ({verdict}, {record.get('finished')})", ""]
    lines += ["| Step | Command | Exit | Seconds | Log | Reports |", "|---|---|---|---|---|---|"]
    for step in record.get("steps", []):
        reports = ", ".join(f"[{Path(r).name}]({r})" for r in step.get("reports", [])) or "-"
        lines.append(
            f"| {step['name']} | `{' '.join(step['command'])}` | {step['rc']} | {step['seconds']} "
            f"| [log]({step['log']}) | {reports} |"
        )
    for name in record.get("skipped", []):
        lines.append(f"| {name} | not run (an earlier step failed) | - | - | - | - |")
    if record.get("manifest_sha256") != manifest.sha256:
        lines += ["", "**This record is for another manifest.**"]
    return [*lines, ""]


def render(manifest: Manifest) -> Path:
    d = manifest.directory
    lines = [
        f"# Release {manifest.version}",
        "",
        f"Commit `{manifest.commit}` · built {manifest.created} · registry `{manifest.registry}` · "
        f"[manifest.json](manifest.json) (sha256 `{manifest.sha256}`)",
        "",
        "## Images (deployed by digest)",
        "",
        "| Image | Reference | SBOM | Components |",
        "|---|---|---|---|",
    ]
    data = json.loads(manifest.path.read_text())
    for key, image in sorted(manifest.images.items()):
        counts = data["images"][key].get("components", {})
        summary = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) or "-"
        size = (d / image.sbom).stat().st_size
        lines.append(f"| {key} | `{image.ref}` | [{image.sbom}]({image.sbom}) ({size} bytes) | {summary} |")
    lines += ["", "## Staging gate and deployments", ""]
    gates = sorted(d.glob("gate-*.json"))
    for path in gates:
        lines += _gate_section(manifest, path)
    if not gates:
        lines += ["No gate has run for this release yet.", ""]
    logs = sorted((d / "deployments").glob("*.log")) if (d / "deployments").is_dir() else []
    lines += [f"- deployment log: [{p.name}](deployments/{p.name})" for p in logs]
    lines += ["", "## Changelog", ""]
    changelog = d / "changelog.md"
    body = changelog.read_text().splitlines()[1:] if changelog.is_file() else ["(none recorded)"]
    lines += [line for line in body if line.strip()] + [""]
    out = d / "release.md"
    out.write_text("\n".join(lines))
    return out
