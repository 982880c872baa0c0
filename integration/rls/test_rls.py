"""A TEST rate limit service, for the end-to-end tests only: Envoy's RateLimitService v3
(ShouldRateLimit, gRPC) counting in a real Redis with envoyproxy/ratelimit's fixed-window rules,
configured by the same YAML as envoyproxy/ratelimit (what `rls-config` writes). In production run
envoyproxy/ratelimit or Limitador with that YAML; neither is packaged for the registries the test
machines can reach, so this stands in for them.

Usage: test_rls.py --config FILE --redis-port PORT [--port PORT]
Prints `listening PORT` once it serves (PORT 0, the default, picks a free one).

Rules followed (envoyproxy/ratelimit): a descriptor matches the config tree entry by entry (an entry
with a value matches that value, one without matches any); the hits are the descriptor's
`hits_addend` when set, else the request's, else 1; the window is the unit's fixed window; a
descriptor is over the limit when its count after adding the hits exceeds the limit (so
`hits_addend: 0` checks without spending); a request is over the limit when any descriptor is.
Redis unreachable: the call fails with UNAVAILABLE, and Envoy's `failure_mode_deny` decides."""

import argparse
import sys
import time
from concurrent import futures

import grpc
import redis
import yaml
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc

UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
UNIT_ENUM = {"second": 1, "minute": 2, "hour": 3, "day": 4}


def find_limit(descriptors, entries):
    """The rate_limit of the config node the descriptor's entries lead to, or None."""
    level, node = descriptors, None
    for entry in entries:
        exact = [d for d in level if d.get("key") == entry.key and d.get("value") == entry.value]
        wildcard = [d for d in level if d.get("key") == entry.key and "value" not in d]
        node = (exact or wildcard or [None])[0]
        if node is None:
            return None
        level = node.get("descriptors", [])
    return node.get("rate_limit") if node else None


class Service(rls_pb2_grpc.RateLimitServiceServicer):
    def __init__(self, config, store):
        self.domain = config["domain"]
        self.descriptors = config.get("descriptors", [])
        self.store = store

    def ShouldRateLimit(self, request, context):
        response = rls_pb2.RateLimitResponse(overall_code=rls_pb2.RateLimitResponse.OK)
        now = int(time.time())
        for descriptor in request.descriptors:
            limit = find_limit(self.descriptors, descriptor.entries) if request.domain == self.domain else None
            if limit is None:
                response.statuses.add(code=rls_pb2.RateLimitResponse.OK)
                continue
            if descriptor.HasField("hits_addend"):
                hits = descriptor.hits_addend.value
            else:
                hits = request.hits_addend or 1
            unit, allowed = limit["unit"], int(limit["requests_per_unit"])
            seconds = UNIT_SECONDS[unit]
            window = now - now % seconds
            key = "_".join([self.domain] + [f"{e.key}_{e.value}" for e in descriptor.entries] + [str(window)])
            try:
                if hits:
                    pipe = self.store.pipeline()
                    pipe.incrby(key, hits)
                    pipe.expire(key, seconds)
                    count = pipe.execute()[0]
                else:
                    count = int(self.store.get(key) or 0)
            except redis.RedisError as error:
                context.abort(grpc.StatusCode.UNAVAILABLE, f"redis: {error}")
            over = count > allowed
            status = response.statuses.add(
                code=rls_pb2.RateLimitResponse.OVER_LIMIT if over else rls_pb2.RateLimitResponse.OK,
                limit_remaining=max(0, allowed - count))
            status.current_limit.requests_per_unit = allowed
            status.current_limit.unit = UNIT_ENUM[unit]
            status.duration_until_reset.seconds = window + seconds - now
            if over:
                response.overall_code = rls_pb2.RateLimitResponse.OVER_LIMIT
        return response


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="envoyproxy/ratelimit YAML (from rls-config)")
    parser.add_argument("--redis-port", type=int, required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    with open(args.config) as file:
        config = yaml.safe_load(file)
    store = redis.Redis(host="127.0.0.1", port=args.redis_port, socket_timeout=2)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    rls_pb2_grpc.add_RateLimitServiceServicer_to_server(Service(config, store), server)
    port = server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    print(f"listening {port}", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    sys.exit(main())
