"""Realtime API: DDP frames, login, methods and the streams, with a real WebSocket client."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets
from plugins.rocketchat import DDPClient

pytestmark = pytest.mark.integration


async def test_connect_handshake_and_errors(rocketchat):
    async with websockets.connect(rocketchat.ws_url) as ws:
        first = json.loads(await ws.recv())
        if "msg" not in first:  # optional server_id frame
            first = None
        await ws.send(json.dumps({"msg": "method", "method": "login", "params": [], "id": "1"}))
        frame = json.loads(await ws.recv())
        assert frame["msg"] == "error"
        assert frame["reason"] == "Must connect first"
        await ws.send(json.dumps({"msg": "connect", "version": "1", "support": ["1"]}))
        connected = json.loads(await ws.recv())
        assert connected["msg"] == "connected"
        assert isinstance(connected["session"], str)
        await ws.send(json.dumps({"msg": "ping", "id": "p1"}))
        assert json.loads(await ws.recv()) == {"msg": "pong", "id": "p1"}
        await ws.send("not json")
        assert json.loads(await ws.recv())["msg"] == "error"


async def test_login_password_and_resume(rocketchat):
    user = rocketchat.create_user()
    async with DDPClient(rocketchat.ws_url) as ddp:
        frame = await ddp.login_password(user.username, user.password)
        result = frame["result"]
        assert result["id"] == user.id
        assert result["type"] == "password"
        assert "$date" in result["tokenExpires"]
        bad = await ddp.login_password(user.username, "wrong")
        assert bad["error"]["error"] == 403
        assert bad["error"]["reason"] == "Incorrect password"
    async with DDPClient(rocketchat.ws_url) as ddp:
        frame = await ddp.call("login", {"resume": user.token})
        assert frame["result"]["id"] == user.id
        assert frame["result"]["type"] == "resume"
        unknown = await ddp.call("no-such-method")
        assert unknown["error"]["error"] == 404
        assert unknown["error"]["reason"] == "Method 'no-such-method' not found"
    async with DDPClient(rocketchat.ws_url) as ddp:
        revoked = await ddp.call("login", {"resume": "not-a-token"})
        assert revoked["error"]["reason"] == "You've been logged out by the server. Please log in again."


async def test_rest_message_reaches_room_stream_and_my_messages(rocketchat):
    owner, member = rocketchat.create_user(), rocketchat.create_user()
    room = rocketchat.api(
        "POST", "groups.create", headers=owner.headers, json={"name": f"rt-{owner.username}"}
    )
    rid = room.json()["group"]["_id"]
    rocketchat.api("POST", "groups.invite", headers=owner.headers, json={"roomId": rid, "userId": member.id})
    async with DDPClient(rocketchat.ws_url) as ddp:
        await ddp.call("login", {"resume": member.token})
        ready = await ddp.subscribe("stream-room-messages", rid, {"useCollection": False, "args": []})
        assert ready["msg"] == "ready"
        mine = await ddp.subscribe("stream-room-messages", "__my_messages__", False)
        assert mine["msg"] == "ready"
        posted = rocketchat.api(
            "POST", "chat.postMessage", headers=owner.headers, json={"roomId": rid, "text": "hello"}
        )
        mid = posted.json()["message"]["_id"]
        room_frame = await ddp.next_changed(lambda f: f["fields"]["eventName"] == rid)
        assert room_frame["collection"] == "stream-room-messages"
        assert room_frame["id"] == "id"
        msg = room_frame["fields"]["args"][0]
        assert msg["_id"] == mid
        assert msg["msg"] == "hello"
        assert msg["u"]["_id"] == owner.id
        assert set(msg["ts"]) == {"$date"}
        my_frame = await ddp.next_changed(lambda f: f["fields"]["eventName"] == "__my_messages__")
        assert my_frame["fields"]["args"][1] == {
            "roomParticipant": True,
            "roomType": "p",
            "roomName": f"rt-{owner.username}",
        }
        # an edit is delivered again, with editedAt
        rocketchat.api(
            "POST", "chat.update", headers=owner.headers, json={"roomId": rid, "msgId": mid, "text": "hello!"}
        )
        edited = await ddp.next_changed(lambda f: f["fields"]["eventName"] == rid)
        assert edited["fields"]["args"][0]["_id"] == mid
        assert edited["fields"]["args"][0]["msg"] == "hello!"
        assert "editedAt" in edited["fields"]["args"][0]


async def test_ddp_send_message_appears_in_rest_history(rocketchat):
    user = rocketchat.create_user()
    rid = rocketchat.api(
        "POST", "channels.create", headers=user.headers, json={"name": f"dd-{user.username}"}
    ).json()["channel"]["_id"]
    async with DDPClient(rocketchat.ws_url) as ddp:
        await ddp.call("login", {"resume": user.token})
        frame = await ddp.call("sendMessage", {"_id": "clientmsgid00001", "rid": rid, "msg": "from ddp"})
        assert frame["result"]["_id"] == "clientmsgid00001"
        assert frame["result"]["msg"] == "from ddp"
        bad = await ddp.call("sendMessage", {"rid": rid, "msg": "x", "attachments": []})
        assert bad["error"]["error"] == 400
        assert bad["error"]["reason"] == "Match failed"
        rooms = await ddp.call("rooms/get")
        assert rid in [r["_id"] for r in rooms["result"]]
        subs = await ddp.call("subscriptions/get")
        assert rid in [s["rid"] for s in subs["result"]]
    history = rocketchat.api("GET", "channels.history", headers=user.headers, params={"roomId": rid}).json()
    assert history["messages"][0]["_id"] == "clientmsgid00001"


async def test_subscription_refusals(rocketchat):
    owner, outsider = rocketchat.create_user(), rocketchat.create_user()
    rid = rocketchat.api(
        "POST", "groups.create", headers=owner.headers, json={"name": f"no-{owner.username}"}
    ).json()["group"]["_id"]
    async with DDPClient(rocketchat.ws_url) as ddp:
        await ddp.call("login", {"resume": outsider.token})
        refused = await ddp.subscribe("stream-room-messages", rid, False)
        assert refused["msg"] == "nosub"
        assert refused["error"]["error"] == "not-allowed"
        other_user = await ddp.subscribe("stream-notify-user", f"{owner.id}/rooms-changed", False)
        assert other_user["msg"] == "nosub"
        unknown = await ddp.subscribe("no-such-publication", "x")
        assert unknown["msg"] == "nosub"
        own = await ddp.subscribe("stream-notify-user", f"{outsider.id}/rooms-changed", False)
        assert own["msg"] == "ready"
        await ddp.send({"msg": "unsub", "id": own["sub_id"]})


async def test_rooms_changed_on_invite(rocketchat):
    owner, member = rocketchat.create_user(), rocketchat.create_user()
    rid = rocketchat.api(
        "POST", "groups.create", headers=owner.headers, json={"name": f"ch-{owner.username}"}
    ).json()["group"]["_id"]
    async with DDPClient(rocketchat.ws_url) as ddp:
        await ddp.call("login", {"resume": member.token})
        await ddp.subscribe("stream-notify-user", f"{member.id}/rooms-changed", False)
        await ddp.subscribe("stream-notify-user", f"{member.id}/subscriptions-changed", False)
        rocketchat.api(
            "POST", "groups.invite", headers=owner.headers, json={"roomId": rid, "userId": member.id}
        )
        frame = await ddp.next_changed(lambda f: f["fields"]["eventName"] == f"{member.id}/rooms-changed")
        assert frame["collection"] == "stream-notify-user"
        action, room = frame["fields"]["args"]
        assert action == "inserted"
        assert room["_id"] == rid
        assert room["t"] == "p"
        sub = await ddp.next_changed(
            lambda f: f["fields"]["eventName"] == f"{member.id}/subscriptions-changed"
        )
        assert sub["fields"]["args"][0] == "inserted"
        assert sub["fields"]["args"][1]["rid"] == rid


async def test_server_pings_idle_clients_and_drops_silent_ones(rocketchat_sim):
    sim = rocketchat_sim({"SIM_DDP_PING_INTERVAL": "0.5", "SIM_DDP_PING_TIMEOUT": "0.5"})
    async with websockets.connect(sim.ws_url) as ws:
        await ws.send(json.dumps({"msg": "connect", "version": "1", "support": ["1"]}))
        frames: list[dict] = []

        async def read_until_closed() -> None:
            while True:
                frames.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))

        with pytest.raises(websockets.ConnectionClosed):
            await read_until_closed()
        assert {"msg": "ping"} in frames


async def test_send_message_limits_and_ephemeral_notice(rocketchat):
    user = rocketchat.create_user()
    rid = rocketchat.api(
        "POST", "channels.create", headers=user.headers, json={"name": f"lim-{user.username}"}
    ).json()["channel"]["_id"]
    async with DDPClient(rocketchat.ws_url) as ddp:
        await ddp.call("login", {"resume": user.token})
        await ddp.subscribe("stream-notify-user", f"{user.id}/message", False)
        # too long: swallowed (no result key), an ephemeral notice from rocket.cat instead
        frame = await ddp.call("sendMessage", {"rid": rid, "msg": "x" * 6000})
        assert "result" not in frame
        assert "error" not in frame
        notice = await ddp.next_changed(lambda f: f["fields"]["eventName"] == f"{user.id}/message")
        assert notice["fields"]["args"][0]["u"]["username"] == "rocket.cat"
        assert notice["fields"]["args"][0]["private"] is True
        # users without send-many-messages: 5 per second
        replies = [await ddp.call("sendMessage", {"rid": rid, "msg": f"m{i}"}) for i in range(7)]
        errors = [r["error"]["error"] for r in replies if "error" in r]
        assert "too-many-requests" in errors


async def test_thread_reply_re_emits_parent_and_typing(rocketchat):
    user, other = rocketchat.create_user(), rocketchat.create_user()
    rid = rocketchat.api(
        "POST", "channels.create", headers=user.headers, json={"name": f"th-{user.username}"}
    ).json()["channel"]["_id"]
    parent = rocketchat.api(
        "POST", "chat.postMessage", headers=user.headers, json={"roomId": rid, "text": "parent"}
    )
    pid = parent.json()["message"]["_id"]
    async with DDPClient(rocketchat.ws_url) as ddp, DDPClient(rocketchat.ws_url) as typist:
        await ddp.call("login", {"resume": user.token})
        await typist.call("login", {"resume": other.token})
        await ddp.subscribe("stream-room-messages", rid, False)
        await ddp.subscribe("stream-notify-room", f"{rid}/user-activity", False)
        rocketchat.api(
            "POST",
            "chat.postMessage",
            headers=other.headers,
            json={"roomId": rid, "text": "reply", "tmid": pid},
        )
        reply = await ddp.next_changed(lambda f: f["fields"]["args"][0].get("tmid") == pid)
        assert reply["fields"]["args"][0]["msg"] == "reply"
        updated_parent = await ddp.next_changed(lambda f: f["fields"]["args"][0]["_id"] == pid)
        assert updated_parent["fields"]["args"][0]["tcount"] == 1
        assert updated_parent["fields"]["args"][0]["replies"] == [other.id]
        typing = await typist.call(
            "stream-notify-room", f"{rid}/user-activity", other.username, ["user-typing"], {}
        )
        assert "error" not in typing
        event = await ddp.next_changed(lambda f: f["collection"] == "stream-notify-room")
        assert event["fields"]["args"] == [other.username, ["user-typing"], {}]
        spoof = await typist.call(
            "stream-notify-room", f"{rid}/user-activity", user.username, ["user-typing"], {}
        )
        assert spoof["error"]["error"] == "not-allowed"


async def test_deactivated_user_is_disconnected(rocketchat):
    user = rocketchat.create_user()
    async with DDPClient(rocketchat.ws_url) as ddp:
        await ddp.call("login", {"resume": user.token})
        rocketchat.api("POST", "users.setActiveStatus", json={"userId": user.id, "activeStatus": False})
        await ddp.wait_closed()
