"""Where a page run's server time goes: cProfile on every script run of one app server.

Starts ``app/serve.py`` with Streamlit's script runner wrapped in cProfile, walks every page
``--walks`` times with one protocol-level session (benchmarks/page_client.py), and prints for
each page run of the last walk its seconds and the functions with the most cumulative time.

    python benchmarks/profile_pages.py [--walks 2] [--top 12]
"""

import argparse
import asyncio
import cProfile
import io
import pstats
import runpy
import sys
import tempfile
import time
from pathlib import Path

from page_client import crowd
from serving import ROOT, SERVE, free_port, start_server, stop


def serve(port: int, out: Path) -> None:
    """In the child: app/serve.py with every script run profiled into ``out``."""
    from streamlit.runtime.scriptrunner import script_runner

    original = script_runner.ScriptRunner._run_script
    count = iter(range(10**6))

    def profiled(self, rerun_data):
        profile = cProfile.Profile()
        start = time.perf_counter()
        profile.enable()
        try:
            return original(self, rerun_data)
        finally:
            profile.disable()
            profile.dump_stats(out / f"{next(count):04d}-{rerun_data.page_script_hash or 'first'}-"
                                     f"{time.perf_counter() - start:.3f}.prof")

    script_runner.ScriptRunner._run_script = profiled
    sys.path.insert(0, str(ROOT / "app"))
    sys.argv = [str(SERVE), "--server.port", str(port), "--server.address", "127.0.0.1"]
    runpy.run_path(str(SERVE), run_name="__main__")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--walks", type=int, default=2)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--serve", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(int(args.serve[0]), Path(args.serve[1]))
        return
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(port, command=[sys.executable, __file__, "--serve", str(port), tmp])
        try:
            url = f"ws://127.0.0.1:{port}/_stcore/stream"
            for _ in range(args.walks):
                session = asyncio.run(crowd(url, 1, 1))[0]
            names = {h: n for n, h in session.pages.items()}
            time.sleep(1)
        finally:
            stop(server)
        runs = sorted(Path(tmp).glob("*.prof"))[-(len(names) + 1):]
        for path in runs:
            _, page, seconds = path.stem.split("-", 2)
            text = io.StringIO()
            pstats.Stats(str(path), stream=text).sort_stats("cumulative").print_stats(args.top)
            print(f"=== {names.get(page, 'first visit')}: {float(seconds):.2f} s")
            print("\n".join(line for line in text.getvalue().splitlines()[-args.top - 2:] if line.strip()))


if __name__ == "__main__":
    main()
