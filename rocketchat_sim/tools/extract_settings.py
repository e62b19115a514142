"""Derive rocketchat_sim/data/settings.yaml from Rocket.Chat's own setting definitions.

Rocket.Chat registers its settings in TypeScript, one call per setting::

    settingsRegistry.addGroup('General', async function () {
        await this.section('REST API', async function () {
            await this.add('API_Allow_Infinite_Count', true, { type: 'boolean', public: false });
        });
        await this.with({ tab: 'X', enterprise: true, modules: ['m'] }, async function () { ... });
    });
    await settingsRegistry.add('uniqueID', process.env.DEPLOYMENT_ID || Random.id(), { public: true });

This reads those calls (it does not run any TypeScript): the id, the default when it is a literal (or a
`const` of the same file holding a literal), and the literal options Rocket.Chat keeps on the setting
(type, public, hidden, readonly, secret, enterprise, invalidValue, modules, section, tab), with the group
and section taken from the enclosing addGroup/section/with calls, as SettingsRegistry merges them.
getSettingDefaults supplies what a call leaves out: type 'string', public false. A default that is an
expression is kept as text with ``default_source: expression`` and, where the value a fresh workspace gets is
obvious, that value as ``default``.

Usage (from the repository root)::

    python -m rocketchat_sim.tools.extract_settings --source /path/to/Rocket.Chat \
        --commit <sha or tag> > rocketchat_sim/data/settings.yaml

``--source`` is a Rocket.Chat checkout (or a directory with the same relative paths); FILES lists the
definition files read, in the order Rocket.Chat registers them. A file whose first line is
``// ... @ <sha>`` records the commit it was read at; the output's header lists every file with it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The definition files, relative to the Rocket.Chat repository root.
CORE = "apps/meteor/server/settings/"
EE = "apps/meteor/ee/server/settings/"
CORE_FILES = (
    "accounts analytics bots call-center cas crowd custom-emoji custom-sounds discussions email e2e "
    "federation file-upload general irc ldap logs layout message meta misc mobile oauth omnichannel "
    "otr push rate retention-policy setup-wizard slackbridge smarsh threads troubleshoot "
    "video-conference userDataDownload webdav webrtc"
)
EE_FILES = "abac contact-verification deviceManagement ldap outlookCalendar saml video-conference voip"
OTHER_FILES = [  # registered outside the settings folders
    "apps/meteor/ee/server/apps/settings.ts",
    "apps/meteor/ee/app/livechat-enterprise/server/settings.ts",
]
FILES = (
    [CORE + name + ".ts" for name in CORE_FILES.split()]
    + [EE + name + ".ts" for name in EE_FILES.split()]
    + OTHER_FILES
)

# Template-literal ids: ee/server/configuration/saml.ts registers the SAML settings for provider 'Default'.
TEMPLATE_VARS = {"name": "Default"}

# Defaults that are expressions, with the value a fresh workspace gets when that value is plain.
EVALUATED = {
    "Random.id()": None,  # a random 17-character id per workspace: generated at start
    "process.env.DEPLOYMENT_ID || Random.id()": None,
    "new Date(0)": "1970-01-01T00:00:00.000Z",
}
# Site_Url defaults to ROOT_URL; the simulator sets it from its own URL.
SITE_URL_EXPRESSION = "__meteor_runtime_config__"

KEPT_OPTIONS = ("hidden", "readonly", "secret", "enterprise", "invalidValue", "modules")

_CALL = re.compile(r"\b(settingsRegistry|this)\s*\.\s*(addGroup|section|with|add)\s*\(")
_CONST = re.compile(r"\bconst\s+([A-Za-z_$][\w$]*)\s*(?::[^=]+)?=\s*")


class Expression(str):
    """Source text of a value that is not a literal."""


class ParseError(ValueError):
    pass


# --- lexical helpers ---------------------------------------------------------------------------


def strip_comments(text: str) -> str:
    """Blank out // and /* */ comments (keeping offsets), leaving strings intact."""
    out = list(text)
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in "'\"`":
            i = _skip_string(text, i)
            continue
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out[i:j] = " " * (j - i)
            i = j
            continue
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out[i:j] = [ch if ch == "\n" else " " for ch in text[i:j]]
            i = j
            continue
        i += 1
    return "".join(out)


def _skip_string(text: str, i: int) -> int:
    quote = text[i]
    i += 1
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == quote:
            return i + 1
        if quote == "`" and text.startswith("${", i):
            i = _matching(text, i + 1) + 1
            continue
        i += 1
    raise ParseError("unterminated string")


