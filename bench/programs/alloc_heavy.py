# Fixed, deterministic allocation-heavy Python workload for bench/run's "real
# programs" timing. Run with PYTHONMALLOC=malloc so every object goes through
# the malloc under test instead of pymalloc's arenas. Prints a checksum so a
# broken allocator shows up as a wrong answer, not just a time.
# Argument: number of records (bench/run passes a smaller one with --quick).
import json
import sys

n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
records = []
for i in range(n):
    records.append({"id": i, "name": "item-%05d" % i, "tags": [str(i % 7), str(i % 11)], "score": (i * 7919) % 1000})

blob = json.dumps(records)
back = json.loads(blob)

index = {}
for r in back:
    index.setdefault(r["tags"][0], []).append(r["name"])

words = " ".join(r["name"] for r in back).split()
words.sort(key=lambda w: (w[::-1], len(w)))
counts = {}
for w in words:
    counts[w[-2:]] = counts.get(w[-2:], 0) + 1

checksum = sum(r["score"] for r in back) + len(blob) + sum(len(v) for v in index.values()) + len(counts)
print(checksum)
