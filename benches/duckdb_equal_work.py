"""DM_REG by hand in DuckDB, doing the work `phm cohort run DM_REG` does.

`benches/cohort.sh` times a DuckDB query that computes DM_REG's membership
only. A phm run also writes, as Parquet and CSV, every person's status, the
verdict of each criterion for each person in the population with its deciding
event's evidence columns, the attrition per practice and the near misses.
This script does the same in DuckDB, from the same canonical Parquet files
and the same value-set expansions, and times it two ways: the first run in a
fresh connection (no metadata cached; the Python and DuckDB import is not
counted), then again in the warm connection.

It then checks its results against phm's output directory, person by person:
status and included flag; each criterion's verdict, reason, event count and
deciding row; the attrition steps; the near misses. A difference fails the
script.

    python3 benches/duckdb_equal_work.py WORK INDEX_DATE PHM_OUT REPEATS

WORK holds store/, dm_cod.csv and dmres_cod.csv (written by cohort.sh);
PHM_OUT is phm's output directory for DM_REG.
"""

import os
import sys
import time

import duckdb

work, index, phm_out, repeats = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
s = f"{work}/store/canonical"
out = f"{work}/duck_equal"

# The documented semantics (docs/cohort-language.md), written independently:
# a person's registration at the index date is the latest-starting current GMS
# one; age in whole years on the index date; an event's period is its day,
# month or year by its precision; unusable dates (flagged) and unmapped codes
# never qualify; `latest` orders by (period start, practice, row order);
# `exists` shows its latest qualifying event; "after dm_latest" is a period
# starting after the anchor's start.
SETUP = f"""
create or replace temp table codes as
  select code::bigint as code, 'dm' as vs from read_csv('{work}/dm_cod.csv')
  union all select code::bigint, 'res' from read_csv('{work}/dmres_cod.csv');

create or replace temp table persons as
with reg as (
  select person_key, practice, patient_id,
         row_number() over (partition by person_key
                            order by start_date desc, practice desc) as rn
  from read_parquet('{s}/registrations/*/*.parquet')
  where registration_type = 'gms' and start_date <= date '{index}'
    and (end_date is null or end_date > date '{index}')
), people as (
  -- A person not registered at the index date is counted at the practice
  -- holding their record (the greatest, if several do).
  select person_key, max(practice) as rec_practice
  from read_parquet('{s}/patients/*/*.parquet') group by 1
)
select pe.person_key, r.practice, coalesce(r.practice, pe.rec_practice) as attr_practice,
  case
    when r.person_key is null then 'not_registered'
    when coalesce(p.is_test_patient, false) then 'test_patient'
    when p.date_of_death is not null and p.date_of_death <= date '{index}' then 'died'
    when p.date_of_birth is null then 'age_unknown'
    when date_part('year', date '{index}') - date_part('year', p.date_of_birth)
         - case when strftime(date '{index}', '%m%d') < strftime(p.date_of_birth, '%m%d')
                then 1 else 0 end < 17 then 'age_out_of_range'
    else 'in_population'
  end as status
from people pe
left join reg r on r.person_key = pe.person_key and r.rn = 1
left join read_parquet('{s}/patients/*/*.parquet') p
  on p.practice = r.practice and p.patient_id = r.patient_id;

create or replace temp table ev as
select e.person_key, e.practice, e.row_order, e.filename, e.file_row_number, c.vs,
  case e.date_precision when 'Y' then date_trunc('year', e.event_date)
                        when 'YM' then date_trunc('month', e.event_date)
                        else e.event_date end::date as d_start,
  case e.date_precision
    when 'Y' then date_trunc('year', e.event_date) + interval 1 year - interval 1 day
    when 'YM' then date_trunc('month', e.event_date) + interval 1 month - interval 1 day
    else e.event_date end::date as d_end
from read_parquet('{s}/events/*/*.parquet', filename = true, file_row_number = true) e
join codes c on e.snomed_concept_id = c.code
join persons p on p.person_key = e.person_key and p.status = 'in_population'
where e.event_date is not null and e.date_flag is null and e.mapping_kind <> 'unmapped';

create or replace temp table dm as
select * exclude (rn) from (
  select *, count(*) over (partition by person_key) as n,
         row_number() over (partition by person_key
                            order by d_start desc, practice desc, row_order desc) as rn
  from ev where vs = 'dm' and d_end <= date '{index}')
where rn = 1;

create or replace temp table res as
select * exclude (rn) from (
  select ev.*, count(*) over (partition by ev.person_key) as n,
         row_number() over (partition by ev.person_key
                            order by ev.d_start desc, ev.practice desc, ev.row_order desc) as rn
  from ev join dm on dm.person_key = ev.person_key
  where ev.vs = 'res' and ev.d_start > dm.d_start and ev.d_end <= date '{index}')
where rn = 1;

-- The evidence columns of the chosen rows only: evaluation read a narrow
-- projection, and the code join lets the scan skip most row groups.
create or replace temp table evidence as
select e.* from read_parquet('{s}/events/*/*.parquet', filename = true, file_row_number = true) e
join codes c on e.snomed_concept_id = c.code
join (select filename, file_row_number from dm union select filename, file_row_number from res) k
  on e.filename = k.filename and e.file_row_number = k.file_row_number;
"""

