#!/usr/bin/env python3
"""Writes a full-size synthetic RF2 snapshot for the terminology import benchmark.

    benches/gen_rf2.py OUT_DIR [CONCEPTS] [ISA_ROWS]

Defaults match a UK Clinical Edition plus International release: 350,000
concepts and 1,200,000 IS-A rows, with three descriptions per concept (FSN and
two synonyms) and a GB language refset row per description. Ids carry valid
Verhoeff check digits. The hierarchy is a tree of fan-out 8 with extra parents
taken from the primary parent's neighbours, so depth and closure size resemble
the real release (millions of closure rows) rather than a random DAG's.
Deterministic: the same arguments give the same files.
"""
import os
import random
import sys
import uuid

D = [[0,1,2,3,4,5,6,7,8,9],[1,2,3,4,0,6,7,8,9,5],[2,3,4,0,1,7,8,9,5,6],[3,4,0,1,2,8,9,5,6,7],[4,0,1,2,3,9,5,6,7,8],
     [5,9,8,7,6,0,4,3,2,1],[6,5,9,8,7,1,0,4,3,2],[7,6,5,9,8,2,1,0,4,3],[8,7,6,5,9,3,2,1,0,4],[9,8,7,6,5,4,3,2,1,0]]
P = [[0,1,2,3,4,5,6,7,8,9],[1,5,7,6,2,8,3,0,9,4],[5,8,0,3,7,9,6,1,4,2],[8,9,1,6,0,4,3,5,2,7],
     [9,4,5,3,1,2,6,8,7,0],[4,2,8,6,5,7,3,9,0,1],[2,7,9,3,8,0,6,4,1,5],[7,0,4,6,9,1,3,2,5,8]]
INV = [0,4,3,2,1,5,6,7,8,9]


def sctid(item: int, partition: str) -> str:
    body = f"{item}{partition}"
    c = 0
    for i, ch in enumerate(reversed(body)):
        c = D[c][P[(i + 1) % 8][int(ch)]]
    return body + str(INV[c])


def main() -> None:
    out = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 350_000
    isa_rows = int(sys.argv[3]) if len(sys.argv) > 3 else 1_200_000
    rnd = random.Random(42)
    base = os.path.join(out, "SnomedCT_BenchRF2_PRODUCTION_20260506T000000Z", "Snapshot")
    term_dir, lang_dir = os.path.join(base, "Terminology"), os.path.join(base, "Refset", "Language")
    os.makedirs(term_dir, exist_ok=True)
    os.makedirs(lang_dir, exist_ok=True)
    date, module = "20260506", "999000011000000103"
    concepts = ["138875005"] + [sctid(1000 + i, "10") for i in range(1, n)]

    with open(os.path.join(term_dir, f"sct2_Concept_Snapshot_INT_{date}.txt"), "w", newline="") as f:
        f.write("id\teffectiveTime\tactive\tmoduleId\tdefinitionStatusId\r\n")
        for i, c in enumerate(concepts):
            active = "0" if i > 0 and i % 50 == 0 else "1"
            f.write(f"{c}\t{date}\t{active}\t{module}\t900000000000074008\r\n")

    desc_ids = []
    with open(os.path.join(term_dir, f"sct2_Description_Snapshot-en_INT_{date}.txt"), "w", newline="") as f:
        f.write("id\teffectiveTime\tactive\tmoduleId\tconceptId\tlanguageCode\ttypeId\tterm\tcaseSignificanceId\r\n")
        k = 0
        for i, c in enumerate(concepts):
            for kind, type_id in (("fsn", "900000000000003001"), ("syn", "900000000000013009"), ("alt", "900000000000013009")):
                k += 1
                d = sctid(1000 + k, "11")
                desc_ids.append(d)
                f.write(f"{d}\t{date}\t1\t{module}\t{c}\ten\t{type_id}\tSynthetic concept {i} {kind}\t900000000000448009\r\n")

    # Primary tree parent (fan-out 8) plus extra parents near the primary one.
    extra_needed = isa_rows - (n - 1)
    extras_per = extra_needed / max(1, n - 1)
    with open(os.path.join(term_dir, f"sct2_Relationship_Snapshot_INT_{date}.txt"), "w", newline="") as f:
        f.write("id\teffectiveTime\tactive\tmoduleId\tsourceId\tdestinationId\trelationshipGroup\ttypeId\tcharacteristicTypeId\tmodifierId\r\n")
        k = 0
        for i in range(1, n):
            primary = (i - 1) // 8
            parents = {primary}
            want = int(extras_per) + (1 if rnd.random() < extras_per - int(extras_per) else 0)
            for _ in range(want):
                candidate = primary + rnd.randint(-40, 40)
                if 0 <= candidate < i:
                    parents.add(candidate)
            for p in sorted(parents):
                k += 1
                f.write(f"{sctid(1000 + k, '12')}\t{date}\t1\t{module}\t{concepts[i]}\t{concepts[p]}\t0\t116680003\t900000000000011006\t900000000000451002\r\n")
    print(f"{n} concepts, {k} IS-A rows, {len(desc_ids)} descriptions", file=sys.stderr)

    # The importer requires every file of a snapshot; this one has no members.
    content_dir = os.path.join(base, "Refset", "Content")
    os.makedirs(content_dir, exist_ok=True)
    with open(os.path.join(content_dir, f"der2_cRefset_AssociationSnapshot_INT_{date}.txt"), "w", newline="") as f:
        f.write("id\teffectiveTime\tactive\tmoduleId\trefsetId\treferencedComponentId\ttargetComponentId\r\n")

    with open(os.path.join(lang_dir, f"der2_cRefset_LanguageSnapshot-en_INT_{date}.txt"), "w", newline="") as f:
        f.write("id\teffectiveTime\tactive\tmoduleId\trefsetId\treferencedComponentId\tacceptabilityId\r\n")
        for j, d in enumerate(desc_ids):
            acceptability = "900000000000548007" if j % 3 != 2 else "900000000000549004"
            f.write(f"{uuid.UUID(int=rnd.getrandbits(128))}\t{date}\t1\t{module}\t900000000000508004\t{d}\t{acceptability}\r\n")


if __name__ == "__main__":
    main()
