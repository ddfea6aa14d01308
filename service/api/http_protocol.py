"""uvicorn's httptools protocol, with a drain that answers requests on idle keep-alive connections.

At SIGTERM uvicorn closes every idle keep-alive connection at once. A client that sent a request
on one a moment earlier or later (it cannot know the server is stopping) then gets a connection
reset instead of an answer. Here an idle connection stays open through the drain instead: a
request that arrives on it is answered as usual, with ``Connection: close``, and the connection is
closed after the answer, or when it has stayed idle for the keep-alive timeout (5 s; the same close
a client meets any time its connection idles out). The drain still ends within uvicorn's
``timeout_graceful_shutdown``.
"""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class DrainingHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol whose ``shutdown`` lets an idle connection answer one more request."""

    draining = False

    def shutdown(self) -> None:
        """Graceful shutdown of this connection: a request in progress is answered with
        ``Connection: close``; an idle one is closed after its next answer, at its keep-alive
        timeout, or ``timeout_keep_alive`` seconds from now if it is still idle then."""
        self.draining = True
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False
        else:
            self.loop.call_later(self.timeout_keep_alive, self.close_if_idle)

    def close_if_idle(self) -> None:
        """The drain's grace for this connection is over: close it unless a request is being
        answered (that one closes it after its answer)."""
        if (self.cycle is None or self.cycle.response_complete) and not self.transport.is_closing():
            self.transport.close()

    def on_headers_complete(self) -> None:
        """Start the request's cycle; while draining, its answer closes the connection."""
        super().on_headers_complete()
        if self.draining and self.cycle is not None:
            self.cycle.keep_alive = False
