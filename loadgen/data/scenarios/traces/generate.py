"""Writes the example traces in this folder (made here, seeded; no real service's data):
300 requests each, Poisson arrivals at about 5 per second with a burst in the middle, prompt and
answer lengths drawn log-normally. The Mooncake example shares prefixes as chat traffic does: each
request starts with one of 4 system prompts (one 512-token block each) and a third of them carry on
an earlier conversation (its blocks, then new ones). ``python scenarios/traces/generate.py``."""

from __future__ import annotations

import csv
import json
import math
import random
from datetime import datetime, timedelta
from pathlib import Path

HERE = Path(__file__).parent
COUNT = 300


def arrivals(rng: random.Random) -> list[float]:
    times, now = [], 0.0
    for index in range(COUNT):
        rate = 15.0 if COUNT // 3 <= index < COUNT // 2 else 5.0  # a burst
        now += rng.expovariate(rate)
        times.append(now)
    return times


def length(rng: random.Random, median: float, spread: float, low: int, high: int) -> int:
    return max(low, min(high, round(median * math.exp(rng.gauss(0, spread)))))


def mooncake(rng: random.Random) -> None:
    conversations: list[list[int]] = []
    next_block = 4  # blocks 0-3: the system prompts
    with (HERE / "mooncake-sample.jsonl").open("w") as out:
        for time_s in arrivals(rng):
            later_turn = conversations and rng.random() < 1 / 3  # a later turn: the history's blocks first
            blocks = list(rng.choice(conversations)) if later_turn else [rng.randrange(4)]
            new = rng.randint(1, 3)
            blocks += range(next_block, next_block + new)
            next_block += new
            conversations.append(blocks)
            input_length = (len(blocks) - 1) * 512 + rng.randint(1, 512)
            entry = {
                "timestamp": round(time_s * 1000),
                "input_length": input_length,
                "output_length": length(rng, 180, 0.6, 8, 1024),
                "hash_ids": blocks,
            }
            out.write(json.dumps(entry) + "\n")


def azure(rng: random.Random) -> None:
    start = datetime(2023, 11, 16, 18, 15, 0)
    with (HERE / "azure-sample.csv").open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["TIMESTAMP", "ContextTokens", "GeneratedTokens"])
        for time_s in arrivals(rng):
            stamp = (start + timedelta(seconds=time_s)).strftime("%Y-%m-%d %H:%M:%S.%f") + "0"
            writer.writerow([stamp, length(rng, 1000, 0.8, 4, 8000), length(rng, 150, 0.7, 1, 1500)])


def burstgpt(rng: random.Random) -> None:
    with (HERE / "burstgpt-sample.csv").open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["Timestamp", "Model", "Request tokens", "Response tokens", "Total tokens", "Log Type"])
        for time_s in arrivals(rng):
            request = length(rng, 600, 0.9, 0, 8000)
            response = 0 if rng.random() < 0.02 else length(rng, 250, 0.7, 1, 2000)  # 2 %: the service failed
            writer.writerow([round(time_s), rng.choice(["ChatGPT", "GPT-4"]), request, response, request + response,
                             rng.choice(["Conversation log", "API log"])])  # fmt: skip


if __name__ == "__main__":
    mooncake(random.Random(1))
    azure(random.Random(2))
    burstgpt(random.Random(3))
