"""An OpenAI-compatible chat server for the makespan benchmark: every call answers after a fixed latency, as a
model with a steady time per reply would, with as many calls in flight as clients send. Plain asyncio HTTP/1.1
with keep-alive (no framework between the runners and the clock); it counts calls and the most in flight.

  python -m bench.model_server --port P --latency-ms 1000
"""

from __future__ import annotations

import argparse
import asyncio
import json

calls = 0
in_flight = 0
most_in_flight = 0


def reply(prompt: str) -> bytes:
    text = "I'm sorry, but I can't discuss that topic." if "Tiananmen" in prompt else f"An answer to: {prompt[:200]}"
    return json.dumps(
        {
            "id": "bench",
            "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": len(text.split())},
        }
    ).encode()


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, latency_s: float) -> None:
    global calls, in_flight, most_in_flight
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            length = next((int(h.split(":", 1)[1]) for h in lines if h.lower().startswith("content-length:")), 0)
            body = json.loads(await reader.readexactly(length)) if length else {}
            calls += 1
            in_flight += 1
            most_in_flight = max(most_in_flight, in_flight)
            try:
                await asyncio.sleep(latency_s)
            finally:
                in_flight -= 1
            messages = body.get("messages") or [{}]
            content = reply(str(messages[-1].get("content", "")))
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                % (len(content), content)
            )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def serve(port: int, latency_s: float) -> None:
    server = await asyncio.start_server(lambda r, w: handle(r, w, latency_s), "127.0.0.1", port)
    print(f"model server on http://127.0.0.1:{port}/v1, {latency_s * 1000:.0f} ms per call", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.model_server", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=int, default=1000)
    a = parser.parse_args()
    asyncio.run(serve(a.port, a.latency_ms / 1000))


if __name__ == "__main__":
    main()
