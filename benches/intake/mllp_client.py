"""MLLP round trips/s: N messages over C connections, each waiting for its ACK (AA)."""
import socket
import sys
import threading
import time

addr, code, total, connections = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
host, port = addr.rsplit(":", 1)


def message(sender: int, n: int) -> bytes:
    text = (
        f"MSH|^~\\&|HIS|{code}|RENKEI|RENKEI|20261121090000||ADT^A08^ADT_A01|B{sender:02d}{n:07d}|P|2.5||||||UNICODE UTF-8\r"
        f"EVN||20261121090000\rPID|0001||{sender:02d}{n:07d}^^^^PI||山田^太郎^^^^^L^I||19480405|M\rPV1|0001|O\r"
    )
    return b"\x0b" + text.encode() + b"\x1c\r"


def run(sender: int, count: int, failures: list) -> None:
    s = socket.create_connection((host, int(port)))
    buf = b""
    for n in range(count):
        s.sendall(message(sender, n))
        while b"\x1c\r" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                failures.append("closed")
                return
            buf += chunk
        ack, _, buf = buf.partition(b"\x1c\r")
        if b"MSA|AA|" not in ack:
            failures.append(ack.decode(errors="replace"))
    s.close()


failures: list = []
per = total // connections
threads = [threading.Thread(target=run, args=(c, per, failures)) for c in range(connections)]
start = time.perf_counter()
for t in threads:
    t.start()
for t in threads:
    t.join()
elapsed = time.perf_counter() - start
done = per * connections
print(f"mllp round trips  {connections} connection(s) {done:>6} messages {elapsed:7.2f} s {done / elapsed:>9.0f} round trips/s{'' if not failures else f'  FAILURES: {len(failures)} e.g. {failures[0][:120]}'}")
sys.exit(1 if failures else 0)
