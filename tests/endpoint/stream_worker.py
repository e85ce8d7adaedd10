"""A generator test worker (real runpod SDK loop): yields `input.n` chunks 0.2 s apart;
with return_aggregate_stream the final output is the list of chunks."""

import asyncio

import runpod


async def handler(job: dict):
    for i in range(int(job["input"].get("n", 3))):
        await asyncio.sleep(0.2)
        yield {"chunk": i}


if __name__ == "__main__":
    runpod.serverless.start({"handler": handler, "return_aggregate_stream": True})
