"""Run every benchmark in bench/ one after another (each rewrites its section of RESULTS.md).

.venv/bin/python bench/run.py [name …]      # e.g. engine decoder
"""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    names = sys.argv[1:] or sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    for name in names:
        print(f"== bench_{name}.py", flush=True)
        done = subprocess.run([sys.executable, str(HERE / f"bench_{name}.py")], cwd=HERE)
        if done.returncode:
            return done.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
