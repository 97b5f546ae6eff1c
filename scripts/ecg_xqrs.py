"""Reference QRS detector for `vigil bench ecg`: wfdb-python's XQRS on channel 0 of each record.

Usage: python3 ecg_xqrs.py DIR RECORD [RECORD...]
Prints one JSON object per record on stdout:
  {"record": "100", "samples": 650000, "seconds": 12.3, "peaks": [..]}
where "seconds" is the time spent in xqrs_detect alone. Needs `pip install wfdb`.
Exit status 3 if wfdb cannot be imported (the bench reports it as missing).
"""

import json
import os
import sys
import time

try:
    import wfdb
    from wfdb import processing
except ImportError as error:  # reported by the bench, not a traceback
    print(f"wfdb-python is not installed ({error}); run: python3 -m pip install wfdb", file=sys.stderr)
    sys.exit(3)


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    directory = sys.argv[1]
    for name in sys.argv[2:]:
        record = wfdb.rdrecord(os.path.join(directory, name), channels=[0])
        signal = record.p_signal[:, 0]
        started = time.perf_counter()
        peaks = processing.xqrs_detect(sig=signal, fs=record.fs, verbose=False)
        seconds = time.perf_counter() - started
        print(json.dumps({
            "record": name,
            "samples": int(len(signal)),
            "seconds": seconds,
            "peaks": [int(p) for p in peaks],
        }), flush=True)


if __name__ == "__main__":
    main()
