"""WebSocket frame types as ASP.NET sends them, checked with a raw client (the `websockets` package that
pysignalr depends on): the handshake response travels in the negotiated protocol's frame type (Binary
for MessagePack, Text for JSON), like every later message.
"""

import asyncio
import json
import urllib.request

import pytest
import websockets

RS = b"\x1e"


def negotiate(server, path="/testhub"):
    req = urllib.request.Request(f"{server.url}{path}/negotiate?negotiateVersion=1", method="POST", data=b"")
    with urllib.request.urlopen(req, timeout=10) as res:
        return json.loads(res.read())


@pytest.mark.parametrize(
    "protocol,expected_type",
    [("json", str), ("messagepack", bytes)],
)
def test_handshake_response_frame_type(server, protocol, expected_type):
    token = negotiate(server)["connectionToken"]

    async def scenario():
        url = f"{server.url.replace('http', 'ws', 1)}/testhub?id={token}"
        async with websockets.connect(url) as ws:
            await ws.send(json.dumps({"protocol": protocol, "version": 1}).encode() + RS)
            response = await asyncio.wait_for(ws.recv(), 10)
            assert isinstance(response, expected_type), f"handshake response came as {type(response).__name__}"
            raw = response.encode() if isinstance(response, str) else response
            assert raw == b"{}" + RS
            if protocol == "messagepack":
                # An Invocation of Echo("x") with id "1": [1, {}, "1", "Echo", ["x"]], length-prefixed.
                body = bytes([0x95, 0x01, 0x80, 0xA1, 0x31, 0xA4]) + b"Echo" + bytes([0x91, 0xA1]) + b"x"
                await ws.send(bytes([len(body)]) + body)
            else:
                await ws.send(json.dumps({"type": 1, "invocationId": "1", "target": "Echo", "arguments": ["x"]}).encode() + RS)
            while True:
                message = await asyncio.wait_for(ws.recv(), 10)
                assert isinstance(message, expected_type)
                raw = message.encode() if isinstance(message, str) else message
                if protocol == "json" and b'"type":6' in raw:
                    continue  # a ping
                if protocol == "messagepack" and raw == b"\x02\x91\x06":
                    continue  # a ping
                break
            if protocol == "json":
                assert json.loads(raw.rstrip(RS)) == {"type": 3, "invocationId": "1", "result": "x"}
            else:
                # Completion [3, {}, "1", 3, "x"] with its length prefix.
                assert raw == bytes([0x08, 0x95, 0x03, 0x80, 0xA1, 0x31, 0x03, 0xA1]) + b"x"

    asyncio.run(scenario())


def test_zz_no_leaks(server):
    server.assert_no_leaks(("/testhub",))
