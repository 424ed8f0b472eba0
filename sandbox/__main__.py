"""Command line: python -m sandbox --host H --port P --state-dir DIR [--clear-state] --time-scale F ..."""
import argparse
import asyncio
import logging

from .app import main
from .config import KEY_MODES


def parse_args(argv=None):
    """The command-line options."""
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--state-dir", default="var/sandbox",
                        help="keys, certificates, service.env and the state file (state.sqlite3)")
    parser.add_argument("--clear-state", action="store_true",
                        help="forget every order, refund, notification, code and token at start (keys stay)")
    parser.add_argument("--time-scale", type=float, default=1.0,
                        help="multiplies every delay (notification retries, refund settling)")
    parser.add_argument("--notify-key-mode", choices=KEY_MODES, default="pubkey",
                        help="which platform key signs notifications (either: one then the other, in turn)")
    args = parser.parse_args(argv)
    if args.time_scale <= 0:
        parser.error("--time-scale must be positive")
    return args


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(main(parse_args()))
