"""Regression: a burst of cancelled streams must not wedge the simulator (it once logged each
disconnect to an unread stderr pipe until the pipe filled and blocked its event loop)."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.conftest import SimFactory


async def stream(session: aiohttp.ClientSession, url: str) -> int:
    body = {"model": "sim-llm", "messages": [{"role": "user", "content": "hi " * 50}], "max_tokens": 64,
            "stream": True}  # fmt: skip
    async with session.post(url + "/v1/chat/completions", json=body) as response:
        return len([chunk async for chunk in response.content.iter_any()])


def test_simulator_keeps_answering_after_many_clients_hang_up(start_sim: SimFactory) -> None:
    sim = start_sim("llama2-7b-h100")

    async def scenario() -> int:
        for _ in range(3):  # enough disconnects to have filled a pipe many times over
            async with aiohttp.ClientSession() as session:
                tasks = [asyncio.ensure_future(stream(session, sim.url)) for _ in range(96)]
                await asyncio.sleep(0.4)
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            return await stream(session, sim.url)

    assert asyncio.run(scenario()) > 10