def _matching(text: str, i: int) -> int:
    """Index of the bracket closing the one at i."""
    pairs = {"(": ")", "[": "]", "{": "}"}
    stack = [pairs[text[i]]]
    i += 1
    while i < len(text):
        c = text[i]
        if c in "'\"`":
            i = _skip_string(text, i)
            continue
        if c in pairs:
            stack.append(pairs[c])
        elif c in ")]}":
            if c != stack.pop():
                raise ParseError(f"unbalanced {c!r} at {i}")
            if not stack:
                return i
        i += 1
    raise ParseError("unbalanced brackets")


def split_top(text: str, sep: str = ",") -> list[str]:
    """Split at separators outside brackets and strings; empty trailing parts dropped."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(text):
        c = text[i]
        if c in "'\"`":
            i = _skip_string(text, i)
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "v": "\v", "0": "\0"}


def unescape(body: str) -> str:
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        nxt = body[i + 1]
        if nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            i += 2
        elif nxt == "u":
            out.append(chr(int(body[i + 2 : i + 6], 16)))
            i += 6
        elif nxt == "x":
            out.append(chr(int(body[i + 2 : i + 4], 16)))
            i += 4
        elif nxt == "\n":
            i += 2
        else:
            out.append(nxt)
            i += 2
    return "".join(out)


def literal(src: str, consts: dict[str, Any], template_vars: dict[str, str] | None = None) -> Any:
    """The value of a JS literal (string, number, boolean, null, array, object), else an Expression."""
    src = src.strip()
    if not src:
        raise ParseError("empty value")
    if src[0] in "'\"" and _skip_string(src, 0) == len(src):
        return unescape(src[1:-1])
    if src[0] == "`" and _skip_string(src, 0) == len(src):
        body = src[1:-1]
        if "${" in body:
            if not template_vars:
                return Expression(src)
            for name, value in template_vars.items():
                body = body.replace("${" + name + "}", value)
            if "${" in body:
                return Expression(src)
        return unescape(body)
    if src in ("true", "false"):
        return src == "true"
    if src in ("null", "undefined"):
        return None
    if re.fullmatch(r"-?\d+", src):
        return int(src)
    if re.fullmatch(r"-?\d*\.\d+", src):
        return float(src)
    if src[0] == "[" and _matching(src, 0) == len(src) - 1:
        items = [literal(p, consts) for p in split_top(src[1:-1])]
        return Expression(src) if any(isinstance(v, Expression) for v in items) else items
    if src[0] == "{" and _matching(src, 0) == len(src) - 1:
        return options(src, consts)
    if re.fullmatch(r"[A-Za-z_$][\w$]*", src) and src in consts:
        return consts[src]
    return Expression(src)


def options(src: str, consts: dict[str, Any]) -> dict[str, Any]:
    """The keys of an object literal; values that are not literals become Expressions."""
    out: dict[str, Any] = {}
    for part in split_top(src.strip()[1:-1]):
        if part.startswith("..."):
            continue
        key, colon, value = part.partition(":")
        key = key.strip().strip("'\"")
        out[key] = literal(value, consts) if colon else Expression(key)  # shorthand {enableQuery}
    return out


# --- the registry --------------------------------------------------------------------------------


@dataclass
class Call:
    kind: str
    start: int
    end: int
    args: list[str]


@dataclass
class Setting:
    id: str
    group: str | None
    default: Any
    options: dict[str, Any] = field(default_factory=dict)
    source: str = ""


def file_consts(text: str) -> dict[str, Any]:
    consts: dict[str, Any] = {}
    for match in _CONST.finditer(text):
        start = match.end()
        if text[start] in "[{'\"`" or re.match(r"-?\d", text[start]):
            end = _matching(text, start) + 1 if text[start] in "[{" else _literal_end(text, start)
            value = literal(text[start:end], consts)
            if not isinstance(value, Expression):
                consts[match.group(1)] = value
    return consts


def _literal_end(text: str, i: int) -> int:
    if text[i] in "'\"`":
        return _skip_string(text, i)
    m = re.match(r"-?[\d.]+", text[i:])
    return i + (m.end() if m else 0)


def calls(text: str) -> list[Call]:
    found = []
    for match in _CALL.finditer(text):
        open_paren = match.end() - 1
        close = _matching(text, open_paren)
        found.append(Call(match.group(2), match.start(), close, split_top(text[open_paren + 1 : close])))
    return found


def settings_of(text: str, source: str, template_vars: dict[str, str]) -> list[Setting]:
    text = strip_comments(text)
    consts = file_consts(text)
    all_calls = calls(text)
    scopes = [c for c in all_calls if c.kind in ("addGroup", "section", "with")]
    found = []
    for call in all_calls:
        if call.kind != "add":
            continue
        enclosing = sorted((s for s in scopes if s.start < call.start < s.end), key=lambda s: s.start)
        merged: dict[str, Any] = {}
        group = None
        for scope in enclosing:
            if scope.kind == "addGroup":
                group = literal(scope.args[0], consts)
            elif scope.kind == "section":
                merged["section"] = literal(scope.args[0], consts)
            else:
                merged.update(options(scope.args[0], consts))
        sid = literal(call.args[0], consts, template_vars)
        if isinstance(sid, Expression):
            raise ParseError(f"{source}: setting id is not a literal: {call.args[0]}")
        own = options(call.args[2], consts) if len(call.args) > 2 else {}
        merged.update(own)
        group = merged.pop("group", group)
        default = literal(call.args[1], consts, template_vars)
        found.append(Setting(sid, group, default, merged, source))
    return found


def fact(setting: Setting) -> dict[str, Any]:
    opts = setting.options
    out: dict[str, Any] = {}
    default = setting.default
    if isinstance(default, Expression):
        text = " ".join(default.split())
        out["default"] = None if SITE_URL_EXPRESSION in text else EVALUATED.get(text)
        out["default_source"] = "expression"
        out["default_expression"] = text
    else:
        out["default"] = default
    kind = opts.get("type", "string")
    out["type"] = kind if isinstance(kind, str) else "string"
    out["public"] = opts.get("public") is True
    if isinstance(opts.get("section"), str):
        out["section"] = opts["section"]
    if isinstance(opts.get("tab"), str):
        out["tab"] = opts["tab"]
    for key in KEPT_OPTIONS:
        if key not in opts:
            continue
        value = opts[key]
        if key == "invalidValue":  # false and '' are values here
            out[key] = {"expression": str(value)} if isinstance(value, Expression) else value
        elif (key == "modules" and isinstance(value, list) and value) or value is True:
            out[key] = value
    return out


def extract(source: Path, files: list[str] = FILES) -> tuple[dict[str, dict[str, dict]], dict[str, str]]:
    registry: dict[str, dict[str, dict]] = {}
    seen: dict[str, str] = {}
    commits: dict[str, str] = {}
    for rel in files:
        path = source / rel
        if not path.is_file():
            raise SystemExit(f"missing definition file: {path}")
        text = path.read_text(encoding="utf-8")
        head = re.match(r"//[^\n]*@\s*([0-9a-f]{7,40})", text)
        commits[rel] = head.group(1) if head else "(commit not recorded)"
        for setting in settings_of(text, rel, TEMPLATE_VARS):
            if setting.id in seen:  # Rocket.Chat keeps the first registration; later adds update options only
                continue
            seen[setting.id] = rel
            registry.setdefault(setting.group or "No_Group", {})[setting.id] = fact(setting)
    return registry, commits


def render(registry: dict[str, dict[str, dict]], commits: dict[str, str], commit: str) -> str:
    import yaml

    total = sum(len(g) for g in registry.values())
    lines = [
        "# Rocket.Chat 8.x settings the simulator registers: group → id → default, type, public, and",
        "# the options Rocket.Chat keeps (section, tab, hidden, readonly, secret, enterprise, invalidValue,",
        "# modules). Facts, not code: generated by rocketchat_sim/tools/extract_settings.py from",
        "# Rocket.Chat's setting definitions (apps/meteor/server/settings/*.ts,",
        "# apps/meteor/ee/server/settings/*.ts, the apps and livechat-enterprise settings). Do not edit",
        "# by hand.",
        f"# Source: RocketChat/Rocket.Chat {commit}. {total} settings in {len(registry)} groups.",
    ]
    if commits:
        lines.append("# Each file as stored at (commit per file):")
        lines += [f"#   {rel} @ {sha}" for rel, sha in sorted(commits.items())]

    class Dumper(yaml.SafeDumper):  # sequences indented under their key, as yamllint wants them
        def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
            super().increase_indent(flow, False)

    def long_text(dumper: yaml.SafeDumper, text: str) -> yaml.Node:  # quoted, so it folds at width
        style = '"' if len(text) > 80 or "\n" in text else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)

    Dumper.add_representer(str, long_text)
    body = yaml.dump(
        registry, Dumper=Dumper, sort_keys=False, allow_unicode=True, width=72, default_flow_style=False
    )
    return "\n".join(lines) + "\n" + body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, required=True, help="Rocket.Chat checkout (repository root)")
    parser.add_argument("--commit", required=True, help="the commit or tag the sources come from")
    parser.add_argument("--json", action="store_true", help="print the registry as JSON instead of YAML")
    args = parser.parse_args(argv)
    registry, commits = extract(args.source)
    if args.json:
        json.dump(registry, sys.stdout, indent=1)
    else:
        sys.stdout.write(render(registry, commits, args.commit))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
