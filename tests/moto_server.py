"""Start the moto server on 127.0.0.1 on a free port, for remediator's tests and demo.

Prints `PORT <n>` once the server listens, then serves until its standard input
closes: the parent holds the pipe, so the server stops when the parent exits for any
reason (normal end, panic, Ctrl-C, kill -9). Real execution of state machines is
switched on, as shared/docs/local-aws.md describes.

Lambda runs without Docker here: moto's simple backend answers every invocation with
its own payload and never fails. One addition gives the pipeline a function that runs
out of its own time, the way Lambda reports it to a `lambda:invoke` task (the emulator
has no other way: its Step Functions mock configuration is not loaded in server mode,
and its SendTaskFailure drops the cause). An invocation whose payload says how long the
work takes, `"simulatedRunSeconds": N`, with N above the function's configured timeout,
fails with `X-Amz-Function-Error: Unhandled` and Lambda's timeout payload, naming the
function's configured timeout: Step Functions then records `TaskFailed` with error
`Sandbox.Timedout` and cause `{"errorType":"Sandbox.Timedout","errorMessage":"RequestId:
... Error: Task timed out after 300.00 seconds"}`. The answer comes after a second, not
after the whole timeout: enough to keep the failure apart from a change made to the
function just before the run (events tell time to the second). Any other invocation
behaves as before.
"""
import json
import os
import sys
import time
import urllib.request

from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.moto_server.threaded_moto_server import ThreadedMotoServer


def _simulated_run_seconds(body) -> float | None:
    """`simulatedRunSeconds` of an invocation payload, if it has one."""
    try:
        payload = json.loads(body) if body else None
    except (TypeError, ValueError):
        return None
    if not isinstance(payload, dict):
        return None
    seconds = payload.get("simulatedRunSeconds")
    return float(seconds) if isinstance(seconds, (int, float)) else None


# How long a simulated function timeout takes here.
SIMULATED_TIMEOUT_SECONDS = 1.1
# Lambda's request id in the cause. Fixed, not random: the cause stays the same from run
# to run, and cannot contain by chance digits such as 401 or 403 that policies looking
# for HTTP statuses in a cause would match.
SIMULATED_REQUEST_ID = "6f1e2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b"

_simple_invoke = LambdaSimpleBackend.invoke


def _invoke(self, function_name, qualifier, body, headers, response_headers):
    run = _simulated_run_seconds(body)
    if run is not None:
        timeout = float(self.get_function(function_name, qualifier).timeout)
        if run > timeout:
            time.sleep(SIMULATED_TIMEOUT_SECONDS)
            response_headers["x-amz-function-error"] = "Unhandled"
            message = f"RequestId: {SIMULATED_REQUEST_ID} Error: Task timed out after {timeout:.2f} seconds"
            return json.dumps({"errorType": "Sandbox.Timedout", "errorMessage": message}).encode()
    return _simple_invoke(self, function_name, qualifier, body, headers, response_headers)


LambdaSimpleBackend.invoke = _invoke


def main() -> None:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    # SDK-integration tasks of state machines call back into this server.
    os.environ["MOTO_PORT"] = str(port)
    request = urllib.request.Request(
        f"http://{host}:{port}/moto-api/config",
        data=json.dumps({"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=10).read()
    print(f"PORT {port}", flush=True)
    try:
        while sys.stdin.buffer.read(4096):
            pass
    except KeyboardInterrupt:
        pass
    server.stop()


if __name__ == "__main__":
    main()
