# A deterministic Python workload (json, re, dicts, sets, strings, sorting,
# big integers): run with PYTHONMALLOC=malloc so every object goes through
# malloc, and compared byte for byte with a run without the shim.
import collections
import json
import re

data = [{"id": i, "name": "item%d" % i, "tags": ["t%d" % (i % 7), "u%d" % (i % 11)], "score": (i * 37) % 101}
        for i in range(4000)]
text = json.dumps(data, sort_keys=True)
back = json.loads(text)
assert back == data
print("json", len(text), sum(d["score"] for d in back))

words = re.findall(r"item(\d+)", text)
print("re", len(words), sum(int(w) for w in words[:1000]))
print("sub", len(re.sub(r"t(\d)", lambda m: "T" + m.group(1) * 3, text)))

counts = collections.Counter(t for d in data for t in d["tags"])
print("counter", sorted(counts.items())[:5])

d = {}
for i in range(50000):
    d[str(i)] = i * i
    if i % 3 == 0:
        del d[str(i // 2)]
print("dict", len(d), sum(v for k, v in d.items() if k.endswith("7")) % 1000003)

s = set(range(0, 100000, 7)) ^ set(range(0, 100000, 11))
print("set", len(s))
print("bigint", len(str(3 ** 4000)), (7 ** 5000) % 1000000007)
print("sorted", sorted((x * 7919) % 10007 for x in range(10000))[5000])
