"""signalrcore (synchronous, thread-based) against /testhub.

signalrcore negotiates without negotiateVersion (version 0: it uses connectionId as the transport id)
and sends handshake version 0 (the negotiate version).
"""

import logging
import os
import queue
import threading

import pytest
from signalrcore.hub_connection_builder import HubConnectionBuilder
from signalrcore.protocol.messagepack_protocol import MessagePackHubProtocol
from signalrcore.types import HttpTransportType

TIMEOUT = 10


def connect(server, protocol=None, transport=HttpTransportType.web_sockets):
    builder = (
        HubConnectionBuilder()
        .with_url(f"{server.url}/testhub", options={"transport": transport})
        .configure_logging(logging.DEBUG if os.environ.get("SY_DEBUG") else logging.ERROR)
    )
    if protocol is not None:
        builder = builder.with_hub_protocol(protocol)
    connection = builder.build()
    opened = threading.Event()
    connection.on_open(opened.set)
    errors = queue.Queue()
    connection.on_error(errors.put)
    connection.start()
    assert opened.wait(TIMEOUT), "on_open was not called"
    return connection, errors


def invoke(connection, method, args):
    """Invokes and returns the Completion message (signalrcore reports errors through on_error)."""
    done = queue.Queue()
    connection.invoke(method, args, on_invocation=done.put)
    return done.get(timeout=TIMEOUT)


@pytest.mark.parametrize("protocol", ["json", "messagepack"])
def test_echo_message_event_and_error(server, protocol):
    connection, errors = connect(server, MessagePackHubProtocol() if protocol == "messagepack" else None)
    try:
        # Invocation with a result.
        completion = invoke(connection, "Echo", ["hello from signalrcore ✓"])
        assert completion.result == "hello from signalrcore ✓"
        assert invoke(connection, "GetActiveTransportName", []).result == "WebSockets"

        # InvokeWithString sends "Message" to the caller.
        messages = queue.Queue()
        connection.on("Message", messages.put)
        completion = invoke(connection, "InvokeWithString", ["event for signalrcore"])
        assert getattr(completion, "result", None) is None
        assert messages.get(timeout=TIMEOUT) == ["event for signalrcore"]

        # A server error arrives as a Completion with the exact text.
        connection.invoke("ThrowException", ["boom"])
        error = errors.get(timeout=TIMEOUT)
        assert error.error == (
            "An unexpected error occurred invoking 'ThrowException' on the server. InvalidOperationException: boom"
        )

        # (No server stream here: signalrcore sends the StreamInvocation before subscribe() registers
        # its callbacks, so the first items can be dropped by the client. pysignalr covers streams.)

        # The connection is still usable after all that.
        assert invoke(connection, "Echo", ["still here"]).result == "still here"
        assert errors.empty(), f"unexpected errors: {list(errors.queue)}"
    finally:
        connection.stop()


def test_zz_no_leaks(server):
    server.assert_no_leaks(("/testhub",))
