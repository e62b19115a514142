"""Commands declared once, as errbot's `@botcmd`; cross-cutting steps as filters, as errbot's `@cmdfilter`.

A command is one `CommandSpec`: its words per language, whether it is for admins, its help (the i18n keys
`cmd.<name>.args` and `cmd.<name>.help`), its argument parser and its handler. The parser, the help text, the
usage lines and the admin check all read the registry, so a command lives in one place.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot.core.ports import IncomingMessage
from bot.i18n import LANGUAGES, translate

if TYPE_CHECKING:
    from bot.core.router import Router


@dataclass(frozen=True)
class Outcome:
    """What a handler or a filter did: a label for the audit trail and metrics, and an optional detail."""

    label: str
    detail: str | None = None


class UsageError(Exception):
    """Arguments a command cannot take: the person gets the command's usage line."""


ArgParser = Callable[[str], dict[str, Any]]
Handler = Callable[["Router", "Context"], Awaitable[Outcome]]


def no_args(text: str) -> dict[str, Any]:
    if text:
        raise UsageError
    return {}


def any_args(_text: str) -> dict[str, Any]:
    """Trailing words are ignored ("help?", "register please")."""
    return {}


@dataclass(frozen=True)
class CommandSpec:
    name: str
    words: dict[str, tuple[str, ...]]  # language -> words; the first is the one help shows
    handler: Handler
    args: ArgParser = no_args
    admin: bool | Callable[[dict[str, Any]], bool] = False
    in_dialog: bool = False  # also a command while a registration dialog is open (a fallback)

    def needs_admin(self, args: dict[str, Any]) -> bool:
        return self.admin(args) if callable(self.admin) else self.admin

    @property
    def admin_only(self) -> bool:
        """Listed in the admins' part of the help (`status [@user]` has an admin form but is everyone's)."""
        return self.admin is True

    def word(self, lang: str) -> str:
        return self.words[lang][0]

    def usage(self, lang: str) -> str:
        args = translate(lang, f"cmd.{self.name}.args")
        return f"{self.word(lang)} {args}".strip()


@dataclass
class Context:
    """One message on its way through the filters to a handler."""

    msg: IncomingMessage
    lang: str
    is_dm: bool
    spec: CommandSpec | None = None  # None: not a command (a dialog answer or free text)
    args: dict[str, Any] = field(default_factory=dict)
    usage_error: bool = False
    kind: str = "command"  # "command", "answer" (to the open dialog) or "text"
    is_admin: bool | None = None  # filled in by the admin filter when it had to look


Filter = Callable[["Router", Context], Awaitable[Outcome | None]]


class Registry:
    def __init__(self) -> None:
        self.commands: dict[str, CommandSpec] = {}
        self.words: dict[str, tuple[CommandSpec, str]] = {}
        self.filters: list[Filter] = []

    def botcmd(
        self,
        *,
        en: tuple[str, ...],
        ru: tuple[str, ...],
        args: ArgParser = no_args,
        admin: bool | Callable[[dict[str, Any]], bool] = False,
        in_dialog: bool = False,
        name: str | None = None,
    ) -> Callable[[Handler], Handler]:
        """Declare the decorated handler a command."""

        def declare(handler: Handler) -> Handler:
            spec = CommandSpec(
                name=name or handler.__name__.strip("_"),
                words={"en": en, "ru": ru},
                handler=handler,
                args=args,
                admin=admin,
                in_dialog=in_dialog,
            )
            self.add(spec)
            return handler

        return declare

    def add(self, spec: CommandSpec) -> None:
        if spec.name in self.commands:
            raise ValueError(f"command {spec.name} declared twice")
        if set(spec.words) != set(LANGUAGES):
            raise ValueError(f"command {spec.name}: words for {sorted(spec.words)}, expected {LANGUAGES}")
        for lang, words in spec.words.items():
            for word in words:
                if word in self.words:
                    raise ValueError(f"word {word!r} of {spec.name} is taken by {self.words[word][0].name}")
                self.words[word] = (spec, lang)
        self.commands[spec.name] = spec

    def cmdfilter(self, step: Filter) -> Filter:
        """Add a filter; filters run in declaration order, the first that returns an outcome ends the run."""
        self.filters.append(step)
        return step

    def lookup(self, word: str) -> tuple[CommandSpec, str] | None:
        return self.words.get(word)

    def __iter__(self) -> Iterator[CommandSpec]:
        return iter(self.commands.values())

    def help_text(self, lang: str, *, admin: bool) -> str:
        def line(spec: CommandSpec) -> str:
            about = translate(lang, f"cmd.{spec.name}.help")
            return translate(lang, "help.line", usage=spec.usage(lang), help=about)

        text = translate(lang, "help.user") + "\n" + "\n".join(line(s) for s in self if not s.admin_only)
        if admin:
            admin_lines = [line(s) for s in self if s.admin_only]
            text += "\n\n" + translate(lang, "help.admin") + "\n" + "\n".join(admin_lines)
        return text
