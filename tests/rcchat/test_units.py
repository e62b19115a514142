"""rcchat's pieces without a server: wire parsing, the stream's de-duplication, settings and secrets."""

from __future__ import annotations

import datetime as dt
import stat

import pytest

from rcchat import cli
from rcchat.api import ChatError, Message, RoomStream, Session, tls_context

pytestmark = pytest.mark.unit


def wire(message_id: str, text: str, **extra: object) -> dict:
    return {"_id": message_id, "rid": "R1", "msg": text, "u": {"_id": "U1", "username": "bob"}, **extra}


def test_message_from_the_realtime_api_and_from_rest() -> None:
    realtime = Message.from_wire(wire("m1", "hi", ts={"$date": 1_700_000_000_000}))
    assert realtime.ts == dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=dt.UTC)
    rest = Message.from_wire(wire("m2", "hi", ts="2023-11-14T22:13:20.000Z"))
    assert rest.ts == realtime.ts
    assert Message.from_wire({"_id": "m3"}).text == ""  # system messages may lack fields
    aliased = Message.from_wire(wire("m4", "x", alias="ERP"))
    assert (aliased.username, aliased.alias) == ("bob", "ERP")


async def test_the_stream_passes_each_message_once_and_edits_again() -> None:
    session = Session("http://127.0.0.1:9")
    stream = RoomStream(session, "R1")
    for doc in (
        wire("m1", "first"),
        wire("m1", "first", reactions={":+1:": {"usernames": ["x"]}}),  # re-sent on every change
        wire("m2", "second"),
        wire("m1", "first!", editedAt={"$date": 1}),
        wire("m1", "first!", editedAt={"$date": 1}, tcount=1),
    ):
        stream._accept(Message.from_wire(doc))
    got = [(m.id, m.text, m.edited) async for m in stream.messages(duration=0.2)]
    assert got == [("m1", "first", False), ("m2", "second", False), ("m1", "first!", True)]
    await session.http.aclose()


def test_a_url_without_scheme_and_a_bad_ca_file_are_refused(tmp_path) -> None:
    with pytest.raises(ChatError, match="must start with http"):
        Session("chat.example.com")
    (tmp_path / "ca.pem").write_text("not a certificate")
    with pytest.raises(ChatError, match="cannot use the CA file"):
        tls_context(str(tmp_path / "ca.pem"))


def test_a_new_users_password_is_generated_once_into_a_private_file(tmp_path) -> None:
    path = tmp_path / "deep" / "emp.password"
    password, written = cli.new_user_password("emp", str(path))
    assert written == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(password) >= 20
    assert cli.new_user_password("emp", str(path))[0] == password  # reused, not overwritten
    path.write_text("\n")
    with pytest.raises(ChatError, match="is empty"):
        cli.new_user_password("emp", str(path))


def test_the_password_comes_from_the_file_then_the_environment(tmp_path, monkeypatch) -> None:
    args = cli.build_parser().parse_args(["--user", "u", "rooms"])
    monkeypatch.setenv("RCCHAT_PASSWORD", "from-env")
    assert cli.read_password(args) == "from-env"
    (tmp_path / "p").write_text("from-file\n")
    args.password_file = str(tmp_path / "p")
    assert cli.read_password(args) == "from-file"


def test_main_reports_errors_in_one_line(capsys, monkeypatch) -> None:
    monkeypatch.delenv("RCCHAT_URL", raising=False)
    assert cli.main(["--user", "u", "rooms"]) == 1
    assert capsys.readouterr().err == "rcchat: no server: give --url or set RCCHAT_URL\n"
