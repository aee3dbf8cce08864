#!/usr/bin/env python3
"""Run one end-to-end test file against a PostgreSQL database of its own.

ctest runs the e2e files side by side on one test PostgreSQL (tools/chorus test). A
service one file starts must not act on what another file stored: a channels
replica that processes its inbox would claim the rows of a file that keeps its
inbox as stored. So each file gets a fresh database on the same server, made here
before the file starts and dropped after it ends (whatever its outcome).

    own_database.py TEST_FILE [ARGS...]

CHORUS_TEST_DATABASE_URL names the server (and the database the new one is made
from); the file sees it pointing at its own. Without it the file runs as it is
(and says what it needs).
"""
import os
import signal
import subprocess
import sys
import urllib.parse


def psql(url, sql):
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql],
                   check=True, stdout=subprocess.DEVNULL)


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    test = sys.argv[1]
    url = os.environ.get("CHORUS_TEST_DATABASE_URL", "")
    if not url:
        return subprocess.call([sys.executable] + sys.argv[1:])
    stem = os.path.splitext(os.path.basename(test))[0]
    name = "e2e_%s_%d" % (stem.replace("-", "_"), os.getpid())
    parts = urllib.parse.urlsplit(url)
    own = urllib.parse.urlunsplit(parts._replace(path="/" + name))
    psql(url, "CREATE DATABASE %s" % name)
    child = None

    def stop(signum, frame):
        if child and child.poll() is None:
            child.send_signal(signum)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        env = dict(os.environ, CHORUS_TEST_DATABASE_URL=own)
        child = subprocess.Popen([sys.executable] + sys.argv[1:], env=env)
        return child.wait()
    finally:
        if child and child.poll() is None:
            child.kill()
            child.wait()
        try:
            psql(url, "DROP DATABASE IF EXISTS %s WITH (FORCE)" % name)
        except subprocess.CalledProcessError:
            print("own_database: could not drop %s" % name, file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
