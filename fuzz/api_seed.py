#!/usr/bin/env python3
"""fuzz/api_seed.py - a small weights seed for fuzz_api_load: the metadata of
a real hcga checkpoint (its format, config, num_classes) and only its
classifier_global.weight, so that hcga_model_load gets past the file format
into the config, the class count and the model build before it finds the
missing tensors.  usage: api_seed.py CHECKPOINT OUT (OUT starts with the
target's mode byte 2)."""
import json
import struct
import sys

src, out = sys.argv[1], sys.argv[2]
with open(src, "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    head = json.loads(f.read(n))
    base = 8 + n
    t = head["classifier_global.weight"]
    b, e = t["data_offsets"]
    f.seek(base + b)
    data = f.read(e - b)
hdr = {"__metadata__": head["__metadata__"],
       "classifier_global.weight": {"dtype": t["dtype"], "shape": t["shape"], "data_offsets": [0, len(data)]}}
js = json.dumps(hdr, separators=(",", ":")).encode()
js += b" " * (-len(js) % 8)
with open(out, "wb") as f:
    f.write(b"\x02" + struct.pack("<Q", len(js)) + js + data)
