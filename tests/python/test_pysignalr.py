"""pysignalr (asyncio, WebSockets only) against /testhub.

pysignalr negotiates without negotiateVersion (version 0: it uses connectionId as the transport id)
and sends handshake version 1.
"""

import asyncio
import urllib.parse

import pytest
from pysignalr.client import SignalRClient
from pysignalr.protocol.json import JSONProtocol
from pysignalr.protocol.messagepack import MessagepackProtocol

TIMEOUT = 10


class Session:
    """A started SignalRClient and helpers to call it."""

    def __init__(self, url: str, protocol):
        self.client = SignalRClient(url, protocol=protocol, retry_count=1)
        self.opened = asyncio.Event()
        self.errors: asyncio.Queue = asyncio.Queue()
        self.task = None

        async def on_open() -> None:
            self.opened.set()

        async def on_error(message) -> None:
            await self.errors.put(message)

        self.client.on_open(on_open)
        self.client.on_error(on_error)

    async def __aenter__(self):
        self.task = asyncio.create_task(self.client.run())
        await asyncio.wait_for(self.opened.wait(), TIMEOUT)
        return self

    async def __aexit__(self, *exc):
        self.task.cancel()
        try:
            await self.task
        except (asyncio.CancelledError, Exception):
            pass

    async def invoke(self, method: str, args: list):
        done = asyncio.get_running_loop().create_future()

        async def on_completion(message) -> None:
            if not done.done():
                done.set_result(message)

        await self.client.send(method, args, on_invocation=on_completion)
        return await asyncio.wait_for(done, TIMEOUT)


def protocol_of(name: str):
    return MessagepackProtocol() if name == "messagepack" else JSONProtocol()


@pytest.mark.parametrize("protocol", ["json", "messagepack"])
def test_echo_message_event_error_stream(server, protocol):
    async def scenario():
        async with Session(f"{server.url}/testhub", protocol_of(protocol)) as s:
            # Invocation with a result.
            assert (await s.invoke("Echo", ["hello from pysignalr ✓"])).result == "hello from pysignalr ✓"
            assert (await s.invoke("GetActiveTransportName", [])).result == "WebSockets"

            # InvokeWithString sends "Message" to the caller, before its (void) Completion.
            messages: asyncio.Queue = asyncio.Queue()

            async def on_message(args) -> None:
                await messages.put(args)

            s.client.on("Message", on_message)
            completion = await s.invoke("InvokeWithString", ["event for pysignalr"])
            assert completion.result is None
            assert messages.get_nowait() == ["event for pysignalr"]

            # A fire-and-forget send (no invocationId) also triggers the event.
            await s.client.send("InvokeWithString", ["fire and forget"])
            assert await asyncio.wait_for(messages.get(), TIMEOUT) == ["fire and forget"]

            # A server error: exact text, through on_error.
            await s.client.send("ThrowException", ["boom"], on_invocation=lambda m: asyncio.sleep(0))
            error = await asyncio.wait_for(s.errors.get(), TIMEOUT)
            assert error.error == (
                "An unexpected error occurred invoking 'ThrowException' on the server. InvalidOperationException: boom"
            )

            # Server-to-client stream.
            items, finished = [], asyncio.Event()

            async def on_next(item) -> None:
                items.append(item)

            async def on_complete(_message) -> None:
                finished.set()

            await s.client.stream("Stream", [], on_next=on_next, on_complete=on_complete)
            await asyncio.wait_for(finished.wait(), TIMEOUT)
            assert items == ["a", "b", "c"]

            assert (await s.invoke("Echo", ["still here"])).result == "still here"

    asyncio.run(scenario())


@pytest.mark.parametrize("protocol", ["json", "messagepack"])
def test_client_result(server, protocol):
    async def scenario():
        async with Session(f"{server.url}/testhub", protocol_of(protocol)) as s:
            async def on_result(_args):
                return 42

            s.client.on("Result", on_result)
            connection_id = (await s.invoke("GetCallerConnectionId", [])).result
            assert isinstance(connection_id, str) and connection_id
            status, body = await asyncio.to_thread(
                server.get, f"/clientresult/{urllib.parse.quote(connection_id, safe='')}"
            )
            assert (status, body) == (200, "42")

    asyncio.run(scenario())


def test_zz_no_leaks(server):
    server.assert_no_leaks(("/testhub",))
