"""Run inside the peer container: capture the RTP that the PBX sends, as the wire carries it.

Usage: python3 sniff.py PBX_IPV4 SECONDS OUT.json. Writes, per RTP packet from PBX_IPV4: ports, payload
type, payload length, the number of distinct byte values in the payload. A raw AF_PACKET socket (root in
the container has CAP_NET_RAW) sees exactly what reached the peer's interface.
"""

import json
import os
import socket
import struct
import sys
import time

MAX_PACKETS = 200


def main() -> None:
    source, seconds, out = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0800))
    sock.settimeout(0.5)
    packets = []
    end = time.monotonic() + seconds
    while time.monotonic() < end and len(packets) < MAX_PACKETS:
        try:
            frame = sock.recv(65535)
        except TimeoutError:
            continue
        ip = frame[14:]
        if len(ip) < 20 or ip[9] != socket.IPPROTO_UDP or socket.inet_ntoa(ip[12:16]) != source:
            continue
        ihl = (ip[0] & 0x0F) * 4
        sport, dport, length = struct.unpack("!HHH", ip[ihl : ihl + 6])
        rtp = ip[ihl + 8 : ihl + length]
        if len(rtp) < 12 or rtp[0] >> 6 != 2 or not 10000 <= sport <= 20000:
            continue
        payload = rtp[12:]
        packets.append(
            {
                "sport": sport,
                "dport": dport,
                "pt": rtp[1] & 0x7F,
                "len": len(payload),
                "distinct": len(set(payload)),
            }
        )
    with open(out + ".tmp", "w") as f:
        json.dump(packets, f)
    os.rename(out + ".tmp", out)


if __name__ == "__main__":
    main()
