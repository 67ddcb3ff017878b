"""The box office under load, across both replicas: failures, connections, and throughput against the reference."""

from __future__ import annotations

from grader.checkkit import Failure, check


@check("load-no-failures")
def test_load_no_failures(observed_load, figures, pages):
    """Under load across both replicas, not one request fails"""
    total = observed_load.result.total
    figures["requests"] = total.requests
    figures["failed requests"] = total.failures
    figures["failure rate, %"] = round(100 * total.failures / total.requests, 1) if total.requests else 0.0
    if total.requests == 0:
        raise Failure("not one request was answered under load", evidence=observed_load.result.to_json())
    if total.failures:
        first = observed_load.failures[0] if observed_load.failures else {}
        raise Failure(f"{total.failures} of {total.requests} requests failed under load; the most frequent: "
                      f"{first.get('request', '?')}: {first.get('error', '?')} ({first.get('times', 0)} times)",
                      evidence={"failures": observed_load.failures[:5],
                                "by endpoint": {e.name: f"{e.failures} of {e.requests} failed"
                                                for e in observed_load.result.endpoints if e.failures}})


@check("connections-bounded")
def test_connections_bounded(observed_load, figures, pages):
    """Under load, the replicas together never hold more than 12 connections to PostgreSQL"""
    peak = observed_load.connections.peak
    if peak is None:
        raise Failure("the app's connections could not be sampled during the load")
    figures["peak connections"] = int(peak)
    if peak > pages.CONNECTION_BUDGET:
        raise Failure(f"during the load your replicas held {peak:.0f} connections to PostgreSQL at once; the brief "
                      f"gives them {pages.CONNECTION_BUDGET}, and PostgreSQL turns away what it cannot take",
                      evidence={"peak": int(peak), "samples": len(observed_load.connections.samples)})


@check("under-load")
def test_under_load(load, load_data, observed_load):
    """Under load: throughput and median latency within the calibrated ratios"""
    load.verdict(data=load_data, first=observed_load.result)