EVIDENCE = """
  e.event_date as ev_date, e.date_precision as ev_precision,
  e.code_system as ev_code_system, e.source_code as ev_source_code,
  e.snomed_concept_id as ev_concept, e.source_term as ev_term, e.value as ev_value,
  e.unit as ev_unit, e.comparator as ev_comparator, e.practice as ev_practice,
  e.supplier as ev_supplier, e.source_table as ev_source_table,
  e.source_row_id as ev_source_row_id, e.mapping_kind as ev_mapping_kind,
  e.practice || '/' || e.source_table || '/' || e.source_row_id as evidence"""

OUTPUTS = {
    "membership": """
select p.person_key, p.practice, p.status,
  case when p.status = 'in_population' then dm.person_key is not null and res.person_key is null end as included,
  case when p.status <> 'in_population' then null
       when dm.person_key is null then 'diagnosed'
       when res.person_key is not null then 'unresolved'
       else 'otherwise' end as deciding_rule
from persons p left join dm using (person_key) left join res using (person_key)
order by p.person_key""",
    "explanations": f"""
select p.person_key, p.practice, 'dm_latest' as criterion, c.person_key is not null as verdict,
  case when c.person_key is null then 'no_events' else 'met' end as reason,
  coalesce(c.n, 0) as count, {EVIDENCE}
from persons p left join dm c using (person_key)
left join evidence e using (filename, file_row_number) where p.status = 'in_population'
union all
select p.person_key, p.practice, 'dm_resolved', c.person_key is not null,
  case when dm.person_key is null then 'anchor_missing'
       when c.person_key is null then 'no_events' else 'met' end,
  coalesce(c.n, 0), {EVIDENCE}
from persons p left join dm using (person_key) left join res c on c.person_key = p.person_key
left join evidence e on e.filename = c.filename and e.file_row_number = c.file_row_number
where p.status = 'in_population'
order by 1, 3""",
    "near_misses": """
select p.person_key, p.practice, 'unresolved' as rule
from persons p join res using (person_key) where p.status = 'in_population'
order by 1""",
    "attrition": """
with steps as (
  select attr_practice as practice, status,
    case status when 'not_registered' then 1 when 'test_patient' then 3 when 'died' then 4
                when 'age_unknown' then 6 when 'age_out_of_range' then 7 end as step
  from persons
)
select coalesce(practice, 'ALL') as practice, status, count(*) as n
from steps group by grouping sets ((practice, status), (status)) order by 1, 2""",
}


def run(con):
    con.execute(SETUP)
    for name, sql in OUTPUTS.items():
        con.execute(f"create or replace temp table out_{name} as {sql}")
        con.execute(f"copy out_{name} to '{out}/{name}.parquet' (format parquet)")
        con.execute(f"copy out_{name} to '{out}/{name}.csv' (header)")


os.makedirs(out, exist_ok=True)
con = duckdb.connect()
con.execute("set threads = 2")
t = time.perf_counter()
run(con)
print(f"  duckdb DM_REG with phm's outputs, fresh connection: {time.perf_counter() - t:.2f} s")
for _ in range(repeats):
    t = time.perf_counter()
    run(con)
    print(f"  duckdb DM_REG with phm's outputs, warm connection: {time.perf_counter() - t:.2f} s")

# Person by person against phm's files.
def rows(sql):
    return set(con.execute(sql).fetchall())

mine, theirs = f"{out}/membership.parquet", f"{phm_out}/membership.parquet"
q = "select person_key, coalesce(practice, ''), status, included from read_parquet('{}')"
assert rows(q.format(mine)) == rows(q.format(theirs)), "membership differs from phm's"
q = """select person_key, criterion, verdict, reason, count, coalesce(ev_source_row_id, ''),
              coalesce(ev_practice, '') from read_parquet('{}')"""
a, b = rows(q.format(f"{out}/explanations.parquet")), rows(q.format(f"{phm_out}/explanations.parquet"))
assert a == b, f"explanations differ from phm's: {sorted(a - b)[:3]} vs {sorted(b - a)[:3]}"
q = "select person_key, rule from read_parquet('{}')"
assert rows(q.format(f"{out}/near_misses.parquet")) == rows(q.format(f"{phm_out}/near_misses.parquet")), \
    "near misses differ from phm's"
removed = rows(f"""select practice, step, removed from read_parquet('{phm_out}/attrition.parquet')
                   where removed > 0 and step in (select distinct status from read_parquet('{out}/attrition.parquet'))""")
assert removed == rows(f"select practice, status, n from read_parquet('{out}/attrition.parquet')"
                       " where status <> 'in_population'"), "attrition differs from phm's"
print(f"  membership, explanations ({len(a)} rows), near misses and attrition agree with phm's")
