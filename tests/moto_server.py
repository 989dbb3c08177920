"""Start the moto server on 127.0.0.1 on a free port, for remediator's tests and demo.

Prints `PORT <n>` once the server listens, then serves until its standard input
closes: the parent holds the pipe, so the server stops when the parent exits for any
reason (normal end, panic, Ctrl-C, kill -9). Real execution of state machines is
switched on, as shared/docs/local-aws.md describes.
"""
import json
import os
import sys
import urllib.request

from moto.moto_server.threaded_moto_server import ThreadedMotoServer


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
