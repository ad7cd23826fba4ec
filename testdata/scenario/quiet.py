#!/usr/bin/env python3
"""A quiet namespace: one listener and one idle connection, nothing wrong.

    unshare --net python3 testdata/scenario/quiet.py
"""
import json
import os
import socket

from sockets import hold, listener, pair, setup_links


def main():
    setup_links()
    lst = listener(socket.AF_INET, "127.0.0.1")
    pair(lst)
    print(json.dumps({"pid": os.getpid(), "sockets": []}), flush=True)
    hold()


if __name__ == "__main__":
    main()
