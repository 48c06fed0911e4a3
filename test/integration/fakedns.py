"""
Runs a command next to a small DNS server on 127.0.0.1:53, in a network
namespace of its own, without privileges:

    unshare -rn python3 fakedns.py --uid UID --gid GID ZONEFILE -- command ...

Inside `unshare -rn` this script is root of a new user and network
namespace: it brings the loopback up and binds port 53 there (the host's
port 53 is not touched), then starts the command in a nested user
namespace as UID/GID, so that a program refusing to run as root runs.
Files and unix sockets are shared with the host, TCP is not.

ZONEFILE (JSON, read again for every query) holds
{"serial": N, "ttl": secs, "hosts": {"name.zone": ["127.0.0.2", ...]}}:
A queries for a listed name get its addresses, AAAA queries an empty
answer, SOA queries for a zone of a listed name (what follows its first
dot) that serial, anything else NXDOMAIN. TERM, INT, QUIT and HUP are
passed on to the command; the script exits with its status.
"""

import json
import signal
import socket
import struct
import subprocess
import sys
import threading


def encode_name(name):
    out = b""
    for label in name.strip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def answer(data, zonefile):
    qid, flags, qdcount = struct.unpack("!HHH", data[:6])
    pos, labels = 12, []
    while data[pos]:
        n = data[pos]
        labels.append(data[pos + 1:pos + 1 + n].decode().lower())
        pos += 1 + n
    pos += 1
    qtype, _qclass = struct.unpack("!HH", data[pos:pos + 4])
    question = data[12:pos + 4]
    name = ".".join(labels)
    with open(zonefile) as f:
        zone = json.load(f)
    hosts, ttl = zone["hosts"], zone.get("ttl", 3600)

    def rr(rtype, rdata):
        return b"\xc0\x0c" + struct.pack("!HHIH", rtype, 1, ttl, len(rdata)) + rdata

    answers, rcode = [], 0
    if qtype == 6:  # SOA
        if any(h.split(".", 1)[1:] == [name] for h in hosts):
            answers.append(rr(6, encode_name("ns." + name) + encode_name("admin." + name)
                              + struct.pack("!IIIII", zone["serial"], 3600, 600, 86400, 60)))
        else:
            rcode = 3
    elif name in hosts:
        if qtype == 1:
            answers += [rr(1, socket.inet_aton(a)) for a in hosts[name]]
    else:
        rcode = 3
    flags = 0x8000 | 0x0400 | (flags & 0x0100) | 0x0080 | rcode
    return struct.pack("!HHHHHH", qid, flags, 1, len(answers), 0, 0) + question + \
        b"".join(answers)


def serve(sock, zonefile):
    while True:
        data, peer = sock.recvfrom(4096)
        try:
            sock.sendto(answer(data, zonefile), peer)
        except Exception as e:  # a query we cannot parse: no answer
            print(f"fakedns: {e!r}", file=sys.stderr, flush=True)


def main():
    args = sys.argv[1:]
    sep = args.index("--")
    opts, cmd = args[:sep], args[sep + 1:]
    uid = opts[opts.index("--uid") + 1]
    gid = opts[opts.index("--gid") + 1]
    zonefile = opts[-1]
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 53))
    threading.Thread(target=serve, args=(sock, zonefile), daemon=True).start()
    child = subprocess.Popen(["unshare", f"--map-user={uid}", f"--map-group={gid}", "--"] + cmd)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP):
        signal.signal(sig, lambda s, f: child.send_signal(s))
    sys.exit(child.wait())


if __name__ == "__main__":
    main()
